//! The backend boundary: the firmware services the core drives.
//!
//! These traits mirror `EFI_TCP4_PROTOCOL`, `EFI_TCP4_SERVICE_BINDING_PROTOCOL`,
//! `EFI_IP4_CONFIG2_PROTOCOL` and the few boot services the core needs, at the
//! ABI level and with `uefi-raw`'s types. The real backend (`efisock-efi`) is a
//! thin passthrough to the firmware's function pointers; the simulator
//! (`efisock-sim`) replays EDK2's behaviour behind the same signatures. All
//! socket logic lives above this line, so the simulator exercises exactly the
//! code that runs in firmware.
//!
//! # Ownership contract
//!
//! A token passed to `connect`, `accept`, `transmit`, `receive` or `close`, the
//! transmit/receive data it points to, every fragment buffer, and the token's
//! event are *owned by the firmware* from the moment the call returns
//! `SUCCESS` until the firmware has written the token's `status` and signalled
//! its event. The caller must not move, free, modify or reuse any of them in
//! that window. A call that returns an error did not take ownership.
//!
//! Memory that the firmware may reference must come from
//! [`BootServices::allocate_pool`], so that a backend can check the contract
//! (the simulator guards every pool allocation and reports a `free_pool` of
//! memory the firmware still owns).
//!
//! # Notify functions
//!
//! An event created with a notify function may have that function called at
//! `TPL_CALLBACK` at any firmware-call boundary, or (on real firmware) from a
//! timer interrupt in the middle of application code. The core's notify
//! function therefore only records the completion; see `completion`.

pub mod status;

use core::ffi::c_void;

pub use uefi_raw::protocol::network::ip4::Ip4ModeData;
pub use uefi_raw::protocol::network::ip4_config2::{
    Ip4Config2DataType, Ip4Config2InterfaceInfo, Ip4Config2ManualAddress, Ip4Config2Policy,
};
pub use uefi_raw::protocol::network::snp::NetworkMode;
pub use uefi_raw::protocol::network::tcp4::{
    Tcp4AccessPoint, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConfigData, Tcp4ConnectionState,
    Tcp4ConnectionToken, Tcp4FragmentData, Tcp4IoToken, Tcp4ListenToken, Tcp4Option, Tcp4Packet,
    Tcp4ReceiveData, Tcp4TransmitData,
};
pub use uefi_raw::table::boot::{EventNotifyFn, EventType, TimerDelay, Tpl};
pub use uefi_raw::{Boolean, Event, Handle, Ipv4Address, Status};

/// One `EFI_TCP4_PROTOCOL` instance (one child of the TCP4 service binding).
///
/// Every method has the meaning, arguments and status codes of the UEFI
/// function of the same name (UEFI 2.11, section 28.1).
///
/// # Safety
///
/// Implementors must follow the UEFI contract: write a token's `status` before
/// signalling its event, signal each accepted token exactly once, and never
/// touch a token, its data or its buffers after signalling it.
pub unsafe trait Tcp4 {
    /// `GetModeData`. Any output pointer may be null.
    ///
    /// # Safety
    /// Non-null pointers must be valid for writes of their type.
    unsafe fn get_mode_data(
        &self,
        connection_state: *mut Tcp4ConnectionState,
        config_data: *mut Tcp4ConfigData,
        ip4_mode_data: *mut Ip4ModeData,
        managed_network_config_data: *mut c_void,
        simple_network_mode: *mut NetworkMode,
    ) -> Status;

    /// `Configure`; a null `config_data` is the brutal reset.
    ///
    /// The firmware may write into `*config_data` during the call although
    /// the specification marks it IN: EDK2 stores the station address and
    /// subnet mask in force and the port it assigned into the caller's
    /// access point (TcpDxe `TcpConfigurePcb` and `TcpBind`). It keeps no
    /// pointer into the configuration after returning.
    ///
    /// # Safety
    /// `config_data` is null, or valid for reads and writes for the whole
    /// call and not aliased by any live reference; its `control_option` is
    /// null or valid for reads.
    unsafe fn configure(&self, config_data: *mut Tcp4ConfigData) -> Status;

    /// `Routes`.
    ///
    /// # Safety
    /// The address pointers must be valid for reads.
    unsafe fn routes(
        &self,
        delete_route: bool,
        subnet_address: *const Ipv4Address,
        subnet_mask: *const Ipv4Address,
        gateway_address: *const Ipv4Address,
    ) -> Status;

    /// `Connect`.
    ///
    /// # Safety
    /// On `SUCCESS` the token is firmware-owned until signalled (module docs).
    unsafe fn connect(&self, token: *mut Tcp4ConnectionToken) -> Status;

    /// `Accept`.
    ///
    /// # Safety
    /// On `SUCCESS` the token is firmware-owned until signalled (module docs).
    unsafe fn accept(&self, token: *mut Tcp4ListenToken) -> Status;

    /// `Transmit`.
    ///
    /// # Safety
    /// On `SUCCESS` the token, its `tx_data`, fragment table and buffers are
    /// firmware-owned until signalled (module docs).
    unsafe fn transmit(&self, token: *mut Tcp4IoToken) -> Status;

    /// `Receive`. EDK2 returns `CONNECTION_FIN` as the function result (token
    /// not signalled) when the peer's FIN is in and no data is buffered.
    ///
    /// # Safety
    /// On `SUCCESS` the token, its `rx_data`, fragment table and buffers are
    /// firmware-owned until signalled (module docs).
    unsafe fn receive(&self, token: *mut Tcp4IoToken) -> Status;

    /// `Close`.
    ///
    /// # Safety
    /// On `SUCCESS` the token is firmware-owned until signalled (module docs).
    unsafe fn close(&self, token: *mut Tcp4CloseToken) -> Status;

    /// `Cancel`; a null token cancels every pending Connect/Accept/Transmit/Receive.
    ///
    /// # Safety
    /// `token` is null or points to a completion token previously submitted.
    unsafe fn cancel(&self, token: *mut Tcp4CompletionToken) -> Status;

    /// `Poll`: move frames between the network and this instance's stack.
    fn poll(&self) -> Status;
}

/// `EFI_TCP4_SERVICE_BINDING_PROTOCOL` plus opening the TCP4 protocol on a
/// child handle (what `OpenProtocol`/`HandleProtocol` does on real firmware).
pub trait Tcp4ServiceBinding {
    /// The protocol instance type this service hands out.
    type Tcp4: Tcp4;

    /// `CreateChild`: a new, unconfigured TCP4 child handle.
    fn create_child(&self) -> Result<Handle, Status>;

    /// `DestroyChild`. EDK2 aborts the child's pending tokens first.
    fn destroy_child(&self, child: Handle) -> Status;

    /// The TCP4 protocol installed on `child`; also used for the
    /// `NewChildHandle` of an accepted connection.
    fn open_tcp4(&self, child: Handle) -> Result<Self::Tcp4, Status>;
}

/// `EFI_IP4_CONFIG2_PROTOCOL` of the NIC the TCP4 service runs on.
///
/// # Safety
/// Implementors must honour the sizes passed with each data pointer.
pub unsafe trait Ip4Config2 {
    /// `SetData`.
    ///
    /// # Safety
    /// `data` must be valid for reads of `data_size` bytes.
    unsafe fn set_data(
        &self,
        data_type: Ip4Config2DataType,
        data_size: usize,
        data: *const c_void,
    ) -> Status;

    /// `GetData`; `BUFFER_TOO_SMALL` updates `*data_size`.
    ///
    /// # Safety
    /// `data_size` must be valid; `data` valid for writes of `*data_size` bytes.
    unsafe fn get_data(
        &self,
        data_type: Ip4Config2DataType,
        data_size: *mut usize,
        data: *mut c_void,
    ) -> Status;

    /// `RegisterDataNotify`.
    fn register_data_notify(&self, data_type: Ip4Config2DataType, event: Event) -> Status;

    /// `UnregisterDataNotify`.
    fn unregister_data_notify(&self, data_type: Ip4Config2DataType, event: Event) -> Status;
}

/// The boot services the core uses, with their UEFI meaning.
///
/// # Safety
/// Implementors must call notify functions only at their event's TPL and never
/// while the current TPL is at or above it.
pub unsafe trait BootServices {
    /// `CreateEvent`.
    ///
    /// # Safety
    /// `notify_context` must stay valid for as long as `notify_function` may be
    /// called, i.e. until `close_event`.
    unsafe fn create_event(
        &self,
        event_type: EventType,
        notify_tpl: Tpl,
        notify_function: Option<EventNotifyFn>,
        notify_context: *mut c_void,
    ) -> Result<Event, Status>;

    /// `CloseEvent`.
    fn close_event(&self, event: Event) -> Status;

    /// `SignalEvent`.
    fn signal_event(&self, event: Event) -> Status;

    /// `CheckEvent`: `SUCCESS` (and the event is reset) if signalled,
    /// `NOT_READY` otherwise, `INVALID_PARAMETER` for a NOTIFY_SIGNAL event.
    fn check_event(&self, event: Event) -> Status;

    /// `WaitForEvent`: blocks until one event is signalled; returns its index.
    /// Only legal at `TPL_APPLICATION`.
    fn wait_for_event(&self, events: &[Event]) -> Result<usize, Status>;

    /// `SetTimer`; `trigger_time` in 100 ns units.
    fn set_timer(&self, event: Event, delay: TimerDelay, trigger_time: u64) -> Status;

    /// `RaiseTPL`; returns the previous TPL.
    fn raise_tpl(&self, new_tpl: Tpl) -> Tpl;

    /// `RestoreTPL`. Lowering the TPL runs pending notify functions.
    fn restore_tpl(&self, old_tpl: Tpl);

    /// `Stall`, in microseconds. Busy-waits; timers and notifies still run.
    fn stall(&self, microseconds: usize) -> Status;

    /// `AllocatePool` (EfiBootServicesData) for memory the firmware may reference.
    fn allocate_pool(&self, size: usize) -> Result<*mut u8, Status>;

    /// `FreePool`.
    ///
    /// # Safety
    /// `buffer` must come from `allocate_pool` and not be owned by the firmware.
    unsafe fn free_pool(&self, buffer: *mut u8) -> Status;

    /// Monotonic time in nanoseconds since an arbitrary origin. Real firmware
    /// derives it from a calibrated counter; the simulator from its virtual clock.
    fn monotonic_ns(&self) -> u64;
}

/// Everything the core needs from one firmware: boot services, the TCP4
/// service binding of one NIC, and that NIC's IPv4 configuration.
pub trait Platform {
    /// Boot services.
    type Boot: BootServices;
    /// The TCP4 service binding.
    type Tcp4Service: Tcp4ServiceBinding;
    /// The IPv4 configuration protocol.
    type Ip4Config: Ip4Config2;

    /// Boot services of this firmware.
    fn boot(&self) -> &Self::Boot;
    /// The TCP4 service binding of the NIC in use.
    fn tcp4_service(&self) -> &Self::Tcp4Service;
    /// The IPv4 configuration of the NIC in use.
    fn ip4_config2(&self) -> &Self::Ip4Config;
}

/// The TCP4 protocol type of a platform.
pub type Tcp4Of<P> = <<P as Platform>::Tcp4Service as Tcp4ServiceBinding>::Tcp4;
