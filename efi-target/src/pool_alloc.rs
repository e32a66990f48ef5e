//! A global allocator on the firmware's pool (`AllocatePool`/`FreePool`).
//!
//! `AllocatePool` returns 8-byte-aligned memory. Larger alignments are served
//! by over-allocating and storing the pool pointer in the word just before
//! the aligned block. The allocator is usable only between [`init`] and the
//! end of boot services; before `init` every allocation fails (returns null,
//! which Rust turns into an allocation-error abort, never UB).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use uefi_raw::Status;
use uefi_raw::table::boot::{BootServices, MemoryType};

static BOOT: AtomicPtr<BootServices> = AtomicPtr::new(ptr::null_mut());

/// Alignment `AllocatePool` guarantees.
const POOL_ALIGN: usize = 8;

/// Makes the allocator use `bs`.
///
/// # Safety
/// `bs` is the running firmware's boot-services table and boot services stay
/// available for as long as anything allocated is used or freed.
pub unsafe fn init(bs: *mut BootServices) {
    BOOT.store(bs, Ordering::Release);
}

/// Pool size and offset of the returned block for `layout`: `(size, pad)`.
/// `None` on overflow.
pub fn plan(layout: Layout) -> Option<(usize, bool)> {
    if layout.align() <= POOL_ALIGN {
        Some((layout.size().max(1), false))
    } else {
        // Room to align up plus one word for the original pointer.
        layout.size().checked_add(layout.align()).map(|s| (s, true))
    }
}

/// The allocator; register it with `#[global_allocator]` in the binary.
#[derive(Debug)]
pub struct PoolAllocator;

// SAFETY: allocations come from the firmware pool, are aligned per `layout`
// (over-allocation path), and `dealloc` frees exactly what `alloc` obtained.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let bs = BOOT.load(Ordering::Acquire);
        let Some((size, over)) = plan(layout) else {
            return ptr::null_mut();
        };
        if bs.is_null() {
            return ptr::null_mut();
        }
        let mut raw: *mut u8 = ptr::null_mut();
        // SAFETY: `bs` is live (init contract); `raw` is a valid out pointer.
        let s = unsafe { ((*bs).allocate_pool)(MemoryType::LOADER_DATA, size, &mut raw) };
        if s != Status::SUCCESS || raw.is_null() {
            return ptr::null_mut();
        }
        if !over {
            return raw;
        }
        // Align up past at least one word so the pool pointer fits before it.
        let addr = raw as usize + size_of::<usize>();
        let aligned = (addr + layout.align() - 1) & !(layout.align() - 1);
        let out = raw.wrapping_add(aligned - raw as usize);
        // SAFETY: `out - 8 >= raw` and `out + layout.size() <= raw + size`
        // because align >= 16 > 8 leaves room; the slot is 8-aligned.
        unsafe { out.cast::<*mut u8>().sub(1).write(raw) };
        out
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let bs = BOOT.load(Ordering::Acquire);
        if bs.is_null() || ptr.is_null() {
            return;
        }
        let raw = match plan(layout) {
            Some((_, true)) => {
                // SAFETY: `alloc` stored the pool pointer right before `ptr`.
                unsafe { ptr.cast::<*mut u8>().sub(1).read() }
            }
            _ => ptr,
        };
        // SAFETY: `raw` came from AllocatePool and is freed once.
        let _ = unsafe { ((*bs).free_pool)(raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_alignments_use_the_pool_directly() {
        let (s, over) = plan(Layout::from_size_align(24, 8).unwrap()).unwrap();
        assert_eq!((s, over), (24, false));
        assert_eq!(
            plan(Layout::from_size_align(0, 1).unwrap()),
            Some((1, false))
        );
    }

    #[test]
    fn large_alignments_over_allocate() {
        let (s, over) = plan(Layout::from_size_align(100, 64).unwrap()).unwrap();
        assert!(over);
        assert!(s >= 100 + 64);
    }

    #[test]
    fn uninitialised_allocator_fails_cleanly() {
        let l = Layout::from_size_align(16, 8).unwrap();
        // SAFETY: the layout has non-zero size.
        assert!(unsafe { PoolAllocator.alloc(l) }.is_null());
    }
}
