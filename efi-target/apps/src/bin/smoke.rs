//! The efisock smoke-test UEFI application (`x86_64-unknown-uefi`).
//!
//! Locates the firmware's TCP4 service and Ip4Config2, runs
//! [`efisock_efi_apps::smoke`] and reports on `ConOut` (mirrored to serial by
//! OVMF) with machine-readable lines:
//!
//! - `EFISOCK-HELLO {json}`: start, clock rate;
//! - `EFISOCK-STEP {json}`: one per step (dhcp, connect, transmit, ...);
//! - `EFISOCK-RESULT {json}`: the summary;
//! - `EFISOCK-DONE <code>`: the exit code, then QEMU exits through
//!   isa-debug-exit with status `(code << 1) | 1` (see `efisock_efi_apps::exit`).
//!
//! The echo server's port is a compile-time setting: `EFISOCK_SMOKE_PORT`
//! (default [`DEFAULT_PORT`]) when building. Built for the host, this file
//! only explains that it is a UEFI application, so `cargo build --workspace`
//! keeps working.
#![cfg_attr(target_os = "uefi", no_std, no_main)]

/// The echo server's port when `EFISOCK_SMOKE_PORT` is not set at build time.
pub const DEFAULT_PORT: u16 = 47_361;

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!(
        "efisock-smoke is a UEFI application (target x86_64-unknown-uefi); \
         build and boot it in QEMU with the xtask qemu-smoke entry point \
         (xtask/src/qemu.rs), not on the host."
    );
    std::process::exit(2);
}

#[cfg(target_os = "uefi")]
mod app {
    extern crate alloc;

    use core::fmt::Write;

    use efisock_efi::backend::EfiPlatform;
    use efisock_efi::pool_alloc::{self, PoolAllocator};
    use efisock_efi_apps::console::Console;
    use efisock_efi_apps::exit::exit_qemu;
    use efisock_efi_apps::json::JsonObject;
    use efisock_efi_apps::smoke::{self, EXIT_NO_PLATFORM, EXIT_PANIC, SmokeConfig};
    use uefi_raw::table::runtime::RuntimeServices;
    use uefi_raw::table::system::SystemTable;
    use uefi_raw::{Handle, Status};

    #[global_allocator]
    static ALLOC: PoolAllocator = PoolAllocator;

    /// Console and runtime services for the panic handler (single-threaded
    /// boot services: written once at entry, read only on panic).
    static mut CON: Option<Console> = None;
    static mut RT: *mut RuntimeServices = core::ptr::null_mut();

    const fn parse_port(s: Option<&str>) -> u16 {
        let Some(s) = s else {
            return super::DEFAULT_PORT;
        };
        let b = s.as_bytes();
        let mut i = 0;
        let mut v: u32 = 0;
        while i < b.len() {
            assert!(b[i].is_ascii_digit(), "EFISOCK_SMOKE_PORT must be decimal");
            v = v * 10 + (b[i] - b'0') as u32;
            assert!(v <= 65_535, "EFISOCK_SMOKE_PORT must be <= 65535");
            i += 1;
        }
        assert!(v > 0, "EFISOCK_SMOKE_PORT must be > 0");
        v as u16
    }

    const PORT: u16 = parse_port(option_env!("EFISOCK_SMOKE_PORT"));

    fn line(con: &mut Console, kind: &str, body: &str) {
        let _ = writeln!(con, "{}{kind} {body}", efisock_efi_apps::LINE_PREFIX);
    }

    #[unsafe(no_mangle)]
    extern "efiapi" fn efi_main(image: Handle, st: *mut SystemTable) -> Status {
        // SAFETY: the firmware passes its live system table; boot services
        // stay available because this application never exits them.
        let (bs, rt, out) = unsafe { ((*st).boot_services, (*st).runtime_services, (*st).stdout) };
        // SAFETY: `bs` is live for the whole run (see above).
        unsafe { pool_alloc::init(bs) };
        // SAFETY: `out` is the firmware's ConOut (or null).
        let mut con = unsafe { Console::new(out) };
        // SAFETY: single-threaded; written once before any panic can occur.
        unsafe {
            CON = Some(con);
            RT = rt;
        }
        // SAFETY: live table and our image handle; boot services stay up.
        let platform = match unsafe { EfiPlatform::locate(bs, image) } {
            Ok(p) => p,
            Err(e) => {
                let mut j = JsonObject::new();
                j.str("step", "locate")
                    .str("error", &alloc::format!("{e}"))
                    .bool("ok", false);
                line(&mut con, "STEP", &j.finish());
                line(&mut con, "DONE", &alloc::format!("{EXIT_NO_PLATFORM}"));
                // SAFETY: `rt` is the runtime-services table.
                unsafe { exit_qemu(EXIT_NO_PLATFORM, rt) }
            }
        };
        let mut hello = JsonObject::new();
        hello
            .str("app", "efisock-smoke")
            .u64(
                "counter_hz",
                efisock_efi::backend::EfiBoot::counter_hz(efisock::firmware::Platform::boot(
                    &platform,
                )),
            )
            .u64("port", u64::from(PORT));
        line(&mut con, "HELLO", &hello.finish());
        let cfg = SmokeConfig::qemu(PORT);
        let mut con2 = con;
        let outcome = smoke::run(&platform, &cfg, &mut |kind, body| {
            line(&mut con2, kind, body)
        });
        line(&mut con, "RESULT", &outcome.summary);
        line(&mut con, "DONE", &alloc::format!("{}", outcome.code));
        // SAFETY: `rt` is the runtime-services table.
        unsafe { exit_qemu(outcome.code, rt) }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        // SAFETY: single-threaded; the statics were written once at entry.
        let (con, rt) = unsafe { (CON, RT) };
        if let Some(mut con) = con {
            let mut msg = heapless_msg::Msg::new();
            let _ = write!(msg, "{info}");
            let _ = writeln!(
                con,
                "{}PANIC {{\"message\":\"{}\"}}",
                efisock_efi_apps::LINE_PREFIX,
                msg.as_str()
            );
            let _ = writeln!(con, "{}DONE {EXIT_PANIC}", efisock_efi_apps::LINE_PREFIX);
        }
        // SAFETY: `rt` is null or the runtime-services table.
        unsafe { exit_qemu(EXIT_PANIC, rt) }
    }

    /// A fixed-size message buffer: the panic handler must not allocate.
    mod heapless_msg {
        pub struct Msg {
            buf: [u8; 256],
            len: usize,
        }
        impl Msg {
            pub fn new() -> Self {
                Self {
                    buf: [0; 256],
                    len: 0,
                }
            }
            pub fn as_str(&self) -> &str {
                core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<non-utf8>")
            }
        }
        impl core::fmt::Write for Msg {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                // Keep JSON valid: replace quotes, backslashes and controls.
                for c in s.chars() {
                    let c = if c == '"' || c == '\\' || c.is_control() {
                        '\''
                    } else {
                        c
                    };
                    let mut tmp = [0u8; 4];
                    let e = c.encode_utf8(&mut tmp);
                    if self.len + e.len() > self.buf.len() {
                        return Ok(());
                    }
                    self.buf[self.len..self.len + e.len()].copy_from_slice(e.as_bytes());
                    self.len += e.len();
                }
                Ok(())
            }
        }
    }
}
