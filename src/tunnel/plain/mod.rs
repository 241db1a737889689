//! `plain` attachments: inner IP packets straight from and to a TUN device, no encryption.
//! What a plain attachment may source is the tenant's routing table (the plan's
//! `Route::Attachment` entries); nothing per packet lives here.

/// A plain attachment's state.
#[derive(Debug, Clone)]
pub struct PlainTunnel {
    pub mtu: u16,
}
