//! CSV import of indicator observations (nhập số liệu chỉ tiêu từ tệp CSV).
//!
//! The file has the header `indicator,year,numerator,denominator,source`
//! (in that order; extra spaces allowed) and one observation per row; the
//! denominator is left empty for counts. Example:
//!
//! ```csv
//! indicator,year,numerator,denominator,source
//! 4a,2024,7,100,health_centre
//! ```
//!
//! All-or-nothing: every row is checked first (numbers, catalogue, plan
//! years, numerator ≤ denominator…). If any row is wrong, nothing is recorded
//! and *every* bad row is reported, by its row number as a spreadsheet shows
//! it (the header is row 1). Only then are the rows recorded, in file order,
//! in batches of [`BATCH`] that are each one durable write, with a progress
//! bar (hidden when stderr is not a terminal).

use std::fmt;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{Event, IndicatorObserved};

use crate::log::{LogError, WardLog};

/// The expected header.
pub const HEADER: [&str; 5] = ["indicator", "year", "numerator", "denominator", "source"];
/// Rows recorded per durable write.
pub const BATCH: usize = 100;

/// One refused row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// As a spreadsheet numbers it: the header is row 1.
    pub row: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: {}", self.row, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("the CSV header is {found:?}; it must be exactly \"{}\"", HEADER.join(","))]
    Header { found: String },
    #[error("the file has no rows after the header; nothing to import")]
    Empty,
    #[error("nothing was recorded: {} row(s) are wrong; fix them and import the whole file again:\n{}", .0.len(), .0.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"))]
    Rows(Vec<RowError>),
    #[error("{0}")]
    Log(#[from] LogError),
    #[error(
        "recording stopped after {recorded} of {total} rows: {source}; the first {recorded} rows are recorded (see `treem-ward log`), import only the rest"
    )]
    Partial { recorded: usize, total: usize, source: LogError },
}

/// Reads and checks every row; returns the events only if all rows are good.
pub fn parse_observations(reader: impl Read, catalogue: &Catalogue) -> Result<Vec<Event>, CsvError> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).has_headers(true).from_reader(reader);
    let header = csv.headers().map_err(|e| CsvError::Header { found: e.to_string() })?.clone();
    let found: Vec<String> = header.iter().map(|h| h.trim_start_matches('\u{feff}').to_lowercase()).collect();
    if found != HEADER {
        return Err(CsvError::Header { found: header.iter().collect::<Vec<_>>().join(",") });
    }
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in csv.records().enumerate() {
        // Header is row 1, the first data row row 2; the csv position gives
        // the true line when a quoted field spans lines.
        let row = match &record {
            Ok(r) => r.position().map(|p| p.line()).unwrap_or(i as u64 + 2),
            Err(e) => e.position().map(|p| p.line()).unwrap_or(i as u64 + 2),
        };
        match record.map_err(|e| e.to_string()).and_then(|r| parse_row(&r, catalogue)) {
            Ok(event) => events.push(event),
            Err(message) => errors.push(RowError { row, message }),
        }
    }
    if !errors.is_empty() {
        return Err(CsvError::Rows(errors));
    }
    if events.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(events)
}

fn parse_row(record: &csv::StringRecord, catalogue: &Catalogue) -> Result<Event, String> {
    if record.iter().all(str::is_empty) {
        return Err("the row is empty; delete it".into());
    }
    if record.len() != HEADER.len() {
        return Err(format!("has {} fields, expected 5 ({})", record.len(), HEADER.join(",")));
    }
    let number = |i: usize| -> Result<u64, String> {
        record[i].parse().map_err(|_| format!("{} {:?} is not a whole number", HEADER[i], &record[i]))
    };
    let year: u16 = record[1].parse().map_err(|_| format!("year {:?} is not a year such as 2024", &record[1]))?;
    let denominator = if record[3].is_empty() { None } else { Some(number(3)?) };
    let event = Event::IndicatorObserved(IndicatorObserved {
        indicator: record[0].to_owned(),
        year,
        numerator: number(2)?,
        denominator,
        source: record[4].to_owned(),
    });
    event.validate(catalogue).map_err(|e| e.to_string())?;
    Ok(event)
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows recorded ({eta})") {
        bar.set_style(style);
    }
    bar
}

/// Checks the whole file, then records every row. Returns the rows recorded.
pub async fn import_file(log: &WardLog, author: &str, path: &Path) -> Result<usize, CsvError> {
    let file = std::fs::File::open(path).map_err(|source| CsvError::Open { path: path.into(), source })?;
    let events = parse_observations(file, log.catalogue())?;
    record_all(log, author, events).await
}

/// Records already-checked events in batches, with a progress bar.
pub async fn record_all(log: &WardLog, author: &str, events: Vec<Event>) -> Result<usize, CsvError> {
    let total = events.len();
    let bar = progress_bar(total as u64);
    let mut recorded = 0;
    let mut rest = events.into_iter().peekable();
    while rest.peek().is_some() {
        let batch: Vec<Event> = rest.by_ref().take(BATCH).collect();
        let n = batch.len();
        match log.append_all(author, batch).await {
            Ok(_) => recorded += n,
            Err(source) if recorded == 0 => {
                bar.abandon();
                return Err(CsvError::Log(source));
            }
            Err(source) => {
                bar.abandon();
                return Err(CsvError::Partial { recorded, total, source });
            }
        }
        bar.inc(n as u64);
    }
    bar.finish();
    tracing::info!(ward = %log.ward().ward, rows = recorded, "CSV import recorded");
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_must_match() {
        let e = parse_observations("code,year\n".as_bytes(), &Catalogue::shipped()).unwrap_err();
        assert!(e.to_string().contains("indicator,year,numerator,denominator,source"), "{e}");
    }

    #[test]
    fn every_bad_row_is_named() {
        let text = "indicator,year,numerator,denominator,source\n\
                    4z,2024,1,2,school\n\
                    4a,20x4,1,2,school\n\
                    4a,2024,1\n";
        let Err(CsvError::Rows(rows)) = parse_observations(text.as_bytes(), &Catalogue::shipped()) else { panic!("expected row errors") };
        let numbers: Vec<u64> = rows.iter().map(|r| r.row).collect();
        assert_eq!(numbers, [2, 3, 4], "{rows:?}");
        assert!(rows[0].message.contains("unknown indicator \"4z\""), "{}", rows[0]);
        assert!(rows[1].message.contains("20x4"), "{}", rows[1]);
        assert!(rows[2].message.contains("3 fields"), "{}", rows[2]);
    }
}
