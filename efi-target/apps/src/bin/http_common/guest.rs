//! UEFI-only glue: result lines, exit through isa-debug-exit, the panic
//! hook, the platform from std's tables, the ESP options file, and the
//! [`Stream`](super::Stream) impl for efisock sockets.
//!
//! Why separate: everything here touches the firmware (or std's view of it)
//! and cannot run on the host; the HTTP logic it feeds is host-testable.

use std::io::Write as _;
use std::os::uefi::env;
use std::time::Duration;

use efisock::Socket;
use efisock_efi::backend::EfiPlatform;
use efisock_efi_apps::exit::exit_qemu;
use uefi_raw::Handle;
use uefi_raw::table::boot::BootServices;
use uefi_raw::table::system::SystemTable;

use super::opts::Opts;
use super::{EXIT_PANIC, Stream};

/// Where the host puts the options (root of the ESP).
pub const OPTIONS_FILE: &str = "\\efisock-args.txt";

/// Prints `EFISOCK-<kind> <body>` on stdout (ConOut, mirrored to serial).
pub fn line(kind: &str, body: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "EFISOCK-{kind} {body}");
    let _ = out.flush();
}

/// Prints `EFISOCK-DONE <code>` and leaves QEMU with `code`.
pub fn done(code: u8) -> ! {
    line("DONE", &code.to_string());
    let st = env::system_table().as_ptr().cast::<SystemTable>();
    // SAFETY: std hands out the live system table it received at entry; its
    // runtime-services pointer stays valid for the life of the image.
    let rt = unsafe { (*st).runtime_services };
    // SAFETY: `rt` is that table; port 0xf4 is QEMU's isa-debug-exit.
    unsafe { exit_qemu(code, rt) }
}

/// A panic becomes `EFISOCK-PANIC {json}` and exit code [`EXIT_PANIC`], so a
/// bug never leaves QEMU running until the host's wall-clock limit.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let v = serde_json::json!({ "message": info.to_string() });
        line("PANIC", &v.to_string());
        done(EXIT_PANIC);
    }));
}

/// The efisock platform over this firmware.
pub fn platform() -> Result<EfiPlatform, String> {
    let bs = env::boot_services()
        .ok_or("boot services have been exited")?
        .as_ptr()
        .cast::<BootServices>();
    let image = env::image_handle().as_ptr() as Handle;
    // SAFETY: live boot services (std never exits them) and our own image
    // handle, both straight from std's entry-point records.
    unsafe { EfiPlatform::locate(bs, image) }.map_err(|e| format!("EfiPlatform::locate: {e}"))
}

/// Reads and parses the options file, accepting only `known` names.
pub fn options(known: &[&str]) -> Result<Opts, String> {
    let text =
        std::fs::read_to_string(OPTIONS_FILE).map_err(|e| format!("read {OPTIONS_FILE}: {e}"))?;
    Opts::parse(&text, known).map_err(|e| format!("{OPTIONS_FILE}: {e}"))
}

impl Stream for Socket<EfiPlatform> {
    fn set_timeout(&self, d: Duration) -> std::io::Result<()> {
        Ok(self.settimeout(Some(d))?)
    }

    fn finish(self) -> std::io::Result<()> {
        // Blocking close: returns once the peer acknowledged everything we
        // sent (or close_timeout passed), so no response is lost to exit.
        Ok(self.close()?)
    }
}
