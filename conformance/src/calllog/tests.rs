use super::diff::{SIM_VS_OVMF, diff_steps};
use super::file::{STEPS_PER_LINE, parse_file};
use super::*;
use std::path::Path;

fn steps(lines: &[&str]) -> Vec<RawStep> {
    lines
        .iter()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn rec(lines: &[&str]) -> Recording {
    Recording {
        id: "g/case".into(),
        seed: 7,
        steps: steps(lines),
        dropped: 0,
    }
}

/// A connect, an 8-byte send and a receive, as the core records them.
const BASE: &[&str] = &[
    "call #4 Tcp4.Configure SUCCESS default=true station=0.0.0.0:0 remote=10.0.2.2:7007 active=true",
    "call #4 Tcp4.Connect SUCCESS 3",
    "wait polls=14 other=13",
    "done #4 connect SUCCESS 0",
    "call #4 Tcp4.GetModeData SUCCESS state=ESTABLISHED, config",
    "call #4 Tcp4.Transmit SUCCESS 8",
    "done #4 transmit SUCCESS 8 in-call",
    "call #4 Tcp4.Receive SUCCESS 65536",
    "wait polls=3 other=0",
    "done #4 receive SUCCESS 8",
];

#[test]
fn steps_round_trip_through_their_text() {
    let all = [
        "call #1 Tcp4.Configure SUCCESS default=true station=0.0.0.0:0 remote=10.0.2.2:7 active=true",
        "call #0 Tcp4ServiceBinding.CreateChild SUCCESS",
        "call*12 #1 Tcp4.GetModeData SUCCESS state=SYN_SENT, config",
        "wait polls=3 other=2",
        "done #9 receive CONNECTION_FIN 0",
        "done #9 transmit SUCCESS 12 in-call",
    ];
    for l in all {
        let s: RawStep = l.parse().unwrap();
        assert_eq!(s.to_string(), l);
    }
}

#[test]
fn malformed_steps_are_errors_naming_the_line() {
    for bad in [
        "",
        "call",
        "call 1 Tcp4.Poll SUCCESS",
        "call #x Tcp4.Poll SUCCESS",
        "call #1 Tcp4.Poll",
        "done #1 receive SUCCESS",
        "done #1 receive SUCCESS many",
        "wait polls=0 other=0",
        "wait polls=1",
        "wait polls=1 other=2 more",
        "call*1 #1 Tcp4.GetModeData SUCCESS",
        "done*2 #1 receive SUCCESS 3",
        "done #1 receive SUCCESS 3 inside",
        "done #1 receive SUCCESS 3 in-call extra",
        "poll #1 Tcp4.Poll SUCCESS",
    ] {
        let e = bad.parse::<RawStep>().unwrap_err();
        assert_eq!(e.input(), bad);
        assert!(e.to_string().contains("bad call-log step"), "{bad}: {e}");
    }
}

#[test]
fn identical_recordings_are_identical() {
    let d = compare(&rec(BASE), &rec(BASE), SIM_VS_OVMF);
    assert_eq!(d, CaseDiff::Identical { steps: 7 });
}

#[test]
fn a_poll_count_only_difference_is_identical() {
    let mut other: Vec<&str> = BASE.to_vec();
    other[2] = "wait polls=900 other=2";
    other[8] = "wait polls=1 other=40";
    let d = compare(&rec(BASE), &rec(&other), SIM_VS_OVMF);
    assert!(d.identical(), "{d}");
}

#[test]
fn ports_addresses_and_instances_are_renamed_in_first_seen_order() {
    let other: Vec<String> = BASE
        .iter()
        .map(|l| {
            l.replace("#4", "#9")
                .replace("10.0.2.2:7007", "10.0.2.2:40123")
        })
        .collect();
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    assert!(compare(&rec(BASE), &rec(&other), SIM_VS_OVMF).identical());
    let n = normalise(&rec(BASE).steps);
    assert_eq!(
        n[0].key,
        "i1 Tcp4.Configure(default=true station=0.0.0.0:0 remote=A1:P1 active=true) = SUCCESS"
    );
    // A second connection to a new port is a new symbol: the case used a
    // different value, which stays visible.
    let two = steps(&[
        "call #1 Tcp4.Configure SUCCESS remote=10.0.2.2:7007",
        "call #2 Tcp4.Configure SUCCESS remote=10.0.2.2:7008",
        "call #3 Tcp4.Configure SUCCESS remote=10.0.2.2:7007",
    ]);
    let keys: Vec<String> = normalise(&two).into_iter().map(|s| s.key).collect();
    assert_eq!(
        keys,
        [
            "i1 Tcp4.Configure(remote=A1:P1) = SUCCESS",
            "i2 Tcp4.Configure(remote=A1:P2) = SUCCESS",
            "i3 Tcp4.Configure(remote=A1:P1) = SUCCESS",
        ]
    );
}

#[test]
fn a_transmit_completing_after_polls_is_reported_at_its_step() {
    // OVMF: the Transmit token stays pending until the third Poll.
    let mut ovmf: Vec<&str> = BASE.to_vec();
    ovmf.insert(6, "wait polls=3 other=1");
    let d = compare(&rec(BASE), &rec(&ovmf), SIM_VS_OVMF);
    assert_eq!(
        d,
        CaseDiff::Diverges {
            step: 6,
            what: "Tcp4.Transmit token: simulator SUCCESS inside the call, OVMF pending until \
                   Poll 3 (SUCCESS)"
                .into(),
        }
    );
    assert!(
        d.to_string().starts_with("step 6: Tcp4.Transmit token"),
        "{d}"
    );
}

#[test]
fn a_transmit_completing_after_later_calls_names_both_timings() {
    // OVMF: the Transmit token is still pending when the next Transmit is
    // submitted; it completes after 5 Polls.
    let sim = steps(&[
        "call #1 Tcp4.Transmit SUCCESS 100",
        "done #1 transmit SUCCESS 100 in-call",
        "call #1 Tcp4.Transmit SUCCESS 100",
        "done #1 transmit SUCCESS 100 in-call",
    ]);
    let ovmf = steps(&[
        "call #1 Tcp4.Transmit SUCCESS 100",
        "call #1 Tcp4.Transmit SUCCESS 100",
        "wait polls=5 other=0",
        "done #1 transmit SUCCESS 100",
        "done #1 transmit SUCCESS 100",
    ]);
    let d = diff_steps(&normalise(&sim), &normalise(&ovmf), SIM_VS_OVMF);
    assert_eq!(
        d.to_string(),
        "step 2: Tcp4.Transmit token: simulator SUCCESS inside the call, OVMF pending until \
         Poll 5 (SUCCESS) (1 step(s) later on the OVMF, which first has \
         `i1 Tcp4.Transmit(100) = SUCCESS`)"
    );
}

#[test]
fn a_planted_status_divergence_is_reported_at_its_step() {
    let mut ovmf: Vec<&str> = BASE.to_vec();
    ovmf[4] = "call #4 Tcp4.GetModeData SUCCESS state=CLOSE_WAIT, config";
    match compare(&rec(BASE), &rec(&ovmf), SIM_VS_OVMF) {
        CaseDiff::Diverges { step, what } => {
            assert_eq!(step, 4);
            assert!(what.contains("state=ESTABLISHED") && what.contains("state=CLOSE_WAIT"));
        }
        d => panic!("{d}"),
    }
    // One side ending early is a divergence too, at the first missing step
    // (the receive stream, the 7th normalised step).
    let short = &BASE[..7];
    match compare(&rec(BASE), &rec(short), SIM_VS_OVMF) {
        CaseDiff::Diverges { step, what } => {
            assert_eq!(step, 7);
            assert!(what.ends_with("OVMF ends"), "{what}");
        }
        d => panic!("{d}"),
    }
}

#[test]
fn receive_streams_keep_their_byte_total_not_their_cut() {
    let cut_in_three = steps(&[
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive SUCCESS 1000",
        "call #1 Tcp4.Receive SUCCESS 65536",
        "wait polls=2 other=0",
        "done #1 receive SUCCESS 1000",
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive SUCCESS 1000",
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive CONNECTION_FIN 0",
    ]);
    let in_one = steps(&[
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive SUCCESS 3000",
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive CONNECTION_FIN 0",
    ]);
    let (a, b) = (normalise(&cut_in_three), normalise(&in_one));
    assert_eq!(
        diff_steps(&a, &b, SIM_VS_OVMF),
        CaseDiff::Identical { steps: 2 }
    );
    assert_eq!(a[0].key, "i1 receive stream: 3000 bytes");
    assert_eq!(a[0].detail, "4 Receive calls, 3 completions");
    let fewer = steps(&[
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive SUCCESS 2999",
        "call #1 Tcp4.Receive SUCCESS 65536",
        "done #1 receive CONNECTION_FIN 0",
    ]);
    let d = diff_steps(&a, &normalise(&fewer), SIM_VS_OVMF);
    assert!(matches!(d, CaseDiff::Diverges { step: 1, .. }), "{d}");
}

#[test]
fn a_connect_completing_inside_its_call_diverges_but_a_receive_does_not() {
    let inside = steps(&[
        "call #1 Tcp4.Connect SUCCESS 0",
        "done #1 connect SUCCESS 0 in-call",
    ]);
    let later = steps(&[
        "call #1 Tcp4.Connect SUCCESS 0",
        "wait polls=1 other=0",
        "done #1 connect SUCCESS 0",
    ]);
    let d = diff_steps(&normalise(&inside), &normalise(&later), SIM_VS_OVMF);
    assert_eq!(
        d.to_string(),
        "step 2: Tcp4.Connect token: simulator SUCCESS inside the call, OVMF pending until Poll 1 (SUCCESS)"
    );
    let accept_now = steps(&["call #1 Tcp4.Accept SUCCESS 0", "done #1 accept SUCCESS 0"]);
    let accept_later = steps(&[
        "call #1 Tcp4.Accept SUCCESS 0",
        "wait polls=5 other=5",
        "done #1 accept SUCCESS 0",
    ]);
    let d = diff_steps(
        &normalise(&accept_now),
        &normalise(&accept_later),
        SIM_VS_OVMF,
    );
    assert!(d.identical(), "{d}");
}

#[test]
fn a_token_signalled_after_its_call_returned_is_not_inside_even_without_polls() {
    // OVMF's MNP timer runs the stack between application calls: a token
    // signalled there completes with no waiting call in between, yet not
    // inside its call (the capture compares notify and return times).
    let background = steps(&[
        "call #1 Tcp4.Transmit SUCCESS 9",
        "done #1 transmit SUCCESS 9",
    ]);
    let inside = steps(&[
        "call #1 Tcp4.Transmit SUCCESS 9",
        "done #1 transmit SUCCESS 9 in-call",
    ]);
    let d = diff_steps(&normalise(&inside), &normalise(&background), SIM_VS_OVMF);
    assert!(matches!(d, CaseDiff::Diverges { step: 2, .. }), "{d}");
}

#[test]
fn capture_judges_in_call_by_notify_and_return_times() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (recorder, handle) = CallRecorder::new();
    let sub = tracing_subscriber::registry().with(recorder);
    tracing::subscriber::with_default(sub, || {
        let submit = |t_ns: u64| {
            tracing::trace!(target: "efisock::fw", instance = 1u64, call = "Tcp4.Transmit", args = %"4", status = "SUCCESS", t_ns, elapsed_ns = 1u64);
        };
        let complete = |notify_ns: u64| {
            tracing::trace!(target: "efisock::notify", slot = 3u64, t_ns = notify_ns);
            tracing::trace!(target: "efisock::completion", instance = 1u64, token = "transmit", status = "SUCCESS", bytes = 4usize, t_ns = 99u64);
        };
        submit(10);
        complete(10);
        submit(20);
        complete(21);
    });
    let got: Vec<String> = handle.take().0.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "call #1 Tcp4.Transmit SUCCESS 4",
            "done #1 transmit SUCCESS 4 in-call",
            "call #1 Tcp4.Transmit SUCCESS 4",
            "done #1 transmit SUCCESS 4",
        ]
    );
}

#[test]
fn end_of_stream_is_one_step_whether_returned_or_completed() {
    let returned = steps(&[
        "call #1 Tcp4.Receive SUCCESS 64",
        "done #1 receive SUCCESS 5",
        "call #1 Tcp4.Receive CONNECTION_FIN 64",
    ]);
    let completed = steps(&[
        "call #1 Tcp4.Receive SUCCESS 64",
        "done #1 receive SUCCESS 5",
        "call #1 Tcp4.Receive SUCCESS 64",
        "wait polls=2 other=0",
        "done #1 receive CONNECTION_FIN 0",
    ]);
    let (a, b) = (normalise(&returned), normalise(&completed));
    assert_eq!(
        diff_steps(&a, &b, SIM_VS_OVMF),
        CaseDiff::Identical { steps: 2 }
    );
    assert_eq!(a[1].key, "i1 receive: end of stream");
}

#[test]
fn truncated_recordings_are_never_identical() {
    let mut a = rec(BASE);
    a.dropped = 3;
    let d = compare(&a, &rec(BASE), SIM_VS_OVMF);
    assert!(matches!(d, CaseDiff::Incomplete { .. }), "{d}");
    assert!(
        d.to_string()
            .contains("simulator recording was truncated (3 steps dropped)")
    );
}

#[test]
fn capture_compacts_waits_queries_and_bookkeeping() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (recorder, handle) = CallRecorder::new();
    let sub = tracing_subscriber::registry().with(recorder);
    tracing::subscriber::with_default(sub, || {
        let fw = |call: &str, status: &str, args: &str| {
            tracing::trace!(target: "efisock::fw", instance = 2u64, call, args = %args, status, t_ns = 1u64, elapsed_ns = 0u64);
        };
        fw("Tcp4.Transmit", "SUCCESS", "5");
        fw("AllocatePool", "SUCCESS", "64");
        fw("AllocatePool", "OUT_OF_RESOURCES", "64");
        for _ in 0..3 {
            fw("Tcp4.GetModeData", "SUCCESS", "state=ESTABLISHED, config");
            fw("Tcp4.Poll", "SUCCESS", "");
            fw("Stall", "SUCCESS", "10");
        }
        fw("Tcp4.GetModeData", "SUCCESS", "state=CLOSE_WAIT, config");
        fw("Tcp4.Poll", "NOT_READY", "");
        tracing::trace!(target: "efisock::completion", instance = 2u64, token = "transmit", status = "SUCCESS", bytes = 5usize, t_ns = 2u64);
        tracing::trace!(target: "efisock::notify", slot = 1u64, t_ns = 2u64);
    });
    let (got, dropped) = handle.take();
    assert_eq!(dropped, 0);
    let got: Vec<String> = got.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "call #2 Tcp4.Transmit SUCCESS 5",
            "call #2 AllocatePool OUT_OF_RESOURCES 64",
            "call*3 #2 Tcp4.GetModeData SUCCESS state=ESTABLISHED, config",
            "wait polls=3 other=3",
            "call #2 Tcp4.GetModeData SUCCESS state=CLOSE_WAIT, config",
            "call #2 Tcp4.Poll NOT_READY",
            "done #2 transmit SUCCESS 5",
        ]
    );
}

#[test]
fn recordings_round_trip_through_files_and_serial_lines() {
    let r = rec(BASE);
    let text = format!("{}\n\n{}\n", r.to_json_line(), r.to_json_line());
    let back = parse_file(Path::new("x.jsonl"), &text).unwrap();
    assert_eq!(back, vec![r.clone(), r.clone()]);
    let lines = r.serial_lines();
    assert_eq!(lines.len(), r.steps.len().div_ceil(STEPS_PER_LINE) + 1);
    let mut asm = SerialAssembler::default();
    for l in &lines {
        let (kind, body) = l.strip_prefix("EFISOCK-").unwrap().split_once(' ').unwrap();
        match kind {
            "CALLS" => asm.part(body),
            "CALLSEND" => asm.end(body),
            k => panic!("{k}"),
        }
    }
    assert!(asm.problems.is_empty(), "{:?}", asm.problems);
    assert_eq!(asm.done, vec![r]);
}

#[test]
fn malformed_files_are_typed_errors_with_the_line() {
    let p = Path::new("log.jsonl");
    let good = rec(BASE).to_json_line();
    match parse_file(p, &format!("{good}\nnot json\n")) {
        Err(CallLogError::Malformed { line, error, .. }) => {
            assert_eq!(line, 2);
            assert!(error.to_string().starts_with("not JSON"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let no_seed = r#"{"id":"a/b","dropped":0,"steps":[]}"#;
    let e = parse_file(p, no_seed).unwrap_err();
    assert_eq!(e.to_string(), "log.jsonl:1: no number field \"seed\"");
    let bad_step = r#"{"id":"a/b","seed":1,"dropped":0,"steps":["call #1"]}"#;
    let e = parse_file(p, bad_step).unwrap_err();
    assert!(
        e.to_string().contains("bad call-log step \"call #1\""),
        "{e}"
    );
    let e = parse_file(p, "\n\n").unwrap_err();
    assert!(matches!(e, CallLogError::Empty { .. }), "{e}");
    let e = file::read_file(Path::new("/nonexistent/efisock.jsonl")).unwrap_err();
    assert!(matches!(e, CallLogError::Io { .. }), "{e}");
    assert!(
        e.to_string().starts_with("/nonexistent/efisock.jsonl: "),
        "{e}"
    );
}

#[test]
fn handles_are_named_by_live_child_whether_or_not_the_firmware_reuses_them() {
    // OVMF's pool gives the third child the first one's memory; the
    // simulator gives it a new handle. Both name it H1, the free symbol.
    let reusing = steps(&[
        "call #1 Tcp4ServiceBinding.CreateChild SUCCESS",
        "call #1 OpenProtocol(Tcp4) SUCCESS child=0x1df4eb98",
        "call #2 OpenProtocol(Tcp4) SUCCESS child=0x1df4e018",
        "call #1 Tcp4ServiceBinding.DestroyChild SUCCESS child=0x1df4eb98",
        "call #3 OpenProtocol(Tcp4) SUCCESS child=0x1df4eb98",
    ]);
    let fresh = steps(&[
        "call #1 Tcp4ServiceBinding.CreateChild SUCCESS",
        "call #1 OpenProtocol(Tcp4) SUCCESS child=0x20000",
        "call #2 OpenProtocol(Tcp4) SUCCESS child=0x20001",
        "call #1 Tcp4ServiceBinding.DestroyChild SUCCESS child=0x20000",
        "call #3 OpenProtocol(Tcp4) SUCCESS child=0x20002",
    ]);
    let keys = |s: &[RawStep]| -> Vec<String> { normalise(s).into_iter().map(|s| s.key).collect() };
    assert_eq!(keys(&reusing), keys(&fresh));
    assert_eq!(keys(&fresh)[4], "i3 OpenProtocol(Tcp4)(child=H1) = SUCCESS");
    // A live child's handle is never shared: the second child stays H2, and
    // a new child while both live would be H3.
    assert_eq!(keys(&fresh)[2], "i2 OpenProtocol(Tcp4)(child=H2) = SUCCESS");
    // Using a destroyed handle again without a new child is still visible:
    // it is named as a new one would be, not as the live H2.
    let stale = steps(&[
        "call #1 OpenProtocol(Tcp4) SUCCESS child=0x1",
        "call #2 OpenProtocol(Tcp4) SUCCESS child=0x2",
        "call #1 Tcp4ServiceBinding.DestroyChild SUCCESS child=0x1",
        "call #1 Tcp4ServiceBinding.DestroyChild INVALID_PARAMETER child=0x1",
    ]);
    assert_eq!(
        keys(&stale)[3],
        "i1 Tcp4ServiceBinding.DestroyChild(child=H1) = INVALID_PARAMETER"
    );
}
