//! The fixed port table shared by every target (simulator, QEMU host peers).
//!
//! Cases name services by these constants, never by literal numbers, so a
//! port change is one edit here.

/// [`Service::Echo`](super::Service::Echo).
pub const ECHO: u16 = 7007;
/// [`Service::Sink`](super::Service::Sink).
pub const SINK: u16 = 7009;
/// [`Service::SourceFin`](super::Service::SourceFin).
pub const SOURCE_FIN: u16 = 7010;
/// [`Service::SourceRst`](super::Service::SourceRst).
pub const SOURCE_RST: u16 = 7011;
/// [`Service::AcceptClose`](super::Service::AcceptClose).
pub const ACCEPT_CLOSE: u16 = 7012;
/// [`Service::AcceptHold`](super::Service::AcceptHold).
pub const ACCEPT_HOLD: u16 = 7013;
/// [`Service::ConnectBack`](super::Service::ConnectBack).
pub const CONNECT_BACK: u16 = 7014;
/// [`Service::ConnectBackEcho`](super::Service::ConnectBackEcho).
pub const CONNECT_BACK_ECHO: u16 = 7015;
/// A port nothing listens on: connecting to it is refused (on EDK2 the
/// connect token completes `EFI_CONNECTION_RESET`).
pub const REFUSED: u16 = 7999;
/// The witness, which reports what the peer saw of a witnessed connection
/// ([`witness`](super::witness)).
pub const WITNESS: u16 = 7020;
/// Each service's witnessed port is its port plus this offset.
pub const WITNESSED_OFFSET: u16 = 100;

/// The witnessed port of the service on `port` (the client sends its token
/// first, then speaks the service's protocol).
pub const fn witnessed(port: u16) -> u16 {
    port + WITNESSED_OFFSET
}
