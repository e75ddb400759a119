//! Text laid out for a terminal of a given width: tables whose cells are never split (columns are
//! dropped or merged instead, and the table says which) and prose wrapped at word boundaries with a
//! hanging indent. Without a width (a pipe, `--wide`) everything is written in full, on one line.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

/// One column of a table being fitted: its header (words, stacked one per line when space is short)
/// and its cells, already formatted.
#[derive(Clone, Debug)]
pub struct Column {
    pub header: String,
    pub cells: Vec<String>,
    pub right: bool,
}

impl Column {
    /// A left-aligned column.
    pub fn new(header: &str, cells: Vec<String>) -> Column {
        Column { header: header.to_string(), cells, right: false }
    }

    /// The widest cell, or the header's widest line (all on one line unless `stacked`).
    fn width(&self, stacked: bool) -> usize {
        let header = if stacked { self.header.split_whitespace().map(text_width).max().unwrap_or(0) } else { text_width(&self.header) };
        self.cells_width().max(header)
    }

    fn cells_width(&self) -> usize {
        self.cells.iter().map(|c| text_width(c)).max().unwrap_or(0)
    }

    /// The header, its words stacked on as few lines as the column's width allows when `stacked`.
    fn header_lines(&self, stacked: bool) -> String {
        if stacked {
            wrap(&self.header.split_whitespace().collect::<Vec<_>>().join(" "), self.width(true), 0)
        } else {
            self.header.clone()
        }
    }
}

/// Width of `text` on a terminal (one column per character: the tables hold no wide characters).
pub fn text_width(text: &str) -> usize {
    text.chars().count()
}

/// Width of a table of `columns` in the [`UTF8_FULL_CONDENSED`] style: each cell padded by one
/// space on each side, a border between and around the columns.
pub fn table_width(columns: &[Column], stacked: bool) -> usize {
    columns.iter().map(|c| c.width(stacked) + 3).sum::<usize>() + 1
}

/// The table of `columns`, no cell wrapped: headers on one line, or one word per line when `stacked`.
pub fn table(columns: &[Column], stacked: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    if columns.iter().any(|c| !c.header.is_empty()) {
        t.set_header(columns.iter().map(|c| c.header_lines(stacked)));
    }
    let rows = columns.first().map_or(0, |c| c.cells.len());
    for row in 0..rows {
        t.add_row(columns.iter().map(|c| {
            let cell = Cell::new(&c.cells[row]);
            if c.right {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    t
}

/// A table of `columns` fitted to `width`: headers on one line when it fits, stacked otherwise,
/// and then the columns named in `drop_order` left out one by one until it fits. Returns the
/// table and the headers of the columns left out.
pub fn fit(mut columns: Vec<Column>, width: usize, drop_order: &[&str]) -> (Table, Vec<String>) {
    let mut dropped = Vec::new();
    if table_width(&columns, false) <= width {
        return (table(&columns, false), dropped);
    }
    for name in drop_order {
        if table_width(&columns, true) <= width {
            break;
        }
        if let Some(i) = columns.iter().position(|c| c.header == *name) {
            dropped.push(columns.remove(i).header);
        }
    }
    (table(&columns, true), dropped)
}

/// The note under a table that left columns out.
pub fn left_out_note(dropped: &[String]) -> Option<String> {
    (!dropped.is_empty())
        .then(|| format!("not shown for lack of width: {} (a wider terminal, --wide, or a pipe shows every column)", dropped.join(", ")))
}

/// Wraps each line of `text` longer than `width` at word boundaries; the lines it continues on are
/// indented two more than the line's own indentation (a hanging indent). A word longer than the
/// line stays whole.
pub fn wrap_prose(text: &str, width: usize) -> String {
    wrap(text, width, 2)
}

/// [`wrap_prose`] with a hanging indent of `hang` more spaces.
fn wrap(text: &str, width: usize, hang: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        if text_width(body) <= width {
            out.push_str(line);
            continue;
        }
        let indent = body.len() - body.trim_start_matches(' ').len();
        let hang = " ".repeat(indent + hang);
        let mut current = String::from(&body[..indent]);
        let mut at_start = true;
        for word in body[indent..].split(' ').filter(|w| !w.is_empty()) {
            if !at_start && text_width(&current) + 1 + text_width(word) > width {
                out.push_str(&current);
                out.push('\n');
                current = hang.clone();
                at_start = true;
            }
            if !at_start {
                current.push(' ');
            }
            current.push_str(word);
            at_start = false;
        }
        out.push_str(&current);
        out.push_str(newline);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_wrap_prose_breaks_at_words_with_a_hanging_indent() {
        let text = " ! [code] one two three four five six\nshort\n";
        assert_eq!(wrap_prose(text, 16), " ! [code] one\n   two three\n   four five six\nshort\n");
    }

    #[test]
    fn test_wrap_prose_keeps_a_word_longer_than_the_line_whole() {
        assert_eq!(wrap_prose("a 127.0.0.1:55296 b", 8), "a\n  127.0.0.1:55296\n  b");
    }

    #[test]
    fn test_fit_stacks_headers_then_drops_columns_in_order_until_it_fits() {
        let columns = vec![
            Column::new("first column", vec!["a".into()]),
            Column::new("second column", vec!["bbbbbbbbbb".into()]),
            Column::new("third", vec!["c".into()]),
        ];
        assert_eq!(table_width(&columns, false), 15 + 16 + 8 + 1);
        assert_eq!(table_width(&columns, true), 9 + 13 + 8 + 1);
        let (_, dropped) = fit(columns.clone(), 40, &["third"]);
        assert!(dropped.is_empty());
        let (_, dropped) = fit(columns.clone(), 31, &["third"]);
        assert!(dropped.is_empty(), "stacked headers are enough");
        let (table, dropped) = fit(columns, 25, &["third", "first column"]);
        assert_eq!(dropped, ["third"]);
        assert!(table.to_string().lines().all(|l| text_width(l) <= 25), "{table}");
    }
}
