//! The error types of the crate's library API.
//!
//! Each type's `Display` is the exact text the CLI prints, the JSON reports
//! carry and the fuzz shrinker compares, so callers that only print an error
//! stay byte-for-byte stable; the fields give the structure to callers that
//! want to inspect it. Every type also converts into `String` for binaries
//! that keep a plain message at their top level.

use std::error::Error;
use std::fmt;

/// A boxed cause, so a wrapped error may come from any library (or be a
/// plain message) without this crate naming its type.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// Text that could not be parsed: a replay string, a fuzz or guest option,
/// a line of the host↔guest protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    input: String,
    message: String,
}

impl ParseError {
    /// A failure to parse `input`; `message` is the complete text shown to
    /// the user (it usually quotes the input).
    pub fn new(input: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError {
            input: input.into(),
            message: message.into(),
        }
    }

    /// The offending input (a word, a value, or a whole line).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The same input with `context: ` put before the message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        ParseError {
            message: format!("{context}: {}", self.message),
            input: self.input,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for ParseError {}

impl From<ParseError> for String {
    fn from(e: ParseError) -> String {
        e.to_string()
    }
}

/// Why a simulator target could not be built or set up.
#[derive(Debug)]
pub enum SetupError {
    /// A quirk override the simulator rejected (unknown name).
    Quirk(Cause),
    /// A firmware profile name the simulator does not know.
    Profile(Cause),
    /// A Poll strategy name the core does not know.
    UnknownStrategy(String),
    /// The system under test could not get its static address.
    Address(efisock::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Quirk(e) | SetupError::Profile(e) => write!(f, "{e}"),
            SetupError::UnknownStrategy(name) => write!(f, "unknown poll strategy {name:?}"),
            SetupError::Address(e) => write!(f, "static address for the simulated SUT: {e}"),
        }
    }
}

impl Error for SetupError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SetupError::Quirk(e) | SetupError::Profile(e) => e.source(),
            SetupError::UnknownStrategy(_) => None,
            SetupError::Address(e) => Some(e),
        }
    }
}

impl From<SetupError> for String {
    fn from(e: SetupError) -> String {
        e.to_string()
    }
}

/// Why the host for the peer services (the QEMU runs' side of the network)
/// could not be configured or started.
#[derive(Debug)]
pub enum HostError {
    /// The configuration breaks the network rules or a bound; the text says
    /// which.
    Config(String),
    /// A system call failed while starting (`what` names the step).
    Io {
        /// The step, e.g. `bind 127.0.0.1:7 for echo`.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A listener reported an address that is not IPv4.
    UnexpectedAddress {
        /// The peer service whose listener it was.
        service: &'static str,
        /// What `local_addr` returned, as Debug text.
        got: String,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Config(message) => f.write_str(message),
            HostError::Io { what, source } => write!(f, "{what}: {source}"),
            HostError::UnexpectedAddress { service, got } => {
                write!(f, "{service}: unexpected local address {got}")
            }
        }
    }
}

impl Error for HostError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            HostError::Io { source, .. } => Some(source),
            HostError::Config(_) | HostError::UnexpectedAddress { .. } => None,
        }
    }
}

impl From<HostError> for String {
    fn from(e: HostError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_keeps_input_and_prefixes_context() {
        let e = ParseError::new("x7", "operation \"x7\": 'x' takes no argument").context("ops");
        assert_eq!(e.input(), "x7");
        assert_eq!(
            e.to_string(),
            "ops: operation \"x7\": 'x' takes no argument"
        );
        assert_eq!(String::from(e.clone()), e.to_string());
    }

    #[test]
    fn host_io_error_names_the_step_and_keeps_the_cause() {
        let e = HostError::Io {
            what: "bind 127.0.0.1:7 for echo".into(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(
            e.to_string().starts_with("bind 127.0.0.1:7 for echo: "),
            "{e}"
        );
        let cause = e.source().expect("the io error is the source");
        assert_eq!(
            cause
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::AddrInUse)
        );
        assert!(HostError::Config("x".into()).source().is_none());
    }

    #[test]
    fn setup_error_displays_the_wrapped_message() {
        let e = SetupError::Quirk("unknown quirk \"bogus\"".into());
        assert_eq!(e.to_string(), "unknown quirk \"bogus\"");
        assert_eq!(
            SetupError::UnknownStrategy("warp".into()).to_string(),
            "unknown poll strategy \"warp\""
        );
    }
}

/// Why a target could not end a case cleanly or reset its network
/// ([`Target::finish`](crate::runner::Target::finish),
/// [`SocketTarget::unconfigure`](crate::target::SocketTarget::unconfigure)).
#[derive(Debug)]
pub enum TargetError {
    /// What the case left behind: leaked children, events or pool memory and
    /// firmware contract breaches, one line each.
    Leftovers(Vec<String>),
    /// The socket layer could not shut down.
    Shutdown(efisock::Error),
    /// Firmware resources were still held after the socket layer shut down.
    ResourcesHeld(efisock::Resources),
    /// A firmware call of the target's own set-up returned an error status.
    Firmware {
        /// The call, with its arguments in short (`SetData(Policy, STATIC)`).
        call: &'static str,
        /// What it returned.
        status: efisock::firmware::Status,
    },
    /// The interface kept its address after being told to drop it.
    AddressKept {
        /// The address it kept.
        address: std::net::Ipv4Addr,
        /// Its subnet mask.
        mask: std::net::Ipv4Addr,
        /// How long the target waited for it to go.
        waited: std::time::Duration,
    },
    /// Reading the interface's address failed.
    Address(efisock::Error),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Leftovers(problems) => f.write_str(&problems.join("\n")),
            TargetError::Shutdown(e) => write!(f, "socket layer shutdown: {e}"),
            TargetError::ResourcesHeld(r) => write!(f, "resources left after shutdown: {r:?}"),
            TargetError::Firmware { call, status } => {
                write!(f, "{call} = {}", efisock::firmware::status::name(*status))
            }
            TargetError::AddressKept {
                address,
                mask,
                waited,
            } => write!(
                f,
                "EDK2 kept {address}/{mask} for {waited:?} after SetData(Policy, \
                 STATIC) with no manual address: the interface cannot be unconfigured"
            ),
            TargetError::Address(e) => write!(f, "reading the address: {e}"),
        }
    }
}

impl Error for TargetError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TargetError::Shutdown(e) | TargetError::Address(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TargetError> for String {
    fn from(e: TargetError) -> String {
        e.to_string()
    }
}
