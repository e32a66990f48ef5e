//! Every quirk switch is noticed by a probe.
//!
//! The probes (group `probe`) assert what the default profile's firmware,
//! EDK2 edk2-stable202211, guarantees. For each switch of
//! `Quirks::names()` in turn, this flips it on the default profile and runs
//! the probes on the simulator: at least one must fail, or the switch
//! changes nothing any probe can see, which is a defect of the probes (or
//! of the switch). Unflipped, every probe must pass. A new switch is
//! covered without editing this file.
//!
//! `cargo test -p efisock-conformance --test quirk_flip`

use std::thread;

use efisock_conformance::cases;
use efisock_conformance::runner::{Case, DEFAULT_SEED, run_one};
use efisock_conformance::sim_target::{SimSetup, SimTarget};
use efisock_sim::{Profile, Quirks};

const GROUP: &str = "probe";

fn probes() -> Vec<Case<SimTarget>> {
    cases::all::<SimTarget>()
        .into_iter()
        .filter(|c| c.group == GROUP)
        .collect()
}

/// The probes that fail under `overrides`, with their messages.
fn failing(overrides: &[(String, bool)]) -> Vec<(String, String)> {
    let setup = SimSetup {
        quirk_overrides: overrides.to_vec(),
        ..SimSetup::default()
    };
    probes()
        .iter()
        .filter_map(|case| {
            let report = run_one(case, DEFAULT_SEED, &mut |s| setup.build(s));
            (!report.passed).then(|| (case.id(), report.message.unwrap_or_default()))
        })
        .collect()
}

#[test]
fn every_probe_passes_on_the_default_profile() {
    assert_eq!(
        SimSetup::default().profile,
        Profile::Edk2Stable202211,
        "the probes assert edk2-stable202211"
    );
    assert!(
        probes().len() >= Quirks::names().len(),
        "fewer probes than quirk switches"
    );
    let failed = failing(&[]);
    assert!(
        failed.is_empty(),
        "probes failing on the unflipped default profile (seed {DEFAULT_SEED:#x}):\n{failed:#?}"
    );
}

#[test]
fn every_quirk_switch_is_noticed_by_a_probe() {
    let defaults = Profile::Edk2Stable202211.quirks();
    let names = Quirks::names();
    // Two workers: the switches are independent runs, and the machine is
    // shared.
    let (left, right) = names.split_at(names.len() / 2);
    let run = move |part: &'static [&'static str]| {
        move || {
            part.iter()
                .map(|&name| {
                    let on = defaults.get(name).expect("a listed name");
                    (name, !on, failing(&[(name.to_string(), !on)]))
                })
                .collect::<Vec<_>>()
        }
    };
    let a = thread::spawn(run(left));
    let b = thread::spawn(run(right));
    let mut results = a.join().expect("worker");
    results.extend(b.join().expect("worker"));
    let mut unnoticed = Vec::new();
    for (name, flipped, failed) in &results {
        let ids: Vec<&str> = failed.iter().map(|(id, _)| id.as_str()).collect();
        println!("{name}={}: failing probes {ids:?}", on_off(*flipped));
        if failed.is_empty() {
            unnoticed.push(format!("{name}={}", on_off(*flipped)));
        }
    }
    assert!(
        unnoticed.is_empty(),
        "quirk switches no probe notices when flipped on the default profile \
         (seed {DEFAULT_SEED:#x}; replay one with `cargo run --release -- --filter probe \
         --quirk NAME=on|off`): {unnoticed:?}"
    );
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}
