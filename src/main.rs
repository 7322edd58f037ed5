//! The `gnomon` server binary: parses the command line and runs [`gnomon_server::run`].

use std::process::ExitCode;

use gnomon_server::{Command, USAGE};

fn main() -> ExitCode {
    match Command::from_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => match gnomon_server::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gnomon: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("gnomon: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
