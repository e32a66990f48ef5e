//! The suite binary: `cargo run --release -- [OPTIONS]` at the workspace
//! root. See `efisock_conformance::cli::USAGE`.

use std::process::ExitCode;

use efisock_conformance::cli::{self, Command};
use efisock_conformance::suite;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(opts)) => opts,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(suite::EXIT_USAGE);
        }
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    // The simulator target and the case list are wired in by the integration
    // step, which replaces this call with
    // `suite::run(&opts, CASES, &mut |seed| make_sim(seed, &opts), &mut out, &mut err)`.
    ExitCode::from(suite::no_cases_registered(&opts, &mut out, &mut err))
}
