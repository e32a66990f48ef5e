//! Turning the guest's serial lines into the runner's `CaseReport`s.
//!
//! Pure (no QEMU), so the mapping from what the guest printed to what the
//! host reports — including the cases the guest never finished — is tested
//! on its own.

use std::borrow::Cow;
use std::time::Duration;

use efisock_qemu::EfisockLine;

use crate::calllog::{Recording, SerialAssembler};
use crate::guest;
use crate::runner::CaseReport;

/// Everything the host learned from one guest run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestRun {
    /// One report per case the guest started, in order.
    pub reports: Vec<CaseReport>,
    /// Ids of the cases the guest marked as over the per-case limit.
    pub timeouts: Vec<String>,
    /// The `EFISOCK-DONE` code.
    pub done: Option<u8>,
    /// Problems outside any case: bad lines, setup errors, a missing DONE,
    /// a call-level recording with a lost line.
    pub problems: Vec<String>,
    /// The call-level recordings the guest streamed (with `--record` or
    /// `--compare`), in order.
    pub calls: Vec<Recording>,
}

fn unfinished(id: &str, seed: u64, why: String) -> CaseReport {
    let (group, name) = id.split_once('/').unwrap_or(("?", id));
    CaseReport {
        name: Cow::Owned(name.to_string()),
        group: Cow::Owned(group.to_string()),
        passed: false,
        message: Some(why),
        wall: Duration::ZERO,
        virtual_ns: 0,
        seed,
    }
}

/// Collects the guest's lines; `killed` says whether the host's wall-clock
/// limit ended QEMU.
pub fn collect(lines: &[EfisockLine], killed: bool) -> GuestRun {
    let mut run = GuestRun::default();
    let mut in_flight: Option<(String, u64)> = None;
    let mut panic: Option<String> = None;
    let mut calls = SerialAssembler::default();
    for l in lines {
        match l.kind.as_str() {
            "CALLS" => calls.part(&l.body),
            "CALLSEND" => calls.end(&l.body),
            "START" => match guest::parse_start(&l.body) {
                Ok(s) => in_flight = Some(s),
                Err(e) => run.problems.push(e.to_string()),
            },
            "CASE" => match guest::parse_case(&l.body) {
                Ok(c) => {
                    if c.timeout {
                        run.timeouts.push(c.report.id());
                    }
                    run.reports.push(c.report);
                    in_flight = None;
                }
                Err(e) => run.problems.push(e.to_string()),
            },
            "PANIC" => panic = Some(l.body.clone()),
            "ERROR" => run.problems.push(format!("guest: {}", l.body)),
            "DONE" => run.done = l.body.parse().ok(),
            _ => {}
        }
    }
    run.calls = calls.done;
    run.problems.extend(calls.problems);
    if let Some((id, seed)) = in_flight {
        let why = match (&panic, killed) {
            (Some(p), _) => format!("guest panicked (the run ended here): {p}"),
            (None, true) => "TIMEOUT: QEMU was killed by the whole-run wall-clock limit while \
                             this case ran (a wait without deadline; see the serial log)"
                .to_string(),
            (None, false) => "the guest stopped while this case ran (no CASE line)".to_string(),
        };
        if killed {
            run.timeouts.push(id.clone());
        }
        run.reports.push(unfinished(&id, seed, why));
    } else if let Some(p) = panic {
        run.problems
            .push(format!("guest panicked outside a case: {p}"));
    }
    if run.done.is_none() {
        run.problems.push(if killed {
            "QEMU was killed by the whole-run wall-clock limit (no EFISOCK-DONE)".to_string()
        } else {
            "the guest ended without EFISOCK-DONE".to_string()
        });
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use efisock_qemu::log::parse_lines;

    fn report(id: &str, passed: bool) -> CaseReport {
        let (group, name) = id.split_once('/').unwrap();
        CaseReport {
            name: name.to_string().into(),
            group: group.to_string().into(),
            passed,
            message: (!passed).then(|| "boom".to_string()),
            wall: Duration::from_millis(5),
            virtual_ns: 7,
            seed: 1,
        }
    }

    #[test]
    fn complete_run() {
        let log = format!(
            "BdsDxe: booting\r\n{}\r\n{}\r\n{}\r\n{}\r\nEFISOCK-DONE 1\r\n",
            guest::start_line("a/ok", 1),
            guest::case_line(&report("a/ok", true), false),
            guest::start_line("a/bad", 1),
            guest::case_line(&report("a/bad", false), true),
        );
        let run = collect(&parse_lines(&log), false);
        assert_eq!(
            run.reports,
            vec![report("a/ok", true), report("a/bad", false)]
        );
        assert_eq!(run.timeouts, vec!["a/bad".to_string()]);
        assert_eq!(run.done, Some(1));
        assert!(run.problems.is_empty(), "{:?}", run.problems);
    }

    #[test]
    fn killed_mid_case_reports_it_as_timeout() {
        let log = format!(
            "{}\n{}\n",
            guest::case_line(&report("a/ok", true), false),
            guest::start_line("a/hang", 9)
        );
        let run = collect(&parse_lines(&log), true);
        assert_eq!(run.reports.len(), 2);
        let hung = &run.reports[1];
        assert_eq!(hung.id(), "a/hang");
        assert_eq!(hung.seed, 9);
        assert!(!hung.passed);
        assert!(hung.message.as_deref().unwrap().starts_with("TIMEOUT"));
        assert_eq!(run.timeouts, vec!["a/hang".to_string()]);
        assert_eq!(run.done, None);
        assert!(run.problems[0].contains("wall-clock limit"));
    }

    #[test]
    fn call_recordings_are_reassembled_and_lost_lines_reported() {
        let rec = Recording {
            id: "a/ok".into(),
            seed: 1,
            steps: (0..90)
                .map(|i| crate::calllog::RawStep::Wait {
                    polls: i + 1,
                    other: i,
                })
                .collect(),
            dropped: 0,
        };
        let lines = rec.serial_lines();
        assert_eq!(lines.len(), 4, "three CALLS parts and the CALLSEND");
        let log = lines.join("\n") + "\nEFISOCK-DONE 0\n";
        let run = collect(&parse_lines(&log), false);
        assert_eq!(run.calls, vec![rec.clone()]);
        assert!(run.problems.is_empty(), "{:?}", run.problems);
        let mut lost = lines.clone();
        lost.remove(1);
        let run = collect(
            &parse_lines(&(lost.join("\n") + "\nEFISOCK-DONE 0\n")),
            false,
        );
        assert!(run.calls.is_empty());
        assert!(
            run.problems
                .iter()
                .any(|p| p.contains("part 2") && p.contains("part 1 was due")),
            "{:?}",
            run.problems
        );
    }

    #[test]
    fn panic_is_attributed_to_the_case() {
        let log = format!(
            "{}\nEFISOCK-PANIC {{\"message\":\"oops\"}}\nEFISOCK-DONE 5\n",
            guest::start_line("a/p", 3)
        );
        let run = collect(&parse_lines(&log), false);
        assert!(run.reports[0].message.as_deref().unwrap().contains("oops"));
        assert_eq!(run.done, Some(5));
    }
}
