//! Project tasks. `cargo xtask test` is the project's one test command (CI
//! runs exactly this through `.ci/run`).
//!
//! Dependency-free on purpose: it must build quickly and work before any
//! other crate compiles, so it only shells out with `std::process::Command`.

mod http_examples;
mod layers;
mod mutants;
mod qemu;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    test            the full test command: toolchain check, the core layering
                    check, cargo fmt --check, cargo clippy (-D warnings),
                    cargo test --workspace (doctests and the README too), the
                    loom model of the completion queue, the fuzzers against
                    the deliberate bugs, the suite on the simulator, a
                    600-case fuzz run, the raw TCP4 smoke run and the
                    HTTP examples in OVMF, and the conformance suite inside
                    OVMF (`cargo run --release -- --target qemu`: builds the
                    UEFI suite, boots OVMF, hosts the peers), and the
                    Poll-strategy workloads in OVMF once each
                    (bench-report --reps 1 --strict; report in
                    target/efisock-bench-report/)
    qemu-smoke      build the smoke app (efisock-efi-apps' efisock-smoke), boot
                    it in OVMF under QEMU and run the raw TCP4 smoke test
                    against a host echo server
                    ([--debug] [--timeout SECS]); installs QEMU/OVMF/the UEFI
                    toolchain with apt-get when run as root
    http-examples   boot the HTTP/1.1 client and server examples in OVMF and
                    drive them with python3 http.server and curl
                    ([--debug] [--timeout SECS] [--only client|server])
    qemu-std        boot the std probe in OVMF ([--debug] [--timeout SECS])
    bench-report    the Poll-strategy report: every workload x strategy
                    on the simulator and, when QEMU/OVMF are available, inside
                    OVMF (with the raw Tcp4 loop and std's TcpStream); writes
                    docs/benchmarks.md and docs/benchmarks.svg and prints the
                    table ([--no-qemu] [--out DIR] [--qemu-timeout SECS];
                    runs `cargo run --release -p efisock-benches --bin
                    efisock-bench-report`)
    layers          check that core/src's modules import only their own or
                    lower layers (the table is in xtask/src/layers.rs)
    mutants         cargo-mutants on the core's decision modules, tested by
                    the core's tests and the conformance sim and fuzz tests
                    ([--shard K/N] [--core-only] [--out DIR]
                    [-- EXTRA cargo-mutants ARGS];
                    see docs/mutants.md)
    help            print this help

OPTIONS (test):
    --keep-going    run every step even after one fails (default: stop at the
                    first failure)

Exit status: 0 success, 1 a step failed (named on stderr), 2 usage error.
";

/// The oldest toolchain the workspace supports (workspace `rust-version`).
const MIN_RUST: (u32, u32) = (1, 85);

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            if args.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Some("test") => {
            let mut keep_going = false;
            for a in &args[1..] {
                match a.as_str() {
                    "--keep-going" => keep_going = true,
                    "-h" | "--help" => {
                        print!("{USAGE}");
                        return ExitCode::SUCCESS;
                    }
                    other => {
                        eprintln!("xtask test: unknown option '{other}' (see cargo xtask --help)");
                        return ExitCode::from(2);
                    }
                }
            }
            test(keep_going)
        }
        Some("qemu-smoke") => match qemu::qemu_smoke(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask qemu-smoke: {e}");
                ExitCode::FAILURE
            }
        },
        Some("http-examples") => match http_examples::http_examples(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask http-examples: {e}");
                ExitCode::FAILURE
            }
        },
        Some("qemu-std") => match qemu::std_probe::qemu_std(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask qemu-std: {e}");
                ExitCode::FAILURE
            }
        },
        Some("layers") => match layers::check(&workspace_root()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask layers: {e}");
                ExitCode::FAILURE
            }
        },
        Some("mutants") => match mutants::mutants(&workspace_root(), &args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask mutants: {e}");
                ExitCode::FAILURE
            }
        },
        Some("bench-report") => {
            let mut cargo_args: Vec<&str> = vec![
                "run",
                "--release",
                "-p",
                "efisock-benches",
                "--bin",
                "efisock-bench-report",
                "--",
            ];
            cargo_args.extend(args[1..].iter().map(String::as_str));
            match run_cargo(&workspace_root(), &cargo_args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask bench-report: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(other) => {
            eprintln!("xtask: unknown command '{other}' (see cargo xtask --help)");
            ExitCode::from(2)
        }
    }
}

fn workspace_root() -> PathBuf {
    // xtask/ lives directly under the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn cargo() -> String {
    // Cargo sets $CARGO for the programs it runs; it names the same
    // toolchain that built this xtask.
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Runs `cargo args...` in the workspace root; Err describes the failure.
fn run_cargo(root: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("could not start `cargo {}`: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` exited with {status}", args.join(" ")))
    }
}

fn capture(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("could not start `{program} {}`: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Parses `rustc 1.95.0 (...)` into `(1, 95)`.
fn parse_rustc_version(line: &str) -> Option<(u32, u32)> {
    let ver = line.split_whitespace().nth(1)?;
    let mut parts = ver.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn check_toolchain(root: &Path) -> Result<(), String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let line = capture(&rustc, &["--version"])?;
    let version = parse_rustc_version(&line)
        .ok_or_else(|| format!("cannot parse the rustc version from '{line}'"))?;
    if version < MIN_RUST {
        return Err(format!(
            "{line} is older than the workspace minimum {}.{}",
            MIN_RUST.0, MIN_RUST.1
        ));
    }
    println!("    {line}");
    let cargo = cargo();
    for (component, args) in [
        ("rustfmt", ["fmt", "--version"]),
        ("clippy", ["clippy", "--version"]),
    ] {
        let v = capture(&cargo, &args).map_err(|e| {
            format!("{component} is missing (rustup component add {component}): {e}")
        })?;
        println!("    {v}");
    }
    if !root.join("Cargo.toml").is_file() {
        return Err(format!(
            "no Cargo.toml at the workspace root {}",
            root.display()
        ));
    }
    Ok(())
}

fn test(keep_going: bool) -> ExitCode {
    let root = workspace_root();
    type Step<'a> = (&'a str, Box<dyn Fn(&Path) -> Result<(), String>>);
    let steps: Vec<Step> = vec![
        ("toolchain", Box::new(check_toolchain)),
        ("core layering", Box::new(layers::check)),
        (
            "fmt",
            Box::new(|r| run_cargo(r, &["fmt", "--all", "--check"])),
        ),
        (
            "clippy",
            Box::new(|r| {
                run_cargo(
                    r,
                    &[
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--",
                        "-D",
                        "warnings",
                    ],
                )
            }),
        ),
        ("test", Box::new(|r| run_cargo(r, &["test", "--workspace"]))),
        (
            "loom: every interleaving of the completion queue",
            Box::new(|r| {
                // Its own target dir: `--cfg loom` rebuilds everything, and
                // must not invalidate the normal build cache.
                // With the deliberate bugs compiled in (off by default), so
                // the model also proves it finds the lost completion.
                let status = Command::new(cargo())
                    .args([
                        "test",
                        "-p",
                        "efisock",
                        "--release",
                        "--features",
                        "deliberate-bugs",
                        "--test",
                        "loom_queue",
                    ])
                    .env("RUSTFLAGS", "--cfg loom")
                    .env("CARGO_TARGET_DIR", r.join("target/loom"))
                    .current_dir(r)
                    .status()
                    .map_err(|e| format!("could not start the loom test: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("the loom model failed ({status})"))
                }
            }),
        ),
        (
            "the fuzzers find, shrink and replay the deliberate bugs",
            Box::new(|r| {
                run_cargo(
                    r,
                    &[
                        "test",
                        "-p",
                        "efisock-conformance",
                        "--features",
                        "deliberate-bugs",
                        "--test",
                        "fuzz_bugs",
                        "--test",
                        "deliberate",
                    ],
                )
            }),
        ),
        (
            "suite on the simulator (cargo run --release)",
            Box::new(|r| run_cargo(r, &["run", "--release", "--quiet"])),
        ),
        (
            "fuzz: 600 cases, three schedulers, half swarm",
            Box::new(|r| {
                run_cargo(
                    r,
                    &[
                        "run",
                        "--release",
                        "--quiet",
                        "--",
                        "fuzz",
                        "--cases",
                        "600",
                    ],
                )
            }),
        ),
        (
            "OVMF smoke run (raw TCP4 in QEMU)",
            Box::new(|_| Ok(qemu::qemu_smoke(&[])?)),
        ),
        (
            "HTTP examples in OVMF (Python http.server, curl)",
            Box::new(|_| http_examples::http_examples(&[])),
        ),
        // The suite inside OVMF: tools, UEFI build, QEMU, peers; its exit
        // status counts only failures not listed in
        // conformance/src/expectations.rs.
        (
            "conformance suite in OVMF (cargo run --release -- --target qemu)",
            Box::new(|r| run_cargo(r, &["run", "--release", "--", "--target", "qemu"])),
        ),
        // The Poll-strategy workloads in OVMF, once each (~1.5 min): every run must
        // complete and verify its data; speeds are reported, never asserted.
        // The full report is `cargo xtask bench-report` (3 runs per cell).
        (
            "Poll-strategy workloads in OVMF (bench-report --reps 1 --strict)",
            Box::new(|r| {
                run_cargo(
                    r,
                    &[
                        "run",
                        "--release",
                        "-p",
                        "efisock-benches",
                        "--bin",
                        "efisock-bench-report",
                        "--",
                        "--reps",
                        "1",
                        "--strict",
                        "--out",
                        "target/efisock-bench-report",
                    ],
                )
            }),
        ),
    ];
    let started = Instant::now();
    let mut failed: Vec<(&str, String)> = Vec::new();
    for (name, step) in &steps {
        println!("==> xtask test: {name}");
        let t = Instant::now();
        match step(&root) {
            Ok(()) => println!("==> {name}: ok ({:.1} s)", t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("==> {name}: FAILED: {e}");
                failed.push((name, e));
                if !keep_going {
                    break;
                }
            }
        }
    }
    println!("==> xtask test: {:.1} s", started.elapsed().as_secs_f64());
    if failed.is_empty() {
        println!("==> xtask test: all steps passed");
        ExitCode::SUCCESS
    } else {
        for (name, e) in &failed {
            eprintln!("xtask test: step '{name}' failed: {e}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rustc_versions() {
        assert_eq!(
            parse_rustc_version("rustc 1.95.0 (59807616e 2026-04-14)"),
            Some((1, 95))
        );
        assert_eq!(
            parse_rustc_version("rustc 1.96.0-nightly (abc 2026-05-01)"),
            Some((1, 96))
        );
        assert_eq!(parse_rustc_version("rustc"), None);
        assert_eq!(parse_rustc_version("rustc x.y"), None);
        assert!(parse_rustc_version("rustc 1.84.1 (x)").unwrap() < MIN_RUST);
    }

    #[test]
    fn workspace_root_has_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
