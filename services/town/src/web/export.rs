//! The evaluation table as files: CSV and XLSX, row for row the same
//! ([`super::report::table`] builds it once for both).
//!
//! - CSV: UTF-8 with a byte-order mark (so Excel opens Vietnamese text
//!   correctly), comma-separated, RFC 4180 quoting, numbers with a decimal
//!   point (the form spreadsheets and scripts read; the page shows `6,89`).
//!   The evaluation table only.
//! - XLSX (`rust_xlsxwriter`): sheet 1 the evaluation table, numbers as
//!   numbers; sheet 2 the collaborator stipend of section D.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::report::{Cell, Report, stipend_table, table};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the XLSX report could not be written: {0}")]
    Xlsx(#[from] XlsxError),
}

/// The CSV file's bytes.
pub fn csv(r: &Report) -> Vec<u8> {
    let (header, rows) = table(r);
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(&mut out);
        // Writing to a Vec cannot fail.
        w.write_record(&header).expect("write to memory");
        for row in rows {
            w.write_record(row.iter().map(Cell::csv)).expect("write to memory");
        }
        w.flush().expect("write to memory");
    }
    out
}

fn sheet(ws: &mut rust_xlsxwriter::Worksheet, header: &[String], rows: &[Vec<Cell>], widths: &[f64]) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold().set_text_wrap();
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)?;
        ws.set_column_width(c as u16, widths.get(c).copied().unwrap_or(12.0))?;
    }
    for (i, row) in rows.iter().enumerate() {
        let r = (i + 1) as u32;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(s) => {
                    ws.write_string(r, c as u16, s)?;
                }
                Cell::Number(n) => {
                    ws.write_number(r, c as u16, *n)?;
                }
                Cell::Empty => {}
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, rows.len() as u32, header.len().saturating_sub(1) as u16)?;
    Ok(())
}

/// The XLSX file's bytes.
pub fn xlsx(r: &Report) -> Result<Vec<u8>, ExportError> {
    let mut wb = Workbook::new();
    let (header, rows) = table(r);
    let ws = wb.add_worksheet();
    ws.set_name(r.lang.t("Đánh giá", "Evaluation"))?;
    sheet(ws, &header, &rows, &[9.0, 22.0, 9.0, 8.0, 60.0, 14.0, 30.0, 10.0, 10.0, 10.0, 12.0, 10.0])?;
    let (header, rows) = stipend_table(r);
    let ws = wb.add_worksheet();
    ws.set_name(r.lang.t("Phụ cấp CTV", "Stipend"))?;
    sheet(ws, &header, &rows, &[8.0, 10.0, 28.0, 14.0, 18.0, 18.0])?;
    Ok(wb.save_to_buffer()?)
}
