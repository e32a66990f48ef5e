//! Every conformance case as its own test on the simulator.
//!
//! `cargo test -p efisock-conformance --test sim -- transfer/` runs a group;
//! `EFISOCK_SEED=0x1234` picks the seed (default: the suite's default seed).
//! A failure prints the seed and the commands that replay it exactly.

use efisock_conformance::cases;
use efisock_conformance::runner::{DEFAULT_SEED, run_one};
use efisock_conformance::sim_target::{SimSetup, SimTarget};
use libtest_mimic::{Arguments, Failed, Trial};

fn seed() -> Result<u64, String> {
    match std::env::var("EFISOCK_SEED") {
        Err(_) => Ok(DEFAULT_SEED),
        Ok(text) => {
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.map_err(|_| format!("EFISOCK_SEED={text:?} is not a decimal or 0x-hex u64"))
        }
    }
}

fn main() {
    let args = Arguments::from_args();
    let seed = match seed() {
        Ok(seed) => seed,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let trials = cases::all::<SimTarget>()
        .into_iter()
        .map(|case| {
            let id = case.id();
            Trial::test(id.clone(), move || {
                let setup = SimSetup::default();
                let report = run_one(&case, seed, &mut |s| setup.build(s));
                if report.passed {
                    return Ok(());
                }
                Err(Failed::from(format!(
                    "{}\n  seed {seed:#x}\n  replay: EFISOCK_SEED={seed:#x} cargo test -p efisock-conformance --test sim -- --exact {id}\n      or: cargo run --release -- --seed {seed:#x} --filter {id}",
                    report.message.unwrap_or_default()
                )))
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
