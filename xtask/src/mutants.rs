//! `cargo xtask mutants`: cargo-mutants on the core's decision modules.
//!
//! Why these files: they hold the decisions (slot states, the socket state
//! machine, readiness, errno mapping, Poll strategies, address parsing) that
//! a test suite can pass while getting them wrong; a mutant that survives
//! names a decision no test pins. The test set is the core's own tests
//! (unit tests and `core/tests/decisions.rs`) plus the conformance suite on
//! the simulator and the fuzz campaign (`-p efisock-conformance --test sim
//! --test fuzz`); `--core-only` drops the conformance part, a quick first
//! filter. A mutant that makes a test hang is cut at `--timeout` and counts
//! as caught ("timeout"). Results land in `target/mutants/mutants.out/`;
//! docs/mutants.md records the last sample and the equivalent mutants.

use std::path::Path;
use std::process::Command;

/// The files mutated, relative to the workspace root.
pub const FILES: &[&str] = &[
    "core/src/calls/completion.rs",
    "core/src/slots/mod.rs",
    "core/src/socket/*.rs",
    "core/src/api/close.rs",
    "core/src/api/connect.rs",
    "core/src/api/listen.rs",
    "core/src/api/stream.rs",
    "core/src/api/socket.rs",
    "core/src/api/select.rs",
    "core/src/api/poller.rs",
    "core/src/error.rs",
    "core/src/strategy.rs",
    "core/src/addr.rs",
];

/// Seconds a mutant's test run may take before it counts as a timeout (the
/// unmutated full set takes about 20 s here).
const TIMEOUT_SECS: &str = "180";

/// The cargo-mutants arguments for `args` (this subcommand's options).
pub fn mutants_args(args: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = ["mutants", "--no-shuffle", "-j", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for f in FILES {
        out.push("-f".into());
        out.push((*f).into());
    }
    out.extend(["--timeout".into(), TIMEOUT_SECS.into()]);
    let mut out_dir = "target/mutants".to_string();
    let mut core_only = false;
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--core-only" => core_only = true,
            "--out" => out_dir = it.next().ok_or("--out needs a directory")?.clone(),
            "--shard" => {
                let k_n = it.next().ok_or("--shard needs K/N")?;
                let valid = k_n
                    .split_once('/')
                    .is_some_and(|(k, n)| k.parse::<u32>().is_ok() && n.parse::<u32>().is_ok());
                if !valid {
                    return Err(format!("--shard wants K/N, got '{k_n}'"));
                }
                // Round-robin: every N-th mutant, an even sample of all files.
                out.extend(["--shard".into(), k_n.clone()]);
                out.extend(["--sharding".into(), "round-robin".into()]);
            }
            "--" => extra.extend(it.by_ref().cloned()),
            other => return Err(format!("unknown option '{other}' (see cargo xtask --help)")),
        }
    }
    out.extend(["-o".into(), out_dir]);
    // cargo-mutants runs its unmutated baseline with the mutated package's
    // tests only, where `--test=sim` does not exist; the baseline is
    // skipped (the same command passes in `cargo test`), and `--timeout`
    // replaces the timeout it would have measured.
    out.extend(["--baseline".into(), "skip".into()]);
    let mut targets = vec!["--lib", "--test=decisions"];
    let packages = if core_only {
        "efisock"
    } else {
        targets.extend(["--test=sim", "--test=fuzz"]);
        "efisock,efisock-conformance"
    };
    out.extend(["--test-package".into(), packages.into()]);
    for t in targets {
        out.push(format!("--cargo-test-arg={t}"));
    }
    out.extend(extra);
    Ok(out)
}

/// Runs cargo-mutants in the workspace `root`.
pub fn mutants(root: &Path, args: &[String]) -> Result<(), String> {
    let cargo_args = mutants_args(args)?;
    let version = Command::new(crate::cargo())
        .args(["mutants", "--version"])
        .output()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if !version.status.success() {
        return Err("cargo-mutants is not installed (cargo install --locked cargo-mutants)".into());
    }
    println!(
        "    {} ; cargo {}",
        String::from_utf8_lossy(&version.stdout).trim(),
        cargo_args.join(" ")
    );
    let refs: Vec<&str> = cargo_args.iter().map(String::as_str).collect();
    crate::run_cargo(root, &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn full_set_tests_the_core_and_the_conformance_suite() {
        let a = mutants_args(&args(&["--shard", "0/6"])).unwrap();
        let joined = a.join(" ");
        assert!(joined.contains("--shard 0/6 --sharding round-robin"));
        assert!(joined.contains("--test-package efisock,efisock-conformance"));
        assert!(joined.contains("--cargo-test-arg=--test=sim --cargo-test-arg=--test=fuzz"));
        assert!(joined.contains("-f core/src/socket/*.rs"));
        assert!(joined.contains("-o target/mutants "));
    }

    #[test]
    fn core_only_drops_the_conformance_tests() {
        let joined = mutants_args(&args(&["--core-only"])).unwrap().join(" ");
        assert!(joined.contains("--test-package efisock "));
        let other = mutants_args(&args(&["--out", "target/m2"]))
            .unwrap()
            .join(" ");
        assert!(other.contains("-o target/m2 "));
        assert!(!joined.contains("--test=sim"));
        assert!(joined.contains("--cargo-test-arg=--test=decisions"));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(mutants_args(&args(&["--shard", "x"])).is_err());
        assert!(mutants_args(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn every_listed_file_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for f in FILES {
            let path = f.trim_end_matches("*.rs");
            assert!(root.join(path).exists(), "{f}");
        }
    }
}
