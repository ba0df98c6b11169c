//! A small page layout over `pdf-writer`: A4 landscape pages, text in one
//! embedded TrueType font (Vietnamese needs a real Unicode font; PDF's
//! standard fonts have no "ộ"), wrapped lines, headings and tables that
//! break across pages with their header row repeated, and page numbers.
//!
//! How the font gets into the file: every glyph drawn is numbered anew
//! through one `subsetter::GlyphRemapper` as it is drawn (so the content
//! streams already hold the subset's glyph ids), and at the end the font
//! is subset to exactly those glyphs and embedded as a CID font (Type 2,
//! Identity-H) with its widths and a ToUnicode map — so the text of the PDF
//! can be searched and copied, with its diacritics.

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};

/// A4 landscape, in points.
pub const PAGE_W: f32 = 841.89;
pub const PAGE_H: f32 = 595.28;
pub const MARGIN: f32 = 36.0;
const FOOTER: f32 = 22.0;
const PAD: f32 = 2.5;
const LEADING: f32 = 1.22;

pub type Rgb = (f32, f32, f32);
pub const BLACK: Rgb = (0.1, 0.13, 0.18);
pub const MUTED: Rgb = (0.36, 0.41, 0.47);
pub const BRAND: Rgb = (0.04, 0.36, 0.48);
const GRID: Rgb = (0.75, 0.79, 0.83);
const HEADER_BG: Rgb = (0.92, 0.94, 0.96);

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("the report font cannot be read as TrueType: {0}")]
    Face(String),
    #[error("the report font cannot be subset for embedding: {0}")]
    Subset(String),
}

/// One table cell: text and its colour.
#[derive(Debug, Clone)]
pub struct CellText {
    pub text: String,
    pub color: Rgb,
    pub right: bool,
}

impl CellText {
    pub fn plain(text: impl Into<String>) -> CellText {
        CellText { text: text.into(), color: BLACK, right: false }
    }
    pub fn num(text: impl Into<String>) -> CellText {
        CellText { text: text.into(), color: BLACK, right: true }
    }
    pub fn colored(text: impl Into<String>, color: Rgb) -> CellText {
        CellText { text: text.into(), color, right: false }
    }
}

/// A document being laid out.
pub struct Doc<'f> {
    face: Face<'f>,
    upem: f32,
    remapper: GlyphRemapper,
    /// New glyph id → the text it stands for (ToUnicode).
    unicode: BTreeMap<u16, char>,
    pages: Vec<Content>,
    /// The top of the free space on the current page.
    pub y: f32,
    footer_left: String,
}

impl<'f> Doc<'f> {
    pub fn new(font: &'f [u8], footer_left: String) -> Result<Doc<'f>, LayoutError> {
        let face = Face::parse(font, 0).map_err(|e| LayoutError::Face(e.to_string()))?;
        let upem = f32::from(face.units_per_em());
        let mut doc = Doc { face, upem, remapper: GlyphRemapper::new(), unicode: BTreeMap::new(), pages: Vec::new(), y: 0.0, footer_left };
        doc.new_page();
        Ok(doc)
    }

    pub fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE_H - MARGIN;
    }

    fn bottom() -> f32 {
        MARGIN + FOOTER
    }

    /// Starts a new page unless `height` fits below the cursor.
    pub fn need(&mut self, height: f32) {
        if self.y - height < Self::bottom() {
            self.new_page();
        }
    }

    fn glyph(&self, c: char) -> GlyphId {
        self.face.glyph_index(c).unwrap_or(GlyphId(0))
    }

    /// Width of `s` at `size` points.
    pub fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| f32::from(self.face.glyph_hor_advance(self.glyph(c)).unwrap_or(0))).sum::<f32>() * size / self.upem
    }

    /// `s` broken into lines no wider than `max` (at spaces; a word longer than a line is cut).
    pub fn wrap(&self, s: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for para in s.split('\n') {
            let mut line = String::new();
            for word in para.split(' ').filter(|w| !w.is_empty()) {
                let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
                if self.width(&candidate, size) <= max {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                // A word wider than the line: cut it.
                let mut piece = String::new();
                for c in word.chars() {
                    piece.push(c);
                    if self.width(&piece, size) > max && piece.chars().count() > 1 {
                        piece.pop();
                        lines.push(std::mem::take(&mut piece));
                        piece.push(c);
                    }
                }
                line = piece;
            }
            lines.push(line);
        }
        lines
    }

    fn encode(&mut self, s: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() * 2);
        for c in s.chars() {
            let new = self.remapper.remap(self.glyph(c).0);
            self.unicode.entry(new).or_insert(c);
            out.extend_from_slice(&new.to_be_bytes());
        }
        out
    }

    /// Draws `s` with its baseline at (`x`, `y`).
    pub fn text_at(&mut self, x: f32, y: f32, size: f32, color: Rgb, s: &str) {
        let bytes = self.encode(s);
        let page = self.pages.last_mut().expect("a page");
        page.set_fill_rgb(color.0, color.1, color.2);
        page.begin_text();
        page.set_font(Name(b"F1"), size);
        page.next_line(x, y);
        page.show(Str(&bytes));
        page.end_text();
    }

    /// A paragraph at the left margin, wrapped to the page width.
    pub fn paragraph(&mut self, s: &str, size: f32, color: Rgb) {
        for line in self.wrap(s, size, PAGE_W - 2.0 * MARGIN) {
            self.need(size * LEADING);
            self.y -= size * LEADING;
            self.text_at(MARGIN, self.y + size * 0.22, size, color, &line);
        }
    }

    /// A heading, kept with at least `keep` points of what follows it.
    pub fn heading(&mut self, s: &str, size: f32, keep: f32) {
        self.need(size * 2.0 + keep);
        self.y -= size * 0.8;
        self.paragraph(s, size, BRAND);
        self.y -= size * 0.3;
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Option<Rgb>) {
        let page = self.pages.last_mut().expect("a page");
        page.set_line_width(0.5);
        page.set_stroke_rgb(GRID.0, GRID.1, GRID.2);
        page.rect(x, y, w, h);
        match fill {
            Some(c) => {
                page.set_fill_rgb(c.0, c.1, c.2);
                page.fill_nonzero_and_stroke();
            }
            None => {
                page.stroke();
            }
        }
    }

    fn row(&mut self, widths: &[f32], cells: &[CellText], size: f32, fill: Option<Rgb>) {
        let lines: Vec<Vec<String>> = cells.iter().zip(widths).map(|(c, w)| self.wrap(&c.text, size, w - 2.0 * PAD)).collect();
        let height = lines.iter().map(Vec::len).max().unwrap_or(1) as f32 * size * LEADING + 2.0 * PAD;
        let top = self.y;
        let mut x = MARGIN;
        for ((cell, w), ls) in cells.iter().zip(widths).zip(&lines) {
            self.rect(x, top - height, *w, height, fill);
            for (i, l) in ls.iter().enumerate() {
                let baseline = top - PAD - size * LEADING * (i as f32 + 1.0) + size * 0.25;
                let tx = if cell.right { x + w - PAD - self.width(l, size) } else { x + PAD };
                self.text_at(tx, baseline, size, cell.color, l);
            }
            x += w;
        }
        self.y = top - height;
    }

    fn row_height(&self, widths: &[f32], cells: &[CellText], size: f32) -> f32 {
        cells.iter().zip(widths).map(|(c, w)| self.wrap(&c.text, size, w - 2.0 * PAD).len()).max().unwrap_or(1) as f32 * size * LEADING
            + 2.0 * PAD
    }

    /// A table: `header` repeated at the top of every page it runs onto.
    /// `widths` are in points and should add up to the page's width.
    pub fn table(&mut self, widths: &[f32], header: &[CellText], rows: &[Vec<CellText>], size: f32) {
        let header_h = self.row_height(widths, header, size);
        let first = rows.first().map(|r| self.row_height(widths, r, size)).unwrap_or(0.0);
        self.need(header_h + first);
        self.row(widths, header, size, Some(HEADER_BG));
        for r in rows {
            let h = self.row_height(widths, r, size);
            if self.y - h < Self::bottom() {
                self.new_page();
                self.row(widths, header, size, Some(HEADER_BG));
            }
            self.row(widths, r, size, None);
        }
        self.y -= 6.0;
    }

    /// The finished PDF file.
    pub fn finish(mut self, font: &[u8], title: &str) -> Result<Vec<u8>, LayoutError> {
        // Page numbers, now that the count is known.
        let n = self.pages.len();
        let footer_left = std::mem::take(&mut self.footer_left);
        for i in 0..n {
            let label = format!("{} / {n}", i + 1);
            let w = self.width(&label, 7.0);
            // Draw on page i: make it the last one for text_at.
            let page = self.pages.remove(i);
            self.pages.push(page);
            self.text_at(MARGIN, MARGIN - 4.0, 7.0, MUTED, &footer_left);
            self.text_at(PAGE_W - MARGIN - w, MARGIN - 4.0, 7.0, MUTED, &label);
            let page = self.pages.pop().expect("a page");
            self.pages.insert(i, page);
        }

        let subset = subsetter::subset(font, 0, &self.remapper).map_err(|e| LayoutError::Subset(e.to_string()))?;
        let mut alloc = Ref::new(1);
        let mut next = || alloc.bump();
        let (catalog, pages_id, info) = (next(), next(), next());
        let (type0, cid, descriptor, font_file, cmap) = (next(), next(), next(), next(), next());
        let page_ids: Vec<(Ref, Ref)> = (0..n).map(|_| (next(), next())).collect();

        let mut pdf = Pdf::new();
        pdf.catalog(catalog).pages(pages_id);
        pdf.pages(pages_id).kids(page_ids.iter().map(|p| p.0)).count(n as i32);
        pdf.document_info(info).title(TextStr(title)).producer(TextStr("treem"));
        for ((page_id, content_id), content) in page_ids.iter().zip(self.pages) {
            let mut page = pdf.page(*page_id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H)).parent(pages_id).contents(*content_id);
            page.resources().fonts().pair(Name(b"F1"), type0);
            page.finish();
            pdf.stream(*content_id, &content.finish());
        }

        let base = Name(b"TREEMA+DejaVuSans");
        pdf.type0_font(type0).base_font(base).encoding_predefined(Name(b"Identity-H")).descendant_font(cid).to_unicode(cmap);
        let system = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };
        let scale = 1000.0 / self.upem;
        let widths: Vec<f32> =
            self.remapper.remapped_gids().map(|old| f32::from(self.face.glyph_hor_advance(GlyphId(old)).unwrap_or(0)) * scale).collect();
        {
            let mut c = pdf.cid_font(cid);
            c.subtype(CidFontType::Type2).base_font(base).system_info(system).font_descriptor(descriptor);
            c.cid_to_gid_map_predefined(Name(b"Identity"));
            c.widths().consecutive(0, widths);
        }
        let bb = self.face.global_bounding_box();
        pdf.font_descriptor(descriptor)
            .name(base)
            .flags(FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(
                f32::from(bb.x_min) * scale,
                f32::from(bb.y_min) * scale,
                f32::from(bb.x_max) * scale,
                f32::from(bb.y_max) * scale,
            ))
            .italic_angle(0.0)
            .ascent(f32::from(self.face.ascender()) * scale)
            .descent(f32::from(self.face.descender()) * scale)
            .cap_height(f32::from(self.face.capital_height().unwrap_or(self.face.ascender())) * scale)
            .stem_v(80.0)
            .font_file2(font_file);
        pdf.stream(font_file, &subset);
        let mut map = pdf_writer::types::UnicodeCmap::new(Name(b"Custom"), system);
        for (gid, c) in &self.unicode {
            map.pair(*gid, *c);
        }
        pdf.cmap(cmap, &map.finish());
        Ok(pdf.finish())
    }
}
