//! Results, their statistics (median and range over rounds, per-round ratios to mmlog),
//! the targets of issue 7, and the markdown report.

use std::fmt::Write as _;
use std::time::Duration;

use crate::workload::{Metric, Row};

/// Every duration measured: `samples[row][engine]` holds one entry per round.
#[derive(Debug)]
pub struct Results {
    pub rows: Vec<Row>,
    pub engines: Vec<&'static str>,
    pub samples: Vec<Vec<Vec<Option<Duration>>>>,
    /// Largest fraction of a data set found still cached before a cold read, per engine.
    pub cold_resident: Vec<Option<f64>>,
}

/// Median, minimum and maximum of some values.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// The unit a row is shown in.
fn unit(row: &Row) -> &'static str {
    match row.metric {
        Metric::Time => "s",
        Metric::Throughput if row.record_bytes >= 1024 => "MiB/s",
        Metric::Throughput => "records/s",
    }
}

/// The value a row shows for one duration.
fn value(row: &Row, took: Duration) -> f64 {
    let secs = took.as_secs_f64().max(1e-9);
    match row.metric {
        Metric::Time => secs,
        Metric::Throughput if row.record_bytes >= 1024 => {
            row.records as f64 * row.record_bytes as f64 / secs / (1024.0 * 1024.0)
        }
        Metric::Throughput => row.records as f64 / secs,
    }
}

/// Three significant digits, with k/M for large numbers.
fn human(v: f64) -> String {
    let (scaled, suffix) = if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e4 {
        (v / 1e3, " k")
    } else {
        (v, "")
    };
    let digits = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else if scaled >= 1.0 {
        2
    } else {
        3
    };
    format!("{scaled:.digits$}{suffix}")
}

fn ratio(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

impl Results {
    pub fn new(rows: Vec<Row>, engines: Vec<&'static str>, rounds: usize) -> Results {
        let samples = rows
            .iter()
            .map(|_| engines.iter().map(|_| vec![None; rounds]).collect())
            .collect();
        let cold_resident = engines.iter().map(|_| None).collect();
        Results {
            rows,
            engines,
            samples,
            cold_resident,
        }
    }

    pub fn record(&mut self, row: usize, engine: usize, round: usize, took: Duration) {
        self.samples[row][engine][round] = Some(took);
    }

    pub fn note_cold_resident(&mut self, engine: usize, fraction: f64) {
        let slot = &mut self.cold_resident[engine];
        *slot = Some(slot.map_or(fraction, |f: f64| f.max(fraction)));
    }

    /// The row's values for one engine over the rounds.
    pub fn spread(&self, row: usize, engine: usize) -> Option<Spread> {
        let values: Vec<f64> = self.samples[row][engine]
            .iter()
            .flatten()
            .map(|&d| value(&self.rows[row], d))
            .collect();
        Spread::of(&values)
    }

    /// Engine time ÷ mmlog time, per round (how many times faster mmlog did the same
    /// work in the same round; below 1, the peer was faster).
    pub fn lead(&self, row: usize, engine: usize) -> Option<Spread> {
        let ratios: Vec<f64> = self.samples[row][0]
            .iter()
            .zip(&self.samples[row][engine])
            .filter_map(|(mmlog, peer)| {
                Some(peer.as_ref()?.as_secs_f64() / mmlog.as_ref()?.as_secs_f64().max(1e-9))
            })
            .collect();
        Spread::of(&ratios)
    }

    fn row_index(&self, key: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.key == key)
    }

    fn engine_index(&self, name: &str) -> Option<usize> {
        self.engines.iter().position(|&e| e == name)
    }

    /// The targets of issue 7 that this run measured, each with the measured lead.
    pub fn targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |what: String, key: &str, peer: &str, goal: f64| {
            let (Some(row), Some(engine)) = (self.row_index(key), self.engine_index(peer)) else {
                return;
            };
            if let Some(lead) = self.lead(row, engine) {
                let verdict = if lead.median >= goal {
                    "met"
                } else {
                    "**missed**"
                };
                out.push(format!(
                    "{what}: goal ≥ {goal}×, measured {} (range {}–{}): {verdict}",
                    ratio(lead.median),
                    ratio(lead.min),
                    ratio(lead.max)
                ));
            }
        };
        check(
            "mmlog vs okaywal, bulk 128 B".into(),
            "bulk/128 B",
            "okaywal",
            3.0,
        );
        for sync in ["sync1", "sync64"] {
            check(
                format!("mmlog vs okaywal, durable 128 B {sync}, 4 threads"),
                &format!("durable/128 B/{sync}/4t"),
                "okaywal",
                2.0,
            );
        }
        check(
            "mmlog vs okaywal, recovery warm".into(),
            "recovery/warm",
            "okaywal",
            8.0,
        );
        let behind: Vec<String> = self
            .rows
            .iter()
            .enumerate()
            .flat_map(|(row, r)| {
                ["fjall", "SQLite"].into_iter().filter_map(move |peer| {
                    let engine = self.engine_index(peer)?;
                    let lead = self.lead(row, engine)?;
                    (lead.median < 1.0)
                        .then(|| format!("{} ({peer}: {})", r.label, ratio(lead.median)))
                })
            })
            .collect();
        if behind.is_empty() {
            out.push("mmlog ahead of fjall and SQLite on every row: met".into());
        } else {
            out.push(format!(
                "mmlog ahead of fjall and SQLite on every row: **missed** on {}",
                behind.join("; ")
            ));
        }
        out
    }

    /// The two tables: measured values, then mmlog's lead over each peer.
    pub fn tables(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Median over the rounds, [min–max] below it. Throughput rows: higher is better; \
             recovery rows: seconds, lower is better.\n"
        );
        let _ = write!(md, "| workload | unit |");
        for e in &self.engines {
            let _ = write!(md, " {e} |");
        }
        let _ = write!(md, "\n|---|---|");
        for _ in &self.engines {
            let _ = write!(md, "---:|");
        }
        md.push('\n');
        for (r, row) in self.rows.iter().enumerate() {
            let _ = write!(md, "| {} | {} |", row.label, unit(row));
            for e in 0..self.engines.len() {
                match self.spread(r, e) {
                    Some(s) => {
                        let _ = write!(
                            md,
                            " {}<br>[{}–{}] |",
                            human(s.median),
                            human(s.min),
                            human(s.max)
                        );
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }

        let _ = writeln!(
            md,
            "\nmmlog's lead: the peer's time ÷ mmlog's time for the same work in the same \
             round, median over the rounds [min–max]. Above 1×, mmlog was faster; **bold** \
             marks rows where the peer was faster.\n"
        );
        let _ = write!(md, "| workload |");
        for e in self.engines.iter().skip(1) {
            let _ = write!(md, " mmlog vs {e} |");
        }
        let _ = write!(md, "\n|---|");
        for _ in self.engines.iter().skip(1) {
            let _ = write!(md, "---:|");
        }
        md.push('\n');
        for (r, row) in self.rows.iter().enumerate() {
            let _ = write!(md, "| {} |", row.label);
            for e in 1..self.engines.len() {
                match self.lead(r, e) {
                    Some(l) => {
                        let cell =
                            format!("{} [{}–{}]", ratio(l.median), ratio(l.min), ratio(l.max));
                        if l.median < 1.0 {
                            let _ = write!(md, " **{cell}** |");
                        } else {
                            let _ = write!(md, " {cell} |");
                        }
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        md
    }
}
