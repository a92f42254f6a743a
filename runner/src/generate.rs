//! `weir gen`: writes generated input (the Taobao user log, the Nexmark events) to a file or to
//! standard output, and says what it wrote.

use crate::cli::GenCommand;
use crate::{nexmark_gen, user_log_gen};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs one `weir gen` command.
pub fn generate(what: GenCommand) -> ExitCode {
    let written = match what {
        GenCommand::UserLog {
            rows,
            seed,
            out,
            no_header,
        } => {
            let spec = user_log_gen::UserLogSpec {
                rows,
                seed,
                header: !no_header,
            };
            write_to(out, |mut w| user_log_gen::write_user_log(spec, &mut w)).map(|genders| {
                tracing::info!(
                    "wrote {rows} rows; gender 0: {}, 1: {}, 2: {}",
                    genders[0],
                    genders[1],
                    genders[2]
                );
            })
        }
        GenCommand::Nexmark {
            events,
            seed,
            start,
            rate,
            out,
            no_header,
        } => {
            let spec = nexmark_gen::NexmarkSpec {
                events,
                seed,
                start,
                rate,
                header: !no_header,
            };
            write_to(out, |mut w| nexmark_gen::write_nexmark(&spec, &mut w)).map(|written| {
                tracing::info!(
                    "wrote {events} events: {} persons, {} auctions, {} bids",
                    written.persons,
                    written.auctions,
                    written.bids
                );
            })
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(failed) => failed,
    }
}

/// Runs `write` on a buffered `out` (standard output when `None`); the exit code, with the error
/// said on failure.
fn write_to<T>(
    out: Option<PathBuf>,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> Result<T, ExitCode> {
    let result = match &out {
        Some(path) => std::fs::File::create(path)
            .and_then(|f| write(&mut BufWriter::with_capacity(1 << 20, f))),
        None => write(&mut BufWriter::new(std::io::stdout().lock())),
    };
    result.map_err(|e| {
        eprintln!(
            "error: cannot write {}: {e}",
            out.as_ref()
                .map_or("standard output".into(), |p| p.display().to_string())
        );
        ExitCode::FAILURE
    })
}
