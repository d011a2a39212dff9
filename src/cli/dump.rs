//! `mmlog dump DIR`: the records of a log, one line each, streamed (memory does not
//! grow with the log), stopping quietly when the reader of the output goes away.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mmlog::Lsn;

use super::open::{Mode, error, open};
use super::{CliError, CliResult, EXIT_OK};

/// The long help of `mmlog dump`: formats and the JSON shape.
pub(crate) const LONG_HELP: &str = "\
Output, one line per record unless --raw:
  default   LSN, payload length, the first 16 payload bytes in hex (… when cut)
  --hex     the same with the whole payload in hex
  --raw     the payloads themselves, back to back, nothing else

JSON (--json): one object per record, one per line, in LSN order; keys always
present, in this order:
  {\"lsn\": int, \"len\": int, \"hex\": str (the whole payload)}

Streams: memory does not grow with the log, and a closed pipe (`| head`) ends it
quietly with exit status 0. Exit status: 0 done, 1 the log is damaged where it was
read (try --mode skip), 2 usage or I/O error, a log another process holds, or a path
that holds no log.

Examples:
  mmlog dump ./wal --from 10 --to 20 --hex
  mmlog dump ./wal --json | head -3";

/// Arguments of `mmlog dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// The log directory.
    dir: PathBuf,
    /// First LSN to print (default: the first in the log).
    #[arg(long, value_name = "LSN")]
    from: Option<u64>,
    /// Last LSN to print (default: the last in the log).
    #[arg(long, value_name = "LSN")]
    to: Option<u64>,
    /// Print each whole payload in hex.
    #[arg(long, conflicts_with_all = ["raw", "json"])]
    hex: bool,
    /// Write the payloads themselves, back to back, and nothing else.
    #[arg(long, conflicts_with = "json")]
    raw: bool,
    /// One JSON object per record (shape in --help).
    #[arg(long)]
    json: bool,
    /// How recovery treats damage; `skip` reads around it.
    #[arg(long, value_enum, default_value_t = Mode::Tolerate)]
    mode: Mode,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(line: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        line.push(HEX[usize::from(b >> 4)]);
        line.push(HEX[usize::from(b & 0xf)]);
    }
}

/// `mmlog dump DIR`.
pub(crate) fn run(args: &DumpArgs) -> CliResult<ExitCode> {
    let from = args.from.unwrap_or(0);
    let to = args.to.unwrap_or(u64::MAX);
    if from > to {
        return Err(CliError::usage(
            format!("--from {from} is after --to {to}"),
            "give --from LSN at or below --to LSN",
        ));
    }
    let dir = args.dir.as_path();
    let (wal, _report) = open(dir, args.mode.recovery())?;
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    // One line buffer, reused: it grows to the largest record printed, never more.
    let mut line: Vec<u8> = Vec::new();
    for r in wal.iter_from(Lsn(from)).map_err(|e| error(dir, e))? {
        let r = r.map_err(|e| error(dir, e))?;
        let lsn = r.lsn().0;
        if lsn > to {
            break;
        }
        let p = r.payload();
        if args.raw {
            out.write_all(p)?;
            continue;
        }
        line.clear();
        if args.json {
            write!(line, "{{\"lsn\":{lsn},\"len\":{},\"hex\":\"", p.len())?;
            push_hex(&mut line, p);
            line.extend_from_slice(b"\"}\n");
        } else {
            write!(line, "{lsn:>12}  {:>8}  ", p.len())?;
            if args.hex || p.len() <= 16 {
                push_hex(&mut line, p);
            } else {
                push_hex(&mut line, p.get(..16).unwrap_or(p));
                line.extend_from_slice("…".as_bytes());
            }
            line.push(b'\n');
        }
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(ExitCode::from(EXIT_OK))
}
