//! The `gnomon` server binary: parses the command line and runs [`gnomon_server::run`].

use std::process::ExitCode;

use gnomon_server::{Command, ServerError, USAGE};

/// The server's allocator. NB: glibc's malloc + free cost ~170 instructions a pair (callgrind,
/// release server, pgbench TPC-B -M prepared: ~140 pairs per transaction, 17% of the server's
/// instructions); mimalloc's thread-local free lists make the same pair a few dozen.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Structured logs on stderr: `<UTC time> <LEVEL> <target>: <message> key=value ...`.
///
/// NB: the subscriber is process-wide by nature; only the binary installs one, the library
/// crates just emit events.
fn init_logging(level: &str) -> Result<(), ServerError> {
    let level: tracing::Level = level
        .parse()
        .map_err(|_| ServerError::Usage(format!("unknown log level {level:?}")))?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| ServerError::Usage(format!("cannot set up logging: {e}")))
}

fn main() -> ExitCode {
    match Command::from_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => {
            match init_logging(&config.log_level).and_then(|()| gnomon_server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gnomon: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("gnomon: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
