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
    if let Some(path) = &opts.replay_log {
        return ExitCode::from(replay_log(
            std::path::Path::new(path),
            &setup,
            &cases,
            &mut out,
            &mut err,
        ));
    }
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

/// `--replay-log FILE`: every recording in FILE replayed on the simulator
/// (same case, same seed) and diffed call by call. Exit 0 when every case is
/// call-level identical, 1 when one diverges, 2 when the file cannot be used.
fn replay_log(
    path: &std::path::Path,
    setup: &SimSetup,
    cases: &[efisock_conformance::runner::Case<SimTarget>],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    use efisock_conformance::calllog::{self, CallLogError, SIM_VS_RECORDING};
    let recordings = match calllog::file::read_file(path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: --replay-log: {e}");
            return suite::EXIT_USAGE;
        }
    };
    let mut plan = Vec::new();
    for rec in &recordings {
        match cases.iter().find(|c| c.id() == rec.id) {
            Some(case) => plan.push((case, rec)),
            None => {
                let e = CallLogError::UnknownCase { id: rec.id.clone() };
                let _ = writeln!(err, "error: --replay-log {}: {e}", path.display());
                return suite::EXIT_USAGE;
            }
        }
    }
    let mut identical = 0;
    for (case, rec) in &plan {
        let (report, sim) = calllog::record_one(case, rec.seed, &mut |seed| setup.build(seed));
        let diff = calllog::compare(&sim, rec, SIM_VS_RECORDING);
        identical += usize::from(diff.identical());
        let _ = writeln!(
            out,
            "{} seed {}: simulator {}; call-level: {diff}",
            rec.id,
            efisock_conformance::runner::fmt_seed(rec.seed),
            if report.passed { "pass" } else { "FAIL" },
        );
        if let Some(m) = &report.message {
            let _ = writeln!(out, "    {}", m.replace('\n', "\n    "));
        }
    }
    let _ = writeln!(
        out,
        "call-level: {identical} of {} cases identical",
        plan.len()
    );
    if identical == plan.len() {
        suite::EXIT_PASS
    } else {
        suite::EXIT_FAIL
    }
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
    use efisock_conformance::calllog::{self, CaseDiff, SIM_VS_OVMF};
    use efisock_conformance::fidelity::{self, CallDiffs};
    use efisock_conformance::runner::TextReporter;
    if opts.json || opts.trace || opts.list {
        let _ = writeln!(
            err,
            "error: --compare takes neither --json, --trace nor --list"
        );
        return suite::EXIT_USAGE;
    }
    let _ = writeln!(out, "== simulator");
    let plan = opts.plan();
    let (sim_reports, sim_calls): (Vec<_>, Vec<_>) = {
        let mut text = TextReporter::new(&mut *out);
        let (_, pairs) =
            calllog::run_recorded(cases, &plan, &mut |seed| setup.build(seed), &mut text);
        pairs.into_iter().unzip()
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
    let calls_dir = efisock_qemu::target_dir().join("efisock-calllog");
    let mut diffs = CallDiffs::new();
    let _ = writeln!(out, "\n== call level (simulator vs OVMF)");
    for sim in &sim_calls {
        let ovmf = run
            .guest
            .calls
            .iter()
            .find(|o| o.id == sim.id && o.seed == sim.seed);
        let diff = match ovmf {
            Some(o) => calllog::compare(sim, o, SIM_VS_OVMF),
            None => CaseDiff::Incomplete {
                why: "no OVMF recording (the case did not finish in OVMF)".into(),
            },
        };
        let _ = writeln!(out, "{}: {diff}", sim.id);
        for (who, rec) in [("sim", Some(sim)), ("ovmf", ovmf)] {
            if let Some(Err(e)) = rec.map(|r| r.write_to(&calls_dir.join(who))) {
                let _ = writeln!(err, "error: {e}");
            }
        }
        diffs.insert((sim.id.clone(), sim.seed), diff);
    }
    let unexplained_calls = fidelity::unexplained_calls(&diffs);
    let md = fidelity::render(&sim_reports, &run.guest.reports, &diffs, &header);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fidelity.md");
    if let Err(e) = std::fs::write(&path, md) {
        let _ = writeln!(err, "error: writing {}: {e}", path.display());
        return suite::EXIT_FAIL;
    }
    let bad = fidelity::unexplained(&sim_reports, &run.guest.reports);
    for b in &bad {
        let _ = writeln!(err, "fidelity: unexplained divergence: {b}");
    }
    for u in &unexplained_calls {
        let _ = writeln!(
            err,
            "fidelity: call-level divergence without a reason in \
             conformance/src/expectations.rs (CALL_LEVEL): {u}"
        );
    }
    let _ = writeln!(
        err,
        "fidelity: wrote {}; recordings in {} (replay one with --replay-log FILE)",
        path.display(),
        calls_dir.display()
    );
    let _ = writeln!(
        err,
        "fidelity: {} identical case(s) recorded no firmware call on either target",
        fidelity::empty_count(&diffs)
    );
    let _ = writeln!(out, "{}", fidelity::call_level_line(&diffs));
    let sim_ok = sim_reports.iter().all(|r| r.passed);
    if sim_ok && bad.is_empty() && unexplained_calls.is_empty() && qemu_status == suite::EXIT_PASS {
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
