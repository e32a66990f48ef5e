//! Text output on the firmware console (`ConOut`), which OVMF mirrors to the
//! serial port: the channel that carries results to the host.
//!
//! `OutputString` takes NUL-terminated UCS-2, so text is converted in small
//! stack chunks (no allocation, usable from the panic handler). `\n` becomes
//! `\r\n`; characters outside the BMP become U+FFFD.

use core::fmt;

use uefi_raw::protocol::console::SimpleTextOutputProtocol;

/// Code units per `OutputString` call, excluding the terminating NUL.
const CHUNK: usize = 126;

/// Feeds `s` as UCS-2 to `emit`, in NUL-terminated chunks of at most
/// `CHUNK` (126) code units plus the NUL.
pub fn encode_chunks(s: &str, mut emit: impl FnMut(&[u16])) {
    let mut buf = [0u16; CHUNK + 1];
    let mut n = 0;
    for c in s.chars() {
        // Room for a two-unit "\r\n" before the NUL.
        if n + 2 > CHUNK {
            buf[n] = 0;
            emit(&buf[..=n]);
            n = 0;
        }
        if c == '\n' {
            buf[n] = u16::from(b'\r');
            buf[n + 1] = u16::from(b'\n');
            n += 2;
        } else {
            buf[n] = u16::try_from(u32::from(c)).unwrap_or(0xFFFD);
            n += 1;
        }
    }
    if n > 0 {
        buf[n] = 0;
        emit(&buf[..=n]);
    }
}

/// A `core::fmt::Write` sink on a `SimpleTextOutput` protocol.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    out: *mut SimpleTextOutputProtocol,
}

impl Console {
    /// Wraps the system table's `ConOut`.
    ///
    /// # Safety
    /// `out` must be null (output is then dropped) or a live
    /// `EFI_SIMPLE_TEXT_OUTPUT_PROTOCOL` while boot services are available.
    pub unsafe fn new(out: *mut SimpleTextOutputProtocol) -> Self {
        Self { out }
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.out.is_null() {
            return Ok(());
        }
        let out = self.out;
        let mut failed = false;
        encode_chunks(s, |chunk| {
            // SAFETY: `out` is live (constructor contract) and `chunk` is a
            // NUL-terminated UCS-2 string that outlives the call.
            let st = unsafe { ((*out).output_string)(out, chunk.as_ptr()) };
            failed |= st.is_error();
        });
        if failed { Err(fmt::Error) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn collect(s: &str) -> Vec<Vec<u16>> {
        let mut v = Vec::new();
        encode_chunks(s, |c| v.push(c.to_vec()));
        v
    }

    #[test]
    fn newline_becomes_crlf_and_nul_terminated() {
        let v = collect("ab\n");
        assert_eq!(v, [[97u16, 98, 13, 10, 0].to_vec()]);
    }

    #[test]
    fn long_text_is_chunked_losslessly() {
        let text: std::string::String = (0..1000)
            .map(|i| if i % 50 == 49 { '\n' } else { 'x' })
            .collect();
        let chunks = collect(&text);
        assert!(chunks.len() > 1);
        let mut joined = Vec::new();
        for c in &chunks {
            assert!(c.len() <= CHUNK + 1);
            assert_eq!(*c.last().unwrap(), 0);
            joined.extend_from_slice(&c[..c.len() - 1]);
        }
        let expect: Vec<u16> = text.replace('\n', "\r\n").encode_utf16().collect();
        assert_eq!(joined, expect);
    }

    #[test]
    fn non_bmp_is_replaced() {
        assert_eq!(collect("\u{1F600}"), [[0xFFFDu16, 0].to_vec()]);
    }
}
