//! The C layouts the firmware reads.

use crate::firmware::{
    Boolean, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConnectionToken, Tcp4FragmentData,
    Tcp4IoToken, Tcp4ListenToken, Tcp4ReceiveData, Tcp4TransmitData,
};

/// `EFI_TCP4_TRANSMIT_DATA` with exactly one fragment.
///
/// The fragment table is a flexible array member at the end of the header,
/// so the firmware reads `frag[0]` right after the header fields.
#[repr(C)]
#[derive(Debug)]
pub struct TransmitData1 {
    /// Push, urgent, total length and fragment count (1).
    pub head: Tcp4TransmitData,
    /// The one fragment.
    pub frag: [Tcp4FragmentData; 1],
}

/// `EFI_TCP4_RECEIVE_DATA` with exactly one fragment (see [`TransmitData1`]).
#[repr(C)]
#[derive(Debug)]
pub struct ReceiveData1 {
    /// Urgent, capacity (rewritten to the received length) and fragment count (1).
    pub head: Tcp4ReceiveData,
    /// The one fragment.
    pub frag: [Tcp4FragmentData; 1],
}

impl TransmitData1 {
    /// One pushed, non-urgent fragment of `len` bytes at `buf`.
    pub const fn one(buf: *mut u8, len: u32) -> Self {
        TransmitData1 {
            head: Tcp4TransmitData {
                push: Boolean::TRUE,
                urgent: Boolean::FALSE,
                data_length: len,
                fragment_count: 1,
                fragment_table: [],
            },
            frag: [Tcp4FragmentData {
                fragment_length: len,
                fragment_buf: buf,
            }],
        }
    }
}

impl ReceiveData1 {
    /// One fragment of `cap` bytes at `buf` for the firmware to fill.
    pub const fn one(buf: *mut u8, cap: u32) -> Self {
        ReceiveData1 {
            head: Tcp4ReceiveData {
                urgent: Boolean::FALSE,
                data_length: cap,
                fragment_count: 1,
                fragment_table: [],
            },
            frag: [Tcp4FragmentData {
                fragment_length: cap,
                fragment_buf: buf,
            }],
        }
    }
}

// The fragment must sit exactly where the header's `[T; 0]` table starts.
const _: () = {
    assert!(core::mem::offset_of!(TransmitData1, frag) == core::mem::size_of::<Tcp4TransmitData>());
    assert!(core::mem::offset_of!(ReceiveData1, frag) == core::mem::size_of::<Tcp4ReceiveData>());
};

/// Token types whose layout begins with a `Tcp4CompletionToken`, so that a
/// pointer to one is a valid pointer to its completion token (what `Cancel`
/// takes and what the firmware writes the status into).
///
/// # Safety
/// Implementors are `#[repr(C)]` structs whose first field is a
/// `Tcp4CompletionToken`.
pub unsafe trait CompletionHeader {}

// SAFETY: uefi-raw declares each token below `#[repr(C)]` with
// `completion_token: Tcp4CompletionToken` as its first field.
unsafe impl CompletionHeader for Tcp4ConnectionToken {}
// SAFETY: as above.
unsafe impl CompletionHeader for Tcp4ListenToken {}
// SAFETY: as above.
unsafe impl CompletionHeader for Tcp4IoToken {}
// SAFETY: as above.
unsafe impl CompletionHeader for Tcp4CloseToken {}
// SAFETY: a completion token trivially begins with itself.
unsafe impl CompletionHeader for Tcp4CompletionToken {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn one_fragment_layouts_match_flexible_array_offsets() {
        assert_eq!(
            offset_of!(TransmitData1, frag),
            size_of::<Tcp4TransmitData>()
        );
        assert_eq!(offset_of!(ReceiveData1, frag), size_of::<Tcp4ReceiveData>());
        assert_eq!(size_of::<Tcp4TransmitData>(), 16);
        assert_eq!(size_of::<Tcp4ReceiveData>(), 16);
    }
}
