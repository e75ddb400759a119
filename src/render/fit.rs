//! Text laid out for a terminal of a given width: tables whose cells are never split (columns are
//! dropped or merged instead, and the table says which) and prose wrapped at word boundaries with a
//! hanging indent. Without a width (a pipe, `--wide`) everything is written in full, on one line.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, TableComponent};
use std::io::{self, Write};

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

/// Writes [`table`]`(columns, stacked)` and a newline, byte for byte, for tables of many rows:
/// comfy-table draws the borders and the header once, and the rows are laid out here as it lays
/// them out (through comfy-table a row of the connections table cost 70,000 instructions, a
/// String per cell and per line of it). A table with a cell of other than printable ASCII
/// (which comfy-table measures by Unicode widths and splits at line breaks) is drawn whole by
/// comfy-table.
pub fn write_table(columns: &[Column], stacked: bool, out: &mut dyn Write) -> io::Result<()> {
    let plain = |text: &str| text.len() < usize::from(u16::MAX) && text.bytes().all(|b| (b' '..=b'~').contains(&b));
    let frame = columns.iter().all(|c| plain(&c.header) && c.cells.iter().all(|cell| plain(cell))).then(|| Frame::new(columns, stacked));
    let Some(frame) = frame.flatten() else {
        return writeln!(out, "{}", table(columns, stacked));
    };
    out.write_all(frame.head.as_bytes())?;
    let mut line = String::new();
    for row in 0..columns.first().map_or(0, |c| c.cells.len()) {
        line.clear();
        frame.row(&mut line, columns.iter().map(|c| c.cells[row].as_str()));
        out.write_all(line.as_bytes())?;
    }
    writeln!(out, "{}", frame.bottom)
}

/// What comfy-table draws of a table around its rows, and how it lays a row out.
struct Frame {
    /// The top border, the header and the line under it, each line ending in a newline.
    head: String,
    bottom: String,
    /// Each column's width (its widest cell or header line) and alignment.
    columns: Vec<(usize, bool)>,
    /// The left border, the line between columns and the right border.
    lines: [char; 3],
}

impl Frame {
    /// The frame comfy-table draws for `columns`, found by drawing a table of their headers and
    /// two rows: one of cells as wide as each column, one of one-character cells. `None` unless
    /// those rows are drawn as [`Frame::row`] lays them out.
    fn new(columns: &[Column], stacked: bool) -> Option<Frame> {
        let widths: Vec<usize> = columns.iter().map(|c| c.width(stacked).max(1)).collect();
        let samples: Vec<Column> = columns
            .iter()
            .zip(&widths)
            .map(|(c, width)| Column { header: c.header.clone(), cells: vec!["x".repeat(*width), "x".to_string()], right: c.right })
            .collect();
        let mut drawn = table(&samples, stacked);
        let lines =
            [TableComponent::LeftBorder, TableComponent::VerticalLines, TableComponent::RightBorder].map(|c| drawn.style(c).unwrap_or(' '));
        let mut frame = Frame {
            head: String::new(),
            bottom: String::new(),
            columns: widths.into_iter().zip(columns.iter().map(|c| c.right)).collect(),
            lines,
        };
        let mut rows = String::new();
        for row in 0..2 {
            frame.row(&mut rows, samples.iter().map(|c| c.cells[row].as_str()));
        }
        let drawn = drawn.to_string();
        let (head_and_rows, bottom) = drawn.rsplit_once('\n')?;
        frame.head = head_and_rows.strip_suffix(rows.trim_end_matches('\n'))?.to_string();
        frame.bottom = bottom.to_string();
        Some(frame)
    }

    /// Appends the line of a row of `cells` (one per column), with its newline.
    fn row<'a>(&self, line: &mut String, cells: impl Iterator<Item = &'a str>) {
        let [left, between, right] = self.lines;
        line.push(left);
        for (i, ((width, right), cell)) in self.columns.iter().zip(cells).enumerate() {
            if i > 0 {
                line.push(between);
            }
            let pad = std::iter::repeat_n(' ', width - cell.len());
            line.push(' ');
            if *right {
                line.extend(pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(pad);
            }
            line.push(' ');
        }
        line.push(right);
        line.push('\n');
    }
}

/// A table of `columns` fitted to `width`: headers on one line when it fits, stacked otherwise,
/// and then the columns named in `drop_order` left out one by one until it fits. Returns the
/// table and the headers of the columns left out.
pub fn fit(columns: Vec<Column>, width: usize, drop_order: &[&str]) -> (Table, Vec<String>) {
    let (columns, stacked, dropped) = fitted(columns, width, drop_order);
    (table(&columns, stacked), dropped)
}

/// The columns of [`fit`]'s table, whether their headers are stacked, and the headers left out.
pub fn fitted(mut columns: Vec<Column>, width: usize, drop_order: &[&str]) -> (Vec<Column>, bool, Vec<String>) {
    let mut dropped = Vec::new();
    if table_width(&columns, false) <= width {
        return (columns, false, dropped);
    }
    for name in drop_order {
        if table_width(&columns, true) <= width {
            break;
        }
        if let Some(i) = columns.iter().position(|c| c.header == *name) {
            dropped.push(columns.remove(i).header);
        }
    }
    (columns, true, dropped)
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

    #[test]
    fn test_write_table_lays_rows_out_byte_for_byte_as_comfy_table() {
        let columns = vec![
            Column::new("#", vec!["1".into(), "10".into(), "100".into()]),
            Column { right: true, ..Column::new("a long header", vec!["x".into(), "".into(), "wider than its header".into()]) },
            Column::new("empty", vec!["".into(), "".into(), "".into()]),
            Column::new("", vec!["".into(), "-".into(), "".into()]),
        ];
        for stacked in [false, true] {
            assert!(Frame::new(&columns, stacked).is_some(), "laid out here, not by comfy-table");
            let mut out = Vec::new();
            write_table(&columns, stacked, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("{}\n", table(&columns, stacked)));
        }
    }

    #[test]
    fn test_write_table_leaves_cells_of_wide_or_several_lines_to_comfy_table() {
        for cell in ["名前", "two\nlines", "tab\there"] {
            let columns = vec![Column::new("command", vec![cell.into(), "nginx".into()]), Column::new("pid", vec!["1".into(), "2".into()])];
            let mut out = Vec::new();
            write_table(&columns, false, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("{}\n", table(&columns, false)));
        }
    }
}
