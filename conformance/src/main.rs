//! The suite binary: `cargo run --release -- [OPTIONS]` at the workspace
//! root. See `efisock_conformance::cli::USAGE`.

use std::io::Write;
use std::process::ExitCode;

use efisock_conformance::cli::{self, Command, RunOptions, TargetKind};
use efisock_conformance::error::SetupError;
use efisock_conformance::sim_target::{SimSetup, SimTarget};
use efisock_conformance::{cases, suite};

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "fuzz") {
        return ExitCode::from(efisock_conformance::fuzz::cli::main(
            std::env::args_os().skip(2),
        ));
    }
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
    if opts.compare {
        return ExitCode::from(compare(&opts, &setup, &cases, &mut out, &mut err));
    }
    let mut opts = opts;
    if opts.target == TargetKind::Qemu {
        if !opts.list {
            return ExitCode::from(run_qemu(&opts, &mut out, &mut err));
        }
        // The case list is target-neutral: list it from the simulator build.
        opts.target = TargetKind::Sim;
    }
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
fn sim_setup(opts: &RunOptions) -> Result<SimSetup, SetupError> {
    let mut setup = SimSetup::default();
    if let Some(name) = &opts.profile {
        setup.profile = name
            .parse::<efisock_sim::Profile>()
            .map_err(|e| SetupError::Profile(e.into()))?;
    }
    setup.quirk_overrides = opts.quirks.clone();
    setup.strategy = opts.strategy.clone();
    if let Some(secs) = opts.case_bound_secs {
        setup.case_bound = Some(std::time::Duration::from_secs(secs));
    }
    setup.config(0)?;
    Ok(setup)
}

#[cfg(feature = "qemu")]
fn run_qemu(opts: &RunOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    efisock_conformance::qemu::run(opts, out, err)
}

#[cfg(not(feature = "qemu"))]
fn run_qemu(_: &RunOptions, _: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let _ = writeln!(err, "{}", suite::QEMU_NOT_IN_PROCESS);
    suite::EXIT_USAGE
}

/// `--compare`: the selected cases on the simulator, then in OVMF, then
/// `docs/fidelity.md`. Exit 0 only if both runs meet their expectations and
/// no divergence is unexplained.
#[cfg(feature = "qemu")]
fn compare(
    opts: &RunOptions,
    setup: &SimSetup,
    cases: &[efisock_conformance::runner::Case<SimTarget>],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    use efisock_conformance::fidelity::{self, Collect};
    use efisock_conformance::runner::{TextReporter, run_cases};
    if opts.json || opts.trace || opts.list {
        let _ = writeln!(
            err,
            "error: --compare takes neither --json, --trace nor --list"
        );
        return suite::EXIT_USAGE;
    }
    let _ = writeln!(out, "== simulator");
    let plan = opts.plan();
    let sim_reports = {
        let mut text = TextReporter::new(&mut *out);
        let mut collect = Collect::new(&mut text);
        run_cases(
            cases,
            &plan,
            &mut |seed| setup.build(seed),
            &mut collect,
            None,
        );
        collect.reports
    };
    let _ = writeln!(out, "\n== OVMF");
    let run = match efisock_conformance::qemu::execute(opts, err) {
        Ok(run) => run,
        Err(e) => {
            let _ = writeln!(err, "qemu: {e}");
            return suite::EXIT_USAGE;
        }
    };
    let qemu_status = efisock_conformance::qemu::report(opts, &run, out, err);
    let header = format!(
        "Base seed {}, {} seed(s){}. Simulator profile edk2-stable202211 (default); OVMF \
         edk2-stable202211 (Debian 2022.11-6+deb12u2) under QEMU TCG. OVMF run wall time \
         {:.1} s; whole-run limit killed QEMU: {}.",
        opts.seed_str(),
        opts.seeds,
        if opts.filters.is_empty() {
            String::new()
        } else {
            format!(", filters {:?}", opts.filters)
        },
        run.wall.as_secs_f64(),
        run.killed
    );
    let md = fidelity::render(&sim_reports, &run.guest.reports, &header);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fidelity.md");
    if let Err(e) = std::fs::write(&path, md) {
        let _ = writeln!(err, "error: writing {}: {e}", path.display());
        return suite::EXIT_FAIL;
    }
    let bad = fidelity::unexplained(&sim_reports, &run.guest.reports);
    for b in &bad {
        let _ = writeln!(err, "fidelity: unexplained divergence: {b}");
    }
    let _ = writeln!(err, "fidelity: wrote {}", path.display());
    let sim_ok = sim_reports.iter().all(|r| r.passed);
    if sim_ok && bad.is_empty() && qemu_status == suite::EXIT_PASS {
        suite::EXIT_PASS
    } else {
        suite::EXIT_FAIL
    }
}

#[cfg(not(feature = "qemu"))]
fn compare(
    _: &RunOptions,
    _: &SimSetup,
    _: &[efisock_conformance::runner::Case<SimTarget>],
    _: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let _ = writeln!(err, "--compare needs the `qemu` feature (on by default)");
    suite::EXIT_USAGE
}
