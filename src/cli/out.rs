//! Output helpers: aligned text tables, flat JSON objects (no serde needed), sizes,
//! and progress bars that only a terminal sees.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A flat JSON object, built field by field in a stable order.
#[derive(Debug, Default)]
pub(crate) struct Json {
    body: String,
}

impl Json {
    pub(crate) fn new() -> Json {
        Json::default()
    }

    fn key(&mut self, k: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        push_str(&mut self.body, k);
        self.body.push(':');
    }

    pub(crate) fn str(mut self, k: &str, v: &str) -> Json {
        self.key(k);
        push_str(&mut self.body, v);
        self
    }

    pub(crate) fn u64(mut self, k: &str, v: u64) -> Json {
        self.key(k);
        let _ = write!(self.body, "{v}");
        self
    }

    /// A number, or `null`.
    pub(crate) fn opt_u64(mut self, k: &str, v: Option<u64>) -> Json {
        self.key(k);
        match v {
            Some(x) => {
                let _ = write!(self.body, "{x}");
            }
            None => self.body.push_str("null"),
        }
        self
    }

    /// A string, or `null`.
    pub(crate) fn opt_str(mut self, k: &str, v: Option<&str>) -> Json {
        self.key(k);
        match v {
            Some(x) => push_str(&mut self.body, x),
            None => self.body.push_str("null"),
        }
        self
    }

    /// A boolean, or `null`.
    pub(crate) fn opt_bool(self, k: &str, v: Option<bool>) -> Json {
        match v {
            Some(b) => self.bool(k, b),
            None => self.raw(k, "null"),
        }
    }

    pub(crate) fn f64(mut self, k: &str, v: Option<f64>) -> Json {
        self.key(k);
        match v {
            Some(x) if x.is_finite() => {
                let _ = write!(self.body, "{x:.6}");
            }
            _ => self.body.push_str("null"),
        }
        self
    }

    pub(crate) fn bool(mut self, k: &str, v: bool) -> Json {
        self.key(k);
        self.body.push_str(if v { "true" } else { "false" });
        self
    }

    /// A field whose value is already JSON.
    pub(crate) fn raw(mut self, k: &str, json: &str) -> Json {
        self.key(k);
        self.body.push_str(json);
        self
    }

    pub(crate) fn finish(self) -> String {
        format!("{{{}}}", self.body)
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON array of strings.
pub(crate) fn str_array(items: &[String]) -> String {
    let encoded: Vec<String> = items
        .iter()
        .map(|s| {
            let mut e = String::new();
            push_str(&mut e, s);
            e
        })
        .collect();
    array(&encoded)
}

/// A JSON array of already-encoded values.
pub(crate) fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// Prints rows as a table whose columns are as wide as their widest cell; the first
/// column is left-aligned, the others right-aligned (numbers).
pub(crate) fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    aligned(out, header, rows, false)
}

/// [`table`] whose last column is text, left-aligned.
pub(crate) fn text_table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> io::Result<()> {
    aligned(out, header, rows, true)
}

fn aligned(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
    text_last: bool,
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let last = widths.len().saturating_sub(1);
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            // Pad by characters, not bytes (`µ`, `…`).
            let pad = w.saturating_sub(cell.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            if i == 0 || (text_last && i == last) {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(out, "{}", line(&mut row.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// A size for people: `512 B`, `64.0 KiB`, `1.5 GiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = "KiB";
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The last component of `path`, for tables (the directory is printed once above).
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A spinner with a message, drawn on stderr only when stderr is a terminal; for steps
/// whose progress the library does not report (recovery, repair).
pub(crate) fn spinner(msg: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A progress bar of `total` units, drawn on stderr only when stderr is a terminal.
pub(crate) fn bar(total: u64, msg: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}
