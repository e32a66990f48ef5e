//! Pool memory: real heap blocks with guard canaries, so the checker can see
//! overruns, double frees and frees of memory the firmware still owns. A
//! block freed while owned is quarantined (kept alive) instead of released,
//! so the simulated firmware never touches freed memory.

use std::alloc::{Layout, alloc, dealloc};
use std::collections::BTreeMap;

/// Guard bytes before and after every block.
pub const GUARD: usize = 16;
const GUARD_BYTE: u8 = 0xFD;
const ALIGN: usize = 16;

/// Outcome of a free request.
#[derive(Debug, PartialEq, Eq)]
pub enum FreeOutcome {
    /// Released.
    Freed,
    /// Released, but a guard was overwritten.
    GuardOverwritten,
    /// Not a live allocation (double free or foreign pointer).
    Unknown,
}

/// Every live (and quarantined) pool allocation.
#[derive(Debug, Default)]
pub struct Pool {
    live: BTreeMap<usize, usize>,
    quarantine: Vec<(usize, usize)>,
}

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(2 * GUARD)?, ALIGN).ok()
}

impl Pool {
    /// Allocate `size` bytes (16-byte aligned, guarded). None if out of memory.
    pub fn allocate(&mut self, size: usize) -> Option<*mut u8> {
        let l = layout(size)?;
        // SAFETY: the layout has non-zero size (2 * GUARD at least).
        let base = unsafe { alloc(l) };
        if base.is_null() {
            return None;
        }
        // SAFETY: base is valid for `size + 2 * GUARD` bytes just allocated.
        unsafe {
            core::ptr::write_bytes(base, GUARD_BYTE, GUARD);
            core::ptr::write_bytes(base.add(GUARD + size), GUARD_BYTE, GUARD);
        }
        let user = base as usize + GUARD;
        self.live.insert(user, size);
        Some(user as *mut u8)
    }

    /// Is `[addr, addr+len)` inside one live allocation?
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        match self.live.range(..=addr).next_back() {
            Some((&start, &size)) => addr + len <= start + size,
            None => false,
        }
    }

    /// Size of the live allocation starting at `ptr`.
    pub fn size_of(&self, ptr: usize) -> Option<usize> {
        self.live.get(&ptr).copied()
    }

    fn guards_intact(start: usize, size: usize) -> bool {
        // SAFETY: `start` is a live block of `size` bytes with GUARD bytes on
        // either side, all inside one allocation made by `allocate`.
        unsafe {
            let before = core::slice::from_raw_parts((start - GUARD) as *const u8, GUARD);
            let after = core::slice::from_raw_parts((start + size) as *const u8, GUARD);
            before.iter().chain(after).all(|&b| b == GUARD_BYTE)
        }
    }

    /// Move a live block to quarantine (never released until the pool drops).
    pub fn quarantine(&mut self, ptr: usize) -> bool {
        match self.live.remove(&ptr) {
            Some(size) => {
                self.quarantine.push((ptr, size));
                true
            }
            None => false,
        }
    }

    /// Release a block.
    pub fn free(&mut self, ptr: usize) -> FreeOutcome {
        let Some(size) = self.live.remove(&ptr) else {
            return FreeOutcome::Unknown;
        };
        let intact = Self::guards_intact(ptr, size);
        let l = layout(size).expect("layout was valid at allocation");
        // SAFETY: the block was allocated by `allocate` with this layout and
        // is no longer tracked, so it is released exactly once.
        unsafe { dealloc((ptr - GUARD) as *mut u8, l) };
        if intact {
            FreeOutcome::Freed
        } else {
            FreeOutcome::GuardOverwritten
        }
    }

    /// Live allocations (start, size), address order.
    pub fn live(&self) -> Vec<(usize, usize)> {
        self.live.iter().map(|(&a, &s)| (a, s)).collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let blocks: Vec<(usize, usize)> = self
            .live
            .iter()
            .map(|(&a, &s)| (a, s))
            .chain(self.quarantine.drain(..))
            .collect();
        self.live.clear();
        for (ptr, size) in blocks {
            let l = layout(size).expect("layout was valid at allocation");
            // SAFETY: each block was allocated by `allocate` with this layout
            // and appears exactly once across live and quarantine.
            unsafe { dealloc((ptr - GUARD) as *mut u8, l) };
        }
    }
}
