//! Output helpers: aligned text tables and flat JSON objects (no serde needed).

use std::fmt::Write as _;
use std::io::{self, Write};

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

/// A JSON array of already-encoded values.
pub(crate) fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// Prints rows as a table whose columns are as wide as their widest cell; the first
/// column is left-aligned, the others right-aligned.
pub(crate) fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i == 0 {
                let _ = write!(s, "{cell:<w$}");
            } else {
                let _ = write!(s, "  {cell:>w$}");
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

/// Writes a line to stdout, treating a closed pipe (`| head`) as a normal end.
pub(crate) fn emit(out: &mut dyn Write, line: &str) -> io::Result<bool> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hex of up to `max` bytes, with `…` when cut.
pub(crate) fn hex(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(max * 2 + 3);
    for b in bytes.iter().take(max) {
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > max {
        s.push('…');
    }
    s
}
