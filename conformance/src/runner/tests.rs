//! Runner tests with a tiny fake target whose clock the cases advance.

use super::*;

struct Fake {
    seed: u64,
    virt: u64,
}

impl Target for Fake {
    fn virtual_ns(&self) -> u64 {
        self.virt
    }
}

fn ok_case(t: &mut Fake) -> CaseResult {
    t.virt += 1_500_000_000;
    Ok(())
}

fn failing_case(t: &mut Fake) -> CaseResult {
    t.virt += 2_000_000;
    crate::ensure_eq!(t.seed % 2, 0, "seed parity of {:#x}", t.seed);
    Ok(())
}

fn panicking_case(_t: &mut Fake) -> CaseResult {
    panic!("firmware would crash: Cancel during Transmit");
}

fn cases() -> Vec<Case<Fake>> {
    vec![
        Case {
            name: "ok",
            group: "basic",
            about: "passes",
            run: ok_case,
        },
        Case {
            name: "parity",
            group: "seeded",
            about: "fails on odd seeds",
            run: failing_case,
        },
        Case {
            name: "boom",
            group: "basic",
            about: "panics",
            run: panicking_case,
        },
    ]
}

fn plan(seeds: Vec<u64>, filters: &[&str]) -> Plan {
    Plan {
        base_seed: seeds[0],
        seeds,
        filters: filters.iter().map(|s| s.to_string()).collect(),
        replay_args: vec!["--quirk".into(), "cancel=off".into()],
    }
}

fn make(seed: u64) -> Result<Fake, String> {
    Ok(Fake { seed, virt: 0 })
}

fn text_run(p: &Plan) -> (RunSummary, String) {
    let mut rep = TextReporter::new(Vec::new());
    let s = run_cases(&cases(), p, &mut make, &mut rep, None);
    (s, String::from_utf8(rep.into_inner()).unwrap())
}

#[test]
fn text_report_rows_failures_and_summary() {
    let (s, out) = text_run(&plan(vec![0x11], &[]));
    assert_eq!((s.passed, s.failed), (1, 2), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("PASS  basic/ok       wall "), "{out}");
    assert!(lines[0].ends_with("virt     1.500 s"), "{out}");
    assert!(out.contains("FAIL  seeded/parity  wall "), "{out}");
    assert!(
        out.contains("      seed parity of 0x11: expected equal"),
        "{out}"
    );
    assert!(
        out.contains(
            "      replay: cargo run --release -- --seed 0x11 --filter seeded/parity --quirk cancel=off"
        ),
        "{out}"
    );
    assert!(
        out.contains("      panicked: firmware would crash: Cancel during Transmit"),
        "{out}"
    );
    assert!(lines.contains(&"1 passed, 2 failed"), "{out}");
    assert!(out.contains("seed 0x11"), "{out}");
    assert_eq!(s.virtual_ns, 1_502_000_000);
    assert_eq!(
        s.failures,
        vec![
            ("seeded/parity".to_string(), 0x11),
            ("basic/boom".to_string(), 0x11)
        ]
    );
}

#[test]
fn filters_select_substrings_and_exact_ids() {
    let (s, out) = text_run(&plan(vec![2], &["basic/ok"]));
    assert_eq!((s.passed, s.failed), (1, 0), "{out}");
    let (s, _) = text_run(&plan(vec![2], &["basic"]));
    assert_eq!(s.total(), 2);
    let (s, out) = text_run(&plan(vec![2], &["nothing-matches"]));
    assert_eq!(s.total(), 0);
    assert!(out.starts_with("no cases selected\n"), "{out}");
    assert!(out.contains("\n0 passed, 0 failed\n"), "{out}");
    let ids = vec!["a/b".to_string(), "a/bc".to_string()];
    assert!(matches(&["a/b".into()], &ids, "a/b"));
    assert!(
        !matches(&["a/b".into()], &ids, "a/bc"),
        "exact id selects only itself"
    );
    assert!(matches(&["a/".into()], &ids, "a/bc"));
}

#[test]
fn seed_sweep_runs_every_seed_and_reports_each() {
    let seeds = sweep(4, 8);
    let (s, out) = text_run(&plan(seeds.clone(), &["parity"]));
    assert_eq!(s.total(), 8);
    let odd = seeds.iter().filter(|&&x| x % 2 == 1).count();
    assert_eq!(s.failed, odd, "{out}");
    assert!(out.contains("8 seeds"), "{out}");
    for seed in seeds {
        assert!(out.contains(&format!("seed {}", fmt_seed(seed))), "{out}");
    }
}

#[test]
fn setup_failure_is_a_case_failure() {
    let mut rep = TextReporter::new(Vec::new());
    let mut bad = |_seed: u64| -> Result<Fake, String> { Err("no DHCP lease".into()) };
    let s = run_cases(
        &cases(),
        &plan(vec![1], &["basic/ok"]),
        &mut bad,
        &mut rep,
        None,
    );
    assert_eq!(s.failed, 1);
    let out = String::from_utf8(rep.into_inner()).unwrap();
    assert!(out.contains("target setup failed: no DHCP lease"), "{out}");
}

#[test]
fn setup_panic_is_a_case_failure_not_an_abort() {
    let mut rep = TextReporter::new(Vec::new());
    let mut bad = |_seed: u64| -> Result<Fake, String> { panic!("smoltcp exploded") };
    let s = run_cases(
        &cases(),
        &plan(vec![1], &["basic"]),
        &mut bad,
        &mut rep,
        None,
    );
    assert_eq!((s.passed, s.failed), (0, 2));
    let out = String::from_utf8(rep.into_inner()).unwrap();
    assert!(
        out.contains("target setup failed: panicked: smoltcp exploded"),
        "{out}"
    );
}

#[test]
fn json_lines_follow_the_schema() {
    let mut rep = JsonReporter::new(Vec::new());
    let s = run_cases(&cases(), &plan(vec![3], &[]), &mut make, &mut rep, None);
    let out = String::from_utf8(rep.into_inner()).unwrap();
    let objs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 1 + 3 + 1);
    assert_eq!(objs[0]["type"], "start");
    assert_eq!(objs[0]["cases"][1], "seeded/parity");
    assert_eq!(objs[1]["type"], "case");
    assert_eq!(objs[1]["id"], "basic/ok");
    assert_eq!(objs[1]["passed"], true);
    assert_eq!(objs[1]["virtual_ns"], 1_500_000_000u64);
    assert_eq!(objs[1]["seed"], "0x3");
    assert!(objs[1]["replay"].is_null());
    assert_eq!(objs[2]["passed"], false);
    assert!(
        objs[2]["replay"]
            .as_str()
            .unwrap()
            .contains("--seed 0x3 --filter seeded/parity")
    );
    let sum = &objs[4];
    assert_eq!(sum["type"], "summary");
    assert_eq!(
        (sum["passed"].as_u64(), sum["failed"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(sum["failures"][0]["id"], "seeded/parity");
    assert_eq!(s.total(), 3);
}

struct CountingTrace {
    begins: usize,
}

impl CaseTrace for CountingTrace {
    fn begin(&mut self) {
        self.begins += 1;
    }
    fn end(&mut self) -> String {
        format!("trace #{}", self.begins)
    }
}

#[test]
fn trace_is_captured_per_case() {
    let mut rep = TextReporter::new(Vec::new());
    let mut tr = CountingTrace { begins: 0 };
    run_cases(
        &cases(),
        &plan(vec![2], &["basic/ok"]),
        &mut make,
        &mut rep,
        Some(&mut tr),
    );
    let out = String::from_utf8(rep.into_inner()).unwrap();
    assert_eq!(tr.begins, 1);
    assert!(out.contains("\n      trace #1\n"), "{out}");
}

#[test]
fn replay_quotes_odd_arguments() {
    let p = Plan {
        base_seed: 1,
        seeds: vec![1],
        filters: vec![],
        replay_args: vec!["--profile".into(), "old firmware".into()],
    };
    assert_eq!(
        replay_command(&p, "g/n", 0xab),
        "cargo run --release -- --seed 0xab --filter g/n --profile 'old firmware'"
    );
}
