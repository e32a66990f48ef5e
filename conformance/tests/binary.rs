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
fn qemu_target_refuses_simulator_only_options_before_booting() {
    for (args, needle) in [
        (
            &["--target", "qemu", "--profile", "legacy"][..],
            "OVMF is what it is",
        ),
        (
            &["--target", "qemu", "--trace"][..],
            "--trace is not supported with --target qemu",
        ),
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
fn a_filtered_run_prints_its_row_and_summary() {
    let o = run(&["--seed", "0x10", "--filter", "lifecycle/connect_echo_hello"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("PASS")).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].contains("lifecycle/connect_echo_hello"), "{out}");
    assert!(out.lines().any(|l| l == "1 passed, 0 failed"), "{out}");
    assert!(out.contains("seed 0x10"), "{out}");
}

#[test]
fn json_lines_carry_each_case_and_the_summary() {
    let o = run(&["--json", "--filter", "addr/"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let cases = lines.iter().filter(|v| v["type"] == "case").count();
    assert_eq!(cases, 5, "{out}");
    assert!(lines.iter().any(|v| v["type"] == "summary"), "{out}");
}

#[test]
fn list_names_every_case_and_unknown_profiles_are_refused() {
    let o = run(&["--list"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).lines().count() >= 60);
    let o = run(&["--profile", "edk2-stable209912"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("unknown profile"),
        "{}",
        text(&o.stderr)
    );
}
