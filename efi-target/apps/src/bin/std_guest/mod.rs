//! UEFI glue shared by the std applications that report to the host with
//! `EFISOCK-*` lines and leave QEMU through isa-debug-exit (the suite and the
//! bench app), included by each with `#[path]`.

use std::io::Write as _;
use std::os::uefi::env;

use efisock_efi_apps::LINE_PREFIX;
use efisock_efi_apps::exit::exit_qemu;
use uefi_raw::table::runtime::RuntimeServices;
use uefi_raw::table::system::SystemTable;

/// Prints one line on stdout (`ConOut`, mirrored to serial) and flushes it,
/// so that the host sees it even if the guest stops right after.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn runtime_services() -> *mut RuntimeServices {
    let st = env::system_table().as_ptr().cast::<SystemTable>();
    // SAFETY: std hands out the live system table it received at entry.
    unsafe { (*st).runtime_services }
}

/// Prints `EFISOCK-DONE <code>` and leaves QEMU with `code`.
pub fn done(code: u8) -> ! {
    line(&format!("{LINE_PREFIX}DONE {code}"));
    // SAFETY: the runtime-services table of the live system table.
    unsafe { exit_qemu(code, runtime_services()) }
}

/// Prints `EFISOCK-ERROR {"error": what}`, then [`done`] with `code`.
pub fn fatal(what: &str, code: u8) -> ! {
    line(&format!(
        "{LINE_PREFIX}ERROR {}",
        serde_json::json!({ "error": what })
    ));
    done(code)
}
