//! The suite binary: `cargo run --release -- [OPTIONS]` at the workspace
//! root. See `efisock_conformance::cli::USAGE`.

use std::process::ExitCode;

use efisock_conformance::cli::{self, Command, RunOptions};
use efisock_conformance::sim_target::{SimSetup, SimTarget};
use efisock_conformance::{cases, suite};

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
    let setup = match sim_setup(&opts) {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(suite::EXIT_USAGE);
        }
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let cases = cases::all::<SimTarget>();
    ExitCode::from(suite::run(
        &opts,
        &cases,
        &mut |seed| setup.build(seed),
        &mut out,
        &mut err,
    ))
}

/// The simulator setup the options ask for, with profile and quirk names
/// checked before any case runs.
fn sim_setup(opts: &RunOptions) -> Result<SimSetup, String> {
    let mut setup = SimSetup::default();
    if let Some(name) = &opts.profile {
        setup.profile = name.parse()?;
    }
    setup.quirk_overrides = opts.quirks.clone();
    setup.strategy = opts.strategy.clone();
    setup.config(0)?;
    Ok(setup)
}
