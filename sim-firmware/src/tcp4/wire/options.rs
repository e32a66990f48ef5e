//! TCP options in EDK2's layout.
//!
//! `TcpSynBuildOption` (TcpOption.c l.105-173, edk2-stable202211) prepends
//! the options at the head of the segment in the order timestamps, window
//! scale, MSS, so on the wire they read MSS, then NOP and window scale, then
//! two NOPs and the timestamps: every option 4-byte aligned, no EOL. It
//! never sends SACK-permitted (`Tcp4Configure` refuses SACK with
//! UNSUPPORTED, TcpMain.c l.165-168, and `TcpParseOption` reads only MSS,
//! window scale and timestamps).

use smoltcp::wire::TcpOption;

/// The options of a SYN or SYN-ACK that carry over to EDK2's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SynOptions {
    /// MSS option value.
    pub mss: Option<u16>,
    /// Window scale shift.
    pub window_scale: Option<u8>,
    /// Timestamps (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

/// Reads MSS, window scale and timestamps from `options`; None if they
/// do not parse.
pub(crate) fn read_syn_options(mut options: &[u8]) -> Option<SynOptions> {
    let mut found = SynOptions::default();
    while !options.is_empty() {
        let (rest, option) = TcpOption::parse(options).ok()?;
        match option {
            TcpOption::EndOfList => break,
            TcpOption::MaxSegmentSize(v) => found.mss = Some(v),
            TcpOption::WindowScale(v) => found.window_scale = Some(v),
            TcpOption::TimeStamp { tsval, tsecr } => found.timestamp = Some((tsval, tsecr)),
            _ => {}
        }
        options = rest;
    }
    Some(found)
}

/// The option bytes `TcpSynBuildOption` writes for `o` (MSS is always
/// written; a missing value is 536, RFC 9293's default).
pub(crate) fn edk2_syn_options(o: SynOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    let mss = o.mss.unwrap_or(536);
    out.extend_from_slice(&[2, 4]);
    out.extend_from_slice(&mss.to_be_bytes());
    if let Some(shift) = o.window_scale {
        out.extend_from_slice(&[1, 3, 3, shift]);
    }
    if let Some((tsval, tsecr)) = o.timestamp {
        out.extend_from_slice(&[1, 1, 8, 10]);
        out.extend_from_slice(&tsval.to_be_bytes());
        out.extend_from_slice(&tsecr.to_be_bytes());
    }
    out
}

/// Overwrites every SACK-permitted option in `options` with two NOPs, so
/// that a stack reading them sees what EDK2 acts on; true if one was found.
pub(crate) fn blank_sack_permitted(options: &mut [u8]) -> bool {
    let mut at = 0;
    let mut blanked = false;
    while at < options.len() {
        let Ok((rest, option)) = TcpOption::parse(&options[at..]) else {
            return blanked;
        };
        let len = options.len() - at - rest.len();
        match option {
            TcpOption::EndOfList => break,
            TcpOption::SackPermitted => {
                options[at..at + len].fill(1);
                blanked = true;
            }
            _ => {}
        }
        at += len;
    }
    blanked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_layout_is_mss_nop_ws_nop_nop_ts() {
        let table: &[(SynOptions, &[u8])] = &[
            (
                SynOptions {
                    mss: Some(1460),
                    window_scale: Some(6),
                    timestamp: Some((1001, 0)),
                },
                &[
                    2, 4, 5, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 0, 0, 3, 0xe9, 0, 0, 0, 0,
                ],
            ),
            (
                SynOptions {
                    mss: Some(1460),
                    window_scale: Some(6),
                    timestamp: None,
                },
                &[2, 4, 5, 0xb4, 1, 3, 3, 6],
            ),
            (SynOptions::default(), &[2, 4, 2, 0x18]),
        ];
        for (o, bytes) in table {
            let built = edk2_syn_options(*o);
            assert_eq!(&built, bytes);
            assert_eq!(built.len() % 4, 0);
            assert_eq!(
                read_syn_options(&built),
                Some(*o).map(|o| SynOptions {
                    mss: o.mss.or(Some(536)),
                    ..o
                })
            );
        }
    }

    #[test]
    fn sack_permitted_becomes_nops_and_nothing_else_moves() {
        // smoltcp's SYN: MSS, WS, SACK-permitted, EOL padding.
        let mut opts = [2, 4, 5, 0xb4, 3, 3, 6, 4, 2, 0, 0, 0];
        assert!(blank_sack_permitted(&mut opts));
        assert_eq!(opts, [2, 4, 5, 0xb4, 3, 3, 6, 1, 1, 0, 0, 0]);
        assert!(!blank_sack_permitted(&mut opts));
        let o = read_syn_options(&opts).expect("parses");
        assert_eq!((o.mss, o.window_scale), (Some(1460), Some(6)));
    }
}
