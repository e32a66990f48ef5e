//! The suite binary's contract: exit codes and the honest empty run.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_efisock-conformance"))
        .args(args)
        .output()
        .expect("run the suite binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_exits_zero_with_usage() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("--seeds N"));
}

#[test]
fn bad_arguments_exit_two_with_a_clear_error() {
    for (args, needle) in [
        (&["--frobnicate"][..], "unknown option --frobnicate"),
        (&["--seed", "zz"][..], "'zz' is not a decimal or 0x-hex u64"),
        (&["--quirk", "cancel=maybe"][..], "'maybe' is not on|off"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            text(&o.stderr).contains(needle),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
}

#[test]
fn qemu_target_is_reported_not_implemented() {
    let o = run(&["--target", "qemu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("NOT IMPLEMENTED YET"));
}

#[test]
fn empty_registry_prints_no_rows_and_a_zero_summary() {
    let o = run(&["--seed", "0x10"]);
    assert_eq!(o.status.code(), Some(2), "nothing was verified");
    assert!(text(&o.stderr).contains("no cases registered"));
    let out = text(&o.stdout);
    assert!(out.lines().any(|l| l == "0 passed, 0 failed"), "{out}");
    assert!(out.contains("seed 0x10"), "{out}");
    assert!(!out.contains("PASS") && !out.contains("FAIL"), "{out}");
}
