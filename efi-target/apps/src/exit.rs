//! Leaving QEMU with an exit code the host can read.
//!
//! QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`)
//! terminates the emulator when the guest writes a value `code` to port
//! 0xf4; QEMU's process exit status is then `(code << 1) | 1`, so it is
//! always odd and a guest code of 0 (success) appears as 1. The host side
//! (`xtask/src/qemu.rs`) decodes it back. Without the device the write is
//! ignored and we fall back to `ResetSystem(Shutdown)`, which ends QEMU (with
//! `-no-reboot`) with status 0, indistinguishable from other clean exits.

use uefi_raw::Status;
use uefi_raw::table::runtime::{ResetType, RuntimeServices};

/// The I/O port of QEMU's isa-debug-exit device, as configured by the host.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The QEMU process exit status for a guest `code` written to isa-debug-exit.
pub const fn qemu_status_for(code: u8) -> i32 {
    ((code as i32) << 1) | 1
}

/// The guest code for a QEMU process exit status, if it came from
/// isa-debug-exit (odd statuses only).
pub const fn code_for_qemu_status(status: i32) -> Option<u8> {
    if status & 1 == 1 && status > 0 && status < 512 {
        Some((status >> 1) as u8)
    } else {
        None
    }
}

/// Writes `code` to the isa-debug-exit port (returns only if the device is
/// absent), then shuts the machine down through the runtime services.
///
/// # Safety
/// `rt` must be null or the firmware's runtime-services table. Port 0xf4 must
/// not belong to a device other than isa-debug-exit (true for QEMU q35/pc).
pub unsafe fn exit_qemu(code: u8, rt: *mut RuntimeServices) -> ! {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: an `out` to port 0xf4 only reaches isa-debug-exit (or nothing);
    // it touches no memory.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") DEBUG_EXIT_PORT, in("eax") u32::from(code),
            options(nomem, nostack, preserves_flags));
    }
    if !rt.is_null() {
        let status = if code == 0 {
            Status::SUCCESS
        } else {
            Status::ABORTED
        };
        // SAFETY: `rt` is the live runtime-services table (caller contract).
        unsafe { ((*rt).reset_system)(ResetType::SHUTDOWN, status, 0, core::ptr::null()) }
    }
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(code_for_qemu_status(qemu_status_for(code)), Some(code));
        }
        assert_eq!(qemu_status_for(0), 1);
        assert_eq!(qemu_status_for(3), 7);
        assert_eq!(code_for_qemu_status(0), None);
        assert_eq!(code_for_qemu_status(124), None);
    }
}
