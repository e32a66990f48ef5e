//! Cases, their results, and the assertion helpers cases are written with.
//!
//! A case is a plain function over the target, registered as a [`Case`]
//! value; it fails by returning a [`CaseError`] whose message says what was
//! expected and what happened. [`ensure!`](crate::ensure) and
//! [`ensure_eq!`](crate::ensure_eq) build those messages; [`Context`] turns
//! any displayable error (e.g. an `efisock::Error`) into one with `?`.

use std::fmt;

/// One conformance case, generic over the target `T` it runs on.
pub struct Case<T> {
    /// Short name, unique within the group (`recv_one_byte`).
    pub name: &'static str,
    /// Group (`transfer`, `select`, ...); cases are addressed as
    /// `group/name`.
    pub group: &'static str,
    /// One line saying what the case checks.
    pub about: &'static str,
    /// The case body.
    pub run: fn(&mut T) -> CaseResult,
}

impl<T> Case<T> {
    /// `group/name`, the id filters match and reports print.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

impl<T> Clone for Case<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Case<T> {}

impl<T> fmt::Debug for Case<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("group", &self.group)
            .field("name", &self.name)
            .field("about", &self.about)
            .finish_non_exhaustive()
    }
}

/// The outcome of a case.
pub type CaseResult = Result<(), CaseError>;

/// Why a case failed: a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError {
    /// What was expected and what happened.
    pub message: String,
}

impl CaseError {
    /// A failure with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// Prefixes the message with `context: `.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CaseError {}

impl From<efisock::Error> for CaseError {
    fn from(e: efisock::Error) -> Self {
        Self::new(e.to_string())
    }
}

/// Attaches context to any displayable error, turning it into a
/// [`CaseError`]: `sock.connect(addr).context("connect to echo")?`.
pub trait Context<T> {
    /// Maps the error to `"{context}: {error}"`.
    fn context(self, context: impl fmt::Display) -> Result<T, CaseError>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T, CaseError> {
        self.map_err(|e| CaseError::new(format!("{context}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T, CaseError> {
        self.ok_or_else(|| CaseError::new(format!("{context}: got None")))
    }
}

/// Fails the case unless `cond` holds: `ensure!(n > 0, "read {} bytes", n)`.
/// Without a message, the condition's source text is the message.
#[macro_export]
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        if !$cond {
            return ::core::result::Result::Err($crate::runner::CaseError::new(
                ::std::concat!("condition failed: ", ::std::stringify!($cond)),
            ));
        }
    };
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return ::core::result::Result::Err($crate::runner::CaseError::new(
                ::std::format!($($fmt)+),
            ));
        }
    };
}

/// Fails the case unless `a == b`, showing both values (Debug):
/// `ensure_eq!(got, b"hello", "echoed bytes")`.
#[macro_export]
macro_rules! ensure_eq {
    ($a:expr, $b:expr $(,)?) => {
        $crate::ensure_eq!($a, $b, ::std::concat!(
            ::std::stringify!($a), " == ", ::std::stringify!($b)
        ))
    };
    ($a:expr, $b:expr, $($ctx:tt)+) => {
        match (&$a, &$b) {
            (left, right) => {
                if !(*left == *right) {
                    return ::core::result::Result::Err($crate::runner::CaseError::new(
                        ::std::format!(
                            "{}: expected equal\n  left: {:?}\n right: {:?}",
                            ::std::format!($($ctx)+), left, right
                        ),
                    ));
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_positive(n: i32) -> CaseResult {
        crate::ensure!(n > 0, "n = {} is not positive", n);
        Ok(())
    }

    fn check_bare(n: i32) -> CaseResult {
        crate::ensure!(n > 0);
        Ok(())
    }

    fn check_eq(a: &[u8], b: &[u8]) -> CaseResult {
        crate::ensure_eq!(a, b, "bytes of {}", "echo");
        Ok(())
    }

    #[test]
    fn ensure_reports_message() {
        assert!(check_positive(1).is_ok());
        assert_eq!(
            check_positive(-2).unwrap_err().message,
            "n = -2 is not positive"
        );
        assert_eq!(
            check_bare(0).unwrap_err().message,
            "condition failed: n > 0"
        );
    }

    #[test]
    fn ensure_eq_shows_both_sides() {
        assert!(check_eq(b"ab", b"ab").is_ok());
        let e = check_eq(b"ab", b"ac").unwrap_err();
        assert!(
            e.message.starts_with("bytes of echo: expected equal"),
            "{}",
            e.message
        );
        assert!(e.message.contains("left: [97, 98]"), "{}", e.message);
        assert!(e.message.contains("right: [97, 99]"), "{}", e.message);
    }

    #[test]
    fn context_wraps_errors() {
        let r: Result<(), &str> = Err("boom");
        assert_eq!(r.context("connect").unwrap_err().message, "connect: boom");
        let e: CaseError = efisock::Error::os(efisock::Errno::ECONNREFUSED, "connect").into();
        assert!(!e.message.is_empty());
        assert_eq!(
            None::<u8>.context("accept").unwrap_err().message,
            "accept: got None"
        );
    }
}
