//! Pool memory the firmware may reference.

use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};

use super::error::RawError;
use crate::firmware::{BootServices, Status};

/// Alignment `AllocatePool` guarantees (UEFI 2.11, 7.2: 8 bytes).
pub const POOL_ALIGN: usize = 8;

/// A zero-initialised `AllocatePool` block, freed on drop.
///
/// Call [`PoolBuf::leak`] instead of dropping while the firmware may still
/// reference the block (a token that never completed).
#[derive(Debug)]
pub struct PoolBuf<'b, B: BootServices> {
    boot: &'b B,
    ptr: NonNull<u8>,
    len: usize,
}

impl<'b, B: BootServices> PoolBuf<'b, B> {
    /// Allocates `len` zeroed bytes (at least 1).
    pub fn zeroed(boot: &'b B, len: usize) -> Result<Self, RawError> {
        let len = len.max(1);
        let raw = boot
            .allocate_pool(len)
            .map_err(|s| RawError::new("AllocatePool", s))?;
        let ptr =
            NonNull::new(raw).ok_or(RawError::new("AllocatePool", Status::OUT_OF_RESOURCES))?;
        if (raw as usize) % POOL_ALIGN != 0 {
            // SAFETY: `raw` came from allocate_pool and nothing references it.
            let _ = unsafe { boot.free_pool(raw) };
            return Err(RawError::new("AllocatePool", Status::OUT_OF_RESOURCES));
        }
        // SAFETY: the firmware returned `len` writable bytes at `raw`.
        unsafe { ptr::write_bytes(raw, 0, len) };
        Ok(Self { boot, ptr, len })
    }

    /// A zeroed block sized for one `T`.
    ///
    /// `T` must be valid when all-zero (true of the plain-data UEFI structs);
    /// alignment above [`POOL_ALIGN`] is refused with `UNSUPPORTED`.
    pub fn for_type<T>(boot: &'b B) -> Result<Self, RawError> {
        if align_of::<T>() > POOL_ALIGN {
            return Err(RawError::new("AllocatePool", Status::UNSUPPORTED));
        }
        Self::zeroed(boot, size_of::<T>())
    }

    /// The start of the block, typed. Dereferencing it is the caller's
    /// business: the block is `len` bytes, [`POOL_ALIGN`]-aligned.
    pub fn as_ptr<T>(&self) -> *mut T {
        self.ptr.as_ptr().cast()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty (never: at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, for reading once the firmware handed them back.
    ///
    /// # Safety
    /// The firmware must not own the block (no pending token uses it).
    pub unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes at `ptr`, not concurrently written
        // (caller contract).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for filling before a call.
    ///
    /// # Safety
    /// The firmware must not own the block.
    pub unsafe fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, and `&mut self` makes this the only Rust view.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Gives the block up without freeing it, because the firmware may still
    /// reference it.
    pub fn leak(self) {
        core::mem::forget(self);
    }

    /// Hands the block to the caller, who frees it with `FreePool` once the
    /// firmware no longer references it (tests that free memory at chosen
    /// moments, including deliberately wrong ones).
    pub fn into_raw(self) -> *mut u8 {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }
}

impl<B: BootServices> Drop for PoolBuf<'_, B> {
    fn drop(&mut self) {
        // SAFETY: the block came from allocate_pool; a block the firmware may
        // still own is `leak`ed instead of dropped.
        let _ = unsafe { self.boot.free_pool(self.ptr.as_ptr()) };
    }
}
