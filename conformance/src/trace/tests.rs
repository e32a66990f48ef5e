//! Recorder tests: real `tracing` events through the installed layer.

use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::runner::CaseTrace;

fn emit_sample() {
    tracing::info!(
        target: "efisock::fw",
        instance = 3u64,
        call = "Tcp4.Connect",
        args = "10.0.2.2:7007",
        status = "SUCCESS",
        t_ns = 1_234_567_890u64,
        elapsed_ns = 10_000u64
    );
    tracing::trace!(target: "efisock::notify", slot = 5u64, t_ns = 1_240_000_000u64);
    tracing::debug!(
        target: "efisock::completion",
        instance = 3u64,
        token = "connect",
        status = "CONNECTION_RESET",
        t_ns = 1_240_001_000u64
    );
    for (i, status) in ["SUCCESS", "NOT_READY", "SUCCESS"].iter().enumerate() {
        tracing::info!(
            target: "efisock::fw",
            instance = 3u64,
            call = "Tcp4.Transmit",
            args = "len=1460",
            status = *status,
            t_ns = 2_000_000_000u64 + i as u64,
            elapsed_ns = 20_000u64
        );
    }
    tracing::info!(target: "efisock::fw", instance = 1u64, call = "Tcp4.Poll", args = "", status = %"SUCCESS", t_ns = 3u64, elapsed_ns = 1_000u64);
    // Not ours: ignored.
    tracing::info!(target: "efisock::socket", instance = 9u64, "unrelated");
    tracing::info!("no target override");
}

#[test]
fn captures_and_renders_strace_like_lines() {
    let (rec, handle) = TraceRecorder::new();
    let subscriber = tracing_subscriber::registry().with(rec);
    tracing::subscriber::with_default(subscriber, emit_sample);
    let events = handle.events();
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(
        events[1],
        TraceEvent::Notify {
            slot: Some(5),
            t_ns: Some(1_240_000_000)
        }
    );
    let log = render_log(&events);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0],
        "[   1.234567890] #3 Tcp4.Connect(10.0.2.2:7007) = SUCCESS  <0.000010>"
    );
    assert_eq!(lines[1], "[   1.240000000] notify slot 5");
    assert_eq!(
        lines[2],
        "[   1.240001000] #3 completion connect = CONNECTION_RESET"
    );
    assert_eq!(
        lines[4],
        "[   2.000000001] #3 Tcp4.Transmit(len=1460) = NOT_READY  <0.000020>"
    );
    assert_eq!(
        lines[6],
        "[   0.000000003] #1 Tcp4.Poll() = SUCCESS  <0.000001>"
    );
}

#[test]
fn summary_counts_errors_and_sorts_by_total_time() {
    let (rec, handle) = TraceRecorder::new();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(rec), emit_sample);
    let table = render_summary(&handle.events());
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("call "), "{table}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        cols(lines[1]),
        ["Tcp4.Transmit", "3", "1", "0.000060", "20.000"],
        "{table}"
    );
    assert_eq!(
        cols(lines[2]),
        ["Tcp4.Connect", "1", "0", "0.000010", "10.000"],
        "{table}"
    );
    assert_eq!(
        cols(lines[3]),
        ["Tcp4.Poll", "1", "0", "0.000001", "1.000"],
        "{table}"
    );
    assert_eq!(
        cols(lines[4]),
        ["total", "5", "1", "0.000071", "14.200"],
        "{table}"
    );
    assert_eq!(lines[5], "completions: 1 (1 not SUCCESS), notifies: 1");
}

#[test]
fn case_trace_clears_between_cases_and_marks_missing_fields() {
    let (rec, mut handle) = TraceRecorder::new();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(rec), || {
        emit_sample();
        handle.begin();
        tracing::info!(target: "efisock::fw", call = "Tcp4.Close", status = "SUCCESS");
        let out = handle.end();
        assert!(
            out.starts_with("[   ?.?????????] #? Tcp4.Close() = SUCCESS  <?>\n"),
            "{out}"
        );
        assert!(out.contains("\ncall "), "{out}");
        assert!(handle.events().is_empty(), "end() clears");
        handle.begin();
        emit_sample();
        handle.end();
    });
    // The run-wide table has the two cases rendered with end(), not the
    // events cleared by the first begin().
    let run = handle.run_summary();
    let close = run.lines().find(|l| l.starts_with("Tcp4.Close")).unwrap();
    assert_eq!(close.split_whitespace().nth(1), Some("1"), "{run}");
    let transmit = run
        .lines()
        .find(|l| l.starts_with("Tcp4.Transmit"))
        .unwrap();
    assert_eq!(transmit.split_whitespace().nth(1), Some("3"), "{run}");
}
