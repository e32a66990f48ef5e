//! `efisock-efi-std`: does Rust's `std` work on `x86_64-unknown-uefi` well
//! enough to host the std-based conformance suite inside OVMF?
//!
//! Built only with the `std-app` feature and `-Zbuild-std=std,panic_abort`
//! (see `xtask/src/qemu_std.rs`). It probes, in order, and reports each
//! result as an `EFISOCK-PROBE {json}` line on stdout (which std writes to
//! ConOut, mirrored to serial by OVMF):
//!
//! 1. `println!`/`String`/`Vec`/`format!` (the fact that lines arrive);
//! 2. `std::os::uefi::env::{system_table, image_handle, boot_services}`;
//! 3. whether `std::time::Instant` can work: std uses the Timestamp protocol
//!    if present, else CPUID leaf 0x15 (TSC frequency), else it *panics*; so
//!    both are checked before `Instant::now()` is called;
//! 4. a `tracing` event through `tracing-subscriber`'s fmt layer;
//! 5. `serde_json` round trip;
//! 6. `EfiPlatform` built from std's tables and the raw smoke flow (DHCP +
//!    TCP echo with the xtask echo server), exactly as the no_std app does.
//!
//! Then `EFISOCK-DONE <code>` and isa-debug-exit. A panic hook reports
//! `EFISOCK-PANIC` and exits with code 5, so a std panic never hangs QEMU.
//! Built for the host (feature on, host target), it refuses to run.
//!
//! `std::os::uefi` is unstable (`uefi_std`, rust-lang/rust#100499), so this
//! needs `RUSTC_BOOTSTRAP=1` or nightly even where rustup ships the target.
#![cfg_attr(target_os = "uefi", feature(uefi_std))]

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!("efisock-efi-std is a UEFI application; boot it with `cargo xtask qemu-std`.");
    std::process::exit(2);
}

#[cfg(target_os = "uefi")]
fn main() {
    app::main()
}

#[cfg(target_os = "uefi")]
mod app {
    use std::ffi::c_void;
    use std::io::Write as _;
    use std::os::uefi::env;
    use std::ptr;
    use std::time::{Duration, Instant};

    use efisock_efi::backend::{EfiBoot, EfiPlatform};
    use efisock_efi_apps::exit::exit_qemu;
    use efisock_efi_apps::smoke::{self, EXIT_NO_PLATFORM, EXIT_PANIC, SmokeConfig};
    use uefi_raw::protocol::misc::{TimestampProperties, TimestampProtocol};
    use uefi_raw::table::boot::BootServices;
    use uefi_raw::table::runtime::RuntimeServices;
    use uefi_raw::table::system::SystemTable;
    use uefi_raw::{Handle, Status};

    /// The smoke echo port (same build-time setting as the no_std app).
    const PORT: u16 = match option_env!("EFISOCK_SMOKE_PORT") {
        Some(s) => match u16::from_str_radix(s, 10) {
            Ok(p) if p > 0 => p,
            _ => panic!("EFISOCK_SMOKE_PORT must be a decimal port 1..=65535"),
        },
        None => 47_361,
    };

    fn line(kind: &str, body: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "EFISOCK-{kind} {body}");
        let _ = out.flush();
    }

    fn probe(name: &str, ok: bool, detail: serde_json::Value) {
        let v = serde_json::json!({ "probe": name, "ok": ok, "detail": detail });
        line("PROBE", &v.to_string());
    }

    fn runtime_services() -> *mut RuntimeServices {
        let st = env::system_table().as_ptr().cast::<SystemTable>();
        // SAFETY: std hands out the live system table it received at entry.
        unsafe { (*st).runtime_services }
    }

    fn done(code: u8) -> ! {
        line("DONE", &code.to_string());
        // SAFETY: the runtime-services table of the live system table.
        unsafe { exit_qemu(code, runtime_services()) }
    }

    /// Timestamp-protocol frequency if any handle carries it.
    fn timestamp_protocol(bs: *mut BootServices) -> Result<u64, String> {
        let mut iface: *mut c_void = ptr::null_mut();
        // SAFETY: `bs` is live during boot services; GUID static; out ptr valid.
        let s = unsafe {
            ((*bs).locate_protocol)(&TimestampProtocol::GUID, ptr::null_mut(), &mut iface)
        };
        if s != Status::SUCCESS || iface.is_null() {
            return Err(format!("LocateProtocol: {s:?}"));
        }
        let proto = iface.cast::<TimestampProtocol>();
        let mut props = TimestampProperties::default();
        // SAFETY: `proto` is the live protocol LocateProtocol returned.
        let s = unsafe { ((*proto).get_properties)(&mut props) };
        if s != Status::SUCCESS {
            return Err(format!("GetProperties: {s:?}"));
        }
        Ok(props.frequency)
    }

    /// CPUID leaf 0x15 (TSC/crystal ratio), which std's fallback needs.
    fn cpuid_15() -> (u32, u32, u32) {
        #[allow(unused_unsafe)]
        // SAFETY: CPUID is available on every x86-64 CPU; leaf 0x15 beyond the
        // maximum leaf returns data of the highest leaf, never faults.
        let r = unsafe { core::arch::x86_64::__cpuid(0x15) };
        (r.eax, r.ebx, r.ecx)
    }

    pub fn main() {
        std::panic::set_hook(Box::new(|info| {
            let msg = info.to_string().replace(['"', '\\', '\n', '\r'], "'");
            line("PANIC", &format!("{{\"message\":\"{msg}\"}}"));
            done(EXIT_PANIC);
        }));
        let st = env::system_table();
        let image = env::image_handle();
        let bs = env::boot_services();
        let mut parts: Vec<String> = Vec::new();
        parts.push(format!("{:p}", st.as_ptr()));
        line(
            "HELLO",
            &format!(
                "{{\"app\":\"efisock-efi-std\",\"system_table\":\"{}\",\"image\":\"{:p}\",\"boot_services\":{}}}",
                parts[0],
                image.as_ptr(),
                bs.is_some()
            ),
        );
        let Some(bs) = bs else {
            probe("boot_services", false, serde_json::json!("exited"));
            done(EXIT_NO_PLATFORM);
        };
        let bs = bs.as_ptr().cast::<BootServices>();

        // Instant: check both sources std may use before calling it.
        let ts = timestamp_protocol(bs);
        let (a, b, c) = cpuid_15();
        let instant_can_work = ts.is_ok() || (a != 0 && b != 0 && c != 0);
        probe(
            "instant_sources",
            instant_can_work,
            serde_json::json!({
                "timestamp_protocol": match &ts { Ok(f) => format!("{f} Hz"), Err(e) => e.clone() },
                "cpuid15": [a, b, c],
            }),
        );
        let t0 = if instant_can_work {
            let t0 = Instant::now();
            // Resolution: smallest non-zero step between consecutive reads.
            let mut min_step = Duration::MAX;
            let mut prev = Instant::now();
            for _ in 0..10_000 {
                let n = Instant::now();
                let d = n - prev;
                if !d.is_zero() && d < min_step {
                    min_step = d;
                }
                prev = n;
            }
            // Accuracy: 100 ms firmware Stall measured with Instant.
            let s0 = Instant::now();
            // SAFETY: boot services are live.
            let _ = unsafe { ((*bs).stall)(100_000) };
            let stall = s0.elapsed();
            probe(
                "instant",
                true,
                serde_json::json!({
                    "min_step_ns": min_step.as_nanos() as u64,
                    "stall_100ms_measured_us": stall.as_micros() as u64,
                }),
            );
            Some(t0)
        } else {
            None
        };
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => probe("system_time", true, serde_json::json!(d.as_secs())),
            Err(e) => probe("system_time", false, serde_json::json!(e.to_string())),
        }

        // tracing through tracing-subscriber's fmt layer, written to stdout.
        let sub = tracing_subscriber::fmt()
            .with_writer(std::io::stdout)
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        let traced = tracing::subscriber::set_global_default(sub).is_ok();
        tracing::info!(target: "efisock_probe", answer = 42, "EFISOCK-TRACE tracing event reached the console");
        probe(
            "tracing",
            traced,
            serde_json::json!("see the EFISOCK-TRACE line"),
        );

        // serde_json round trip.
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,2,3],"b":"x"}"#).unwrap_or(serde_json::Value::Null);
        probe("serde_json", v["a"][2] == 3 && v["b"] == "x", v.clone());

        // Informational (not required by the suite, so not a PROBE): what
        // std offers beyond the basics on this target.
        let spawn = std::thread::Builder::new().spawn(|| 1u8);
        let spawn = match spawn {
            Ok(h) => format!("spawned, joined: {:?}", h.join().ok()),
            Err(e) => format!("error: {e}"),
        };
        let sleep_ms = t0.map(|_| {
            let s = Instant::now();
            std::thread::sleep(Duration::from_millis(50));
            s.elapsed().as_millis() as u64
        });
        let args: Vec<String> = std::env::args().collect();
        // Options file the host put on the ESP (how the suite could get its
        // case filter and seed, since the boot entry passes no arguments).
        let options_file = match std::fs::read_to_string("\\efisock-args.txt") {
            Ok(t) => format!("read: {}", t.trim()),
            Err(e) => format!("error: {e}"),
        };
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .ok();
        let info = serde_json::json!({
            "thread_spawn": spawn,
            "thread_sleep_50ms_measured_ms": sleep_ms,
            "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).ok(),
            "args": args,
            "current_dir": cwd,
            "options_file": options_file,
            "stderr": "see the EFISOCK-STDERR line",
        });
        line("INFO", &info.to_string());
        eprintln!("EFISOCK-STDERR eprintln! reached the console");

        // The platform from std's tables, then the raw smoke flow.
        // SAFETY: live boot services and our image handle; std never exits
        // boot services.
        let platform = match unsafe { EfiPlatform::locate(bs, image.as_ptr() as Handle) } {
            Ok(p) => p,
            Err(e) => {
                probe("platform", false, serde_json::json!(e.to_string()));
                done(EXIT_NO_PLATFORM);
            }
        };
        let hz = EfiBoot::counter_hz(efisock::firmware::Platform::boot(&platform));
        probe("platform", true, serde_json::json!({ "counter_hz": hz }));
        let cfg = SmokeConfig::qemu(PORT);
        let outcome = smoke::run(&platform, &cfg, &mut |kind, body| line(kind, body));
        line("RESULT", &outcome.summary);
        if let Some(t0) = t0 {
            probe(
                "elapsed",
                true,
                serde_json::json!({ "ms": t0.elapsed().as_millis() as u64 }),
            );
        }
        done(outcome.code);
    }
}
