//! `--record` and `--replay-log` through the suite binary: a recording
//! replays identical on the simulator, a planted divergence is reported at
//! its step, and unusable files are clear errors (exit 2).

use std::path::PathBuf;
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

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("efisock-replay-log-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

const CASE: &str = "lifecycle/connect_echo_hello";

fn record(dir: &std::path::Path) -> PathBuf {
    let o = run(&["--record", dir.to_str().unwrap(), "--filter", CASE]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn a_recording_replays_identical_and_a_planted_divergence_is_found() {
    let dir = scratch("roundtrip");
    let file = record(&dir);
    let o = run(&["--replay-log", file.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("call-level: 1 of 1 cases identical"), "{out}");

    // Plant a divergence: the recorded Transmit completes after a Poll.
    let body = std::fs::read_to_string(&file).unwrap();
    let planted = body.replacen(
        "\"done #1 transmit SUCCESS",
        "\"wait polls=4 other=0\",\"done #1 transmit SUCCESS",
        1,
    );
    assert_ne!(planted, body, "the case sends something: {body}");
    std::fs::write(&file, planted).unwrap();
    let o = run(&["--replay-log", file.to_str().unwrap()]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "Tcp4.Transmit token: simulator SUCCESS inside the call, recording pending until \
             Poll 4"
        ),
        "{out}"
    );
    assert!(out.contains("call-level: 0 of 1 cases identical"), "{out}");
}

#[test]
fn unusable_logs_are_clear_errors() {
    let dir = scratch("errors");
    let malformed = dir.join("malformed.jsonl");
    std::fs::write(&malformed, "{\"id\":\"a/b\"}\n").unwrap();
    let unknown = dir.join("unknown.jsonl");
    std::fs::write(
        &unknown,
        "{\"id\":\"no/such_case\",\"seed\":1,\"dropped\":0,\"steps\":[]}\n",
    )
    .unwrap();
    let missing = dir.join("missing.jsonl");
    for (file, needle) in [
        (&missing, "missing.jsonl: No such file"),
        (&malformed, "malformed.jsonl:1: no number field \"seed\""),
        (&unknown, "the recording is of case \"no/such_case\""),
    ] {
        let o = run(&["--replay-log", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{file:?}");
        let err = text(&o.stderr);
        assert!(err.contains(needle), "{file:?}: {err}");
    }
    let o = run(&["--replay-log", "x", "--filter", CASE]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--replay-log takes no --filter"));
}
