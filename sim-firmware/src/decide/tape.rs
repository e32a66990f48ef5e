//! The decision tape and its compact text form.
//!
//! # Grammar
//! ```text
//! tape  = *item
//! item  = digit             ; one value 0..=35
//!       / "_" b36 "."       ; a run of N >= 1 zeros (N in base 36)
//!       / "{" b36 "}"       ; one value (any u32) in base 36
//! b36   = 1*digit
//! digit = "0".."9" / "a".."z"   ; lowercase only
//! ```
//! `Display` writes runs of 4 or more zeros as `_N.`, other values below
//! 36 as one digit and larger values as `{..}`, so the empty tape (the
//! EDK2-faithful run) is the empty string and typical tapes stay short.
//! `FromStr` accepts exactly this grammar (a non-canonical but
//! grammatical spelling such as `_1.` or `{5}` is accepted too) and
//! reports the byte offset of the first problem.

use core::fmt;
use core::str::FromStr;

/// Longest zero run `FromStr` accepts (a guard against a tiny string
/// expanding into gigabytes).
pub const MAX_RUN: u64 = 1 << 26;

/// A sequence of decision values: decision `i` takes `tape[i] % n`, and
/// every decision past the end takes 0 (the EDK2-faithful default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tape(Vec<u32>);

impl Tape {
    /// A tape holding these values.
    pub fn from_values(values: Vec<u32>) -> Self {
        Tape(values)
    }

    /// The values, in decision order.
    pub fn values(&self) -> &[u32] {
        &self.0
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty tape (every decision takes its default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Value for decision `i`, if the tape is that long.
    pub fn get(&self, i: usize) -> Option<u32> {
        self.0.get(i).copied()
    }

    /// The tape without its trailing zeros: it replays identically,
    /// because decisions past the end take 0 anyway.
    pub fn trimmed(&self) -> Tape {
        let end = self.0.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
        Tape(self.0[..end].to_vec())
    }
}

fn b36(mut v: u64, out: &mut String) {
    let mut digits = [0u8; 16];
    let mut n = 0;
    loop {
        let d = (v % 36) as u8;
        digits[n] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        n += 1;
        v /= 36;
        if v == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        out.push(d as char);
    }
}

fn digit(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some(u64::from(c - b'0')),
        b'a'..=b'z' => Some(u64::from(c - b'a') + 10),
        _ => None,
    }
}

impl fmt::Display for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut i = 0;
        while i < self.0.len() {
            let v = self.0[i];
            if v == 0 {
                let run = self.0[i..].iter().take_while(|&&x| x == 0).count();
                if run >= 4 {
                    out.push('_');
                    b36(run as u64, &mut out);
                    out.push('.');
                } else {
                    out.extend(std::iter::repeat_n('0', run));
                }
                i += run;
                continue;
            }
            if v < 36 {
                b36(u64::from(v), &mut out);
            } else {
                out.push('{');
                b36(u64::from(v), &mut out);
                out.push('}');
            }
            i += 1;
        }
        f.write_str(&out)
    }
}

/// A number inside a tape: the length of a zero run or one large value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapeNumber {
    /// `_N.`: the length of a run of zeros.
    ZeroRun,
    /// `{N}`: one value.
    Value,
}

impl fmt::Display for TapeNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TapeNumber::ZeroRun => "zero run",
            TapeNumber::Value => "value",
        })
    }
}

/// Why a string is not a [`Tape`]; byte offsets count from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseTapeError {
    /// A number opened at `start` is missing its terminator `end`.
    Unterminated {
        /// Which number.
        what: TapeNumber,
        /// Offset of its opening `_` or `{`.
        start: usize,
        /// The terminator expected (`.` or `}`).
        end: char,
    },
    /// A number opened at `start` has no digits.
    Empty {
        /// Which number.
        what: TapeNumber,
        /// Offset of its opening `_` or `{`.
        start: usize,
    },
    /// A byte inside a number is not a base-36 digit.
    NotADigit {
        /// Offset of the byte.
        at: usize,
        /// The byte, as a character.
        byte: char,
        /// Which number.
        what: TapeNumber,
        /// Offset of its opening `_` or `{`.
        start: usize,
    },
    /// A number is larger than allowed.
    TooLarge {
        /// Which number.
        what: TapeNumber,
        /// Offset of its opening `_` or `{`.
        start: usize,
        /// The largest allowed.
        max: u64,
    },
    /// `_0.`: a zero run must have at least one zero.
    ZeroLengthRun {
        /// Offset of the `_`.
        at: usize,
    },
    /// The tape would hold more than [`MAX_RUN`] values.
    TooLong,
    /// A character that cannot start an item.
    Unexpected {
        /// The character.
        ch: char,
        /// Its offset.
        at: usize,
    },
}

impl fmt::Display for ParseTapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParseTapeError::Unterminated { what, start, end } => write!(
                f,
                "tape: {what} starting at byte {start} is not terminated by {end:?}"
            ),
            ParseTapeError::Empty { what, start } => {
                write!(f, "tape: empty {what} at byte {start}")
            }
            ParseTapeError::NotADigit {
                at,
                byte,
                what,
                start,
            } => write!(
                f,
                "tape: byte {at} ({byte:?}) is not a base-36 digit (0-9, a-z) inside the {what} starting at byte {start}"
            ),
            ParseTapeError::TooLarge { what, start, max } => {
                write!(f, "tape: {what} starting at byte {start} exceeds {max}")
            }
            ParseTapeError::ZeroLengthRun { at } => {
                write!(f, "tape: zero run of length 0 at byte {at}")
            }
            ParseTapeError::TooLong => write!(f, "tape: longer than {MAX_RUN} values"),
            ParseTapeError::Unexpected { ch, at } => write!(
                f,
                "tape: unexpected {ch:?} at byte {at} (expected 0-9, a-z, '_' or '{{')"
            ),
        }
    }
}

impl std::error::Error for ParseTapeError {}

/// Parse a base-36 number whose opening `_` or `{` is at `at - 1`, ended
/// by `end`; returns the number and the offset after the terminator.
fn number(
    s: &[u8],
    at: usize,
    end: u8,
    what: TapeNumber,
    max: u64,
) -> Result<(u64, usize), ParseTapeError> {
    let start = at - 1;
    let mut v: u64 = 0;
    let mut i = at;
    loop {
        match s.get(i) {
            None => {
                return Err(ParseTapeError::Unterminated {
                    what,
                    start,
                    end: end as char,
                });
            }
            Some(&c) if c == end => {
                if i == at {
                    return Err(ParseTapeError::Empty { what, start });
                }
                return Ok((v, i + 1));
            }
            Some(&c) => {
                let d = digit(c).ok_or(ParseTapeError::NotADigit {
                    at: i,
                    byte: c as char,
                    what,
                    start,
                })?;
                v = v * 36 + d;
                if v > max {
                    return Err(ParseTapeError::TooLarge { what, start, max });
                }
            }
        }
        i += 1;
    }
}

impl FromStr for Tape {
    type Err = ParseTapeError;

    fn from_str(s: &str) -> Result<Self, ParseTapeError> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if let Some(d) = digit(c) {
                out.push(d as u32);
                i += 1;
            } else if c == b'_' {
                let (n, next) = number(b, i + 1, b'.', TapeNumber::ZeroRun, MAX_RUN)?;
                if n == 0 {
                    return Err(ParseTapeError::ZeroLengthRun { at: i });
                }
                if out.len() as u64 + n > MAX_RUN {
                    return Err(ParseTapeError::TooLong);
                }
                out.extend(std::iter::repeat_n(0, n as usize));
                i = next;
            } else if c == b'{' {
                let (v, next) = number(b, i + 1, b'}', TapeNumber::Value, u64::from(u32::MAX))?;
                out.push(v as u32);
                i = next;
            } else {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(ParseTapeError::Unexpected { ch, at: i });
            }
        }
        Ok(Tape(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical_form() {
        let t = Tape::from_values(vec![0, 0, 0, 0, 0, 1, 35, 36, 0, 0, u32::MAX, 0, 0, 0, 0]);
        let s = t.to_string();
        assert_eq!(s, "_5.1z{10}00{1z141z3}_4.");
        assert_eq!(s.parse::<Tape>().unwrap(), t);
        assert_eq!("".parse::<Tape>().unwrap(), Tape::default());
        assert_eq!(t.trimmed().len(), 11);
    }

    #[test]
    fn errors_name_the_problem_and_where() {
        assert_eq!(
            "12_5".parse::<Tape>(),
            Err(ParseTapeError::Unterminated {
                what: TapeNumber::ZeroRun,
                start: 2,
                end: '.'
            })
        );
        assert_eq!(
            "_0.".parse::<Tape>(),
            Err(ParseTapeError::ZeroLengthRun { at: 0 })
        );
        assert_eq!(
            "{1z141z4}".parse::<Tape>(),
            Err(ParseTapeError::TooLarge {
                what: TapeNumber::Value,
                start: 0,
                max: u64::from(u32::MAX)
            })
        );
        let e = "ab!".parse::<Tape>().unwrap_err();
        assert_eq!(e, ParseTapeError::Unexpected { ch: '!', at: 2 });
        assert_eq!(
            e.to_string(),
            "tape: unexpected '!' at byte 2 (expected 0-9, a-z, '_' or '{')"
        );
    }
}
