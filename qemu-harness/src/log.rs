//! Parsing the guest's serial log into `EFISOCK-*` result lines.
//!
//! OVMF mirrors ConOut to the serial port with ANSI escape sequences (colour,
//! cursor moves) and `\r\n` line ends, and firmware messages interleave with
//! ours; the app therefore prints every result on its own line after a unique
//! prefix, and this module recovers exactly those lines.

/// The prefix the application puts before every machine-readable line.
pub const PREFIX: &str = "EFISOCK-";

/// One machine-readable line: `EFISOCK-<kind> <body>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfisockLine {
    /// The word after the prefix (`HELLO`, `STEP`, `RESULT`, `DONE`, `PANIC`).
    pub kind: String,
    /// The rest of the line (JSON, or the exit code for `DONE`).
    pub body: String,
}

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, and two-byte
/// `ESC x`) and carriage returns.
pub fn strip_ansi(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\u{1b}' => {
                if it.next() == Some('[') {
                    // Parameters and intermediates until a final byte 0x40..=0x7e.
                    for d in it.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// All `EFISOCK-*` lines of a raw serial log, in order. Text before the
/// prefix on the same line (firmware noise) is ignored.
pub fn parse_lines(raw: &str) -> Vec<EfisockLine> {
    strip_ansi(raw)
        .lines()
        .filter_map(|l| {
            let at = l.find(PREFIX)?;
            let rest = &l[at + PREFIX.len()..];
            let (kind, body) = rest.split_once(' ').unwrap_or((rest, ""));
            if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_uppercase()) {
                return None;
            }
            Some(EfisockLine {
                kind: kind.to_string(),
                body: body.trim().to_string(),
            })
        })
        .collect()
}

/// The code of the `EFISOCK-DONE` line, if present and well formed.
pub fn done_code(lines: &[EfisockLine]) -> Option<u8> {
    lines
        .iter()
        .rev()
        .find(|l| l.kind == "DONE")
        .and_then(|l| l.body.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_csi_sequences_and_cr() {
        assert_eq!(
            strip_ansi("\u{1b}[0m\u{1b}[40;37mab\r\ncd\u{1b}[2J"),
            "ab\ncd"
        );
        assert_eq!(strip_ansi("x\u{1b}cy"), "xy");
        assert_eq!(strip_ansi("tail\u{1b}"), "tail");
    }

    #[test]
    fn extracts_prefixed_lines_among_noise() {
        let log = "BdsDxe: loading Boot0001\r\n\u{1b}[1mEFISOCK-HELLO {\"a\":1}\r\n\
                   noise EFISOCK-STEP {\"step\":\"dhcp\"}\r\nEFISOCK-DONE 0\r\n\
                   EFISOCK-lower x\r\n";
        let lines = parse_lines(log);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].kind, "HELLO");
        assert_eq!(lines[0].body, "{\"a\":1}");
        assert_eq!(lines[1].body, "{\"step\":\"dhcp\"}");
        assert_eq!(done_code(&lines), Some(0));
    }

    #[test]
    fn missing_or_bad_done_is_none() {
        assert_eq!(done_code(&parse_lines("EFISOCK-STEP {}\n")), None);
        assert_eq!(done_code(&parse_lines("EFISOCK-DONE x\n")), None);
    }
}
