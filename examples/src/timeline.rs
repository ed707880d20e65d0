//! Printing timelines: times as `t=1.250s`, durations as `0.250s`, section headings and
//! tables with aligned columns.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use stanchion::Instant;

/// Prints a line to standard output, like `println!`, but ends the process quietly
/// (status 0) when standard output is closed, as when the output is piped into `head`.
#[macro_export]
macro_rules! say {
    () => {
        $crate::timeline::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::timeline::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes `text` to standard output; exits quietly if it is closed. See [`say!`].
pub fn write_out(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if out.write_fmt(text).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

/// An instant as `t=1.250s` (milliseconds, rounded down).
pub fn at(t: Instant) -> String {
    let nanos = t.as_nanos();
    format!(
        "t={}.{:03}s",
        nanos / 1_000_000_000,
        nanos % 1_000_000_000 / 1_000_000
    )
}

/// A duration as `0.250s` (milliseconds, rounded down).
pub fn secs(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

/// A rate in basis points as a percentage: `50.00%`.
pub fn percent(basis_points: u16) -> String {
    format!("{}.{:02}%", basis_points / 100, basis_points % 100)
}

/// Prints a section heading: a blank line, the title, and a rule under it.
pub fn heading(title: &str) {
    crate::say!("\n{title}");
    crate::say!("{}", "-".repeat(title.chars().count()));
}

/// Prints `text` wrapped at 90 columns, each line indented by two spaces.
pub fn note(text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 88 {
            crate::say!("  {line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        crate::say!("  {line}");
    }
}

/// How a table column is aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text starts at the column's left edge.
    Left,
    /// Text ends at the column's right edge (numbers).
    Right,
}

/// A table printed with aligned columns: the first column left-aligned, the others
/// right-aligned unless set otherwise.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        let align = (0..header.len())
            .map(|i| if i == 0 { Align::Left } else { Align::Right })
            .collect();
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            align,
            rows: Vec::new(),
        }
    }

    /// The same table with every column left-aligned.
    pub fn left_aligned(mut self) -> Table {
        self.align.iter_mut().for_each(|a| *a = Align::Left);
        self
    }

    /// The same table with column `column` aligned as `align`.
    pub fn align(mut self, column: usize, align: Align) -> Table {
        if let Some(a) = self.align.get_mut(column) {
            *a = align;
        }
        self
    }

    /// Adds a row (missing cells print empty, extra cells are dropped).
    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut row: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// The table as text, each line indented by two spaces.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = widths[i] - cell.chars().count();
                match self.align[i] {
                    Align::Left => {
                        text.push_str(cell);
                        text.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        text.push_str(&" ".repeat(pad));
                        text.push_str(cell);
                    }
                }
            }
            let _ = writeln!(out, "  {}", text.trim_end());
        };
        line(&mut out, &self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&mut out, &rule);
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }

    /// Prints the table.
    pub fn print(&self) {
        write_out(format_args!("{}", self.render()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(at(Instant::from_millis(1_250)), "t=1.250s");
        assert_eq!(at(Instant::from_nanos(999_999)), "t=0.000s");
        assert_eq!(secs(Duration::from_millis(60_005)), "60.005s");
        assert_eq!(percent(5_000), "50.00%");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["name", "n"]);
        t.row(["a", "10"]);
        t.row(["long name", "7"]);
        assert_eq!(
            t.render(),
            "  name        n\n  ---------  --\n  a          10\n  long name   7\n"
        );
    }
}
