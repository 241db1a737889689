//! The answers to `CONNECT /CSCOSSLC/tunnel`: `200 CONNECTED` with the tunnel's parameters,
//! after which both sides speak CSTP ([`super::cstp`]), or a refusal.
//!
//! openconnect (`cstp.c`, `start_cstp_connection`) reads the answer line by line. The status
//! line must begin `HTTP/1.1 200 `; then it keeps every `X-CSTP-*` header, matching the names
//! after `X-CSTP-` case-sensitively, so they are written as ocserv spells them. It needs
//! `X-CSTP-MTU` ("No MTU received. Aborting") and an address. On anything but 200:
//!
//! * `HTTP/1.1 401 …`: the cookie was refused. openconnect prints the status line ("Got
//!   inappropriate HTTP CONNECT response: HTTP/1.1 401 <reason>") and exits with "Cookie was
//!   rejected by server" (exit 2); during a reconnect it ends the session ("Cookie is no
//!   longer valid"). It never logs in again by itself: the user runs it again.
//! * `HTTP/1.1 503 …` with `X-Reason: <text>`: "VPN service unavailable; reason: <text>".
//!   At start it exits; during a reconnect it keeps retrying until its reconnect timeout.
//! * any other status: "Got inappropriate HTTP CONNECT response" and the same as 503.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

/// What `200 CONNECTED` tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelParams<'a> {
    /// `X-CSTP-Server-Name`: printable ASCII, 1 to 64 characters.
    pub server_name: &'a str,
    /// `X-CSTP-Address`, `X-CSTP-Netmask`: the client's inside address and the netmask of
    /// the pool (openconnect gives its tun the address as /32 and routes the pool's prefix).
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// `X-CSTP-Split-Include`, one header per prefix as `address/dotted-netmask`. Empty
    /// means everything: vpnc-script then routes all traffic into the tunnel.
    pub split_include: &'a [Ipv4Network],
    /// `X-CSTP-DNS`, one header per server (openconnect keeps the first three).
    pub dns: &'a [Ipv4Addr],
    /// `X-CSTP-Tunnel-All-DNS`.
    pub tunnel_all_dns: bool,
    /// `X-CSTP-DPD`, seconds: the client sends a DPD request after this long without
    /// receiving anything (it takes the smaller of this and its own).
    pub dpd: u32,
    /// `X-CSTP-Keepalive`, seconds: the client sends a KEEPALIVE after this long without
    /// sending anything.
    pub keepalive: u32,
    /// `X-CSTP-Idle-Timeout`, seconds; `None` is written `none`.
    pub idle_timeout: Option<u32>,
    /// `X-CSTP-Session-Timeout`, seconds; `None` is written `none`.
    pub session_timeout: Option<u32>,
    /// `X-CSTP-Disconnected-Timeout`, seconds; `None` is written `none`.
    pub disconnected_timeout: Option<u32>,
    /// `X-CSTP-TCP-Keepalive`.
    pub tcp_keepalive: bool,
    /// `X-CSTP-Base-MTU`, `X-CSTP-MTU`: the client's tun gets `mtu` (not what it asked).
    pub base_mtu: u16,
    pub mtu: u16,
}

/// Parameters [`write_connected`] cannot send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("the server name must be 1 to 64 printable ASCII characters")]
    ServerName,
    #[error("an MTU of 0 (openconnect aborts: \"No MTU received\")")]
    Mtu,
}

/// Writes `HTTP/1.1 200 CONNECTED` and the tunnel's headers, in ocserv's order
/// (tests/vectors/cstp/*/connect-response.http). Left out of ocserv's set, because openconnect
/// only stores them (for vpnc-script's `CISCO_CSTP_OPTIONS`) or does not apply to ixgw:
/// `X-CSTP-Hostname` (an echo of the client's), `X-CSTP-Client-Bypass-Protocol`,
/// `X-CSTP-Smartcard-Removal-Disconnect`, `X-CSTP-License`, `X-CSTP-Session-Timeout-Remaining`
/// (openconnect reads it like `X-CSTP-Session-Timeout`), `X-CSTP-Rekey-Time`. The rekey
/// ocserv asks for (`X-CSTP-Rekey-Method: ssl`: the client repeats the TLS handshake on the
/// open connection, a renegotiation in TLS 1.2) is not: rustls does not renegotiate, so
/// this writes `X-CSTP-Rekey-Method: none`, which openconnect reads as no rekey, as it does
/// a missing `X-CSTP-Rekey-Time`.
pub fn write_connected(out: &mut Vec<u8>, p: &TunnelParams<'_>) -> Result<(), ParamsError> {
    if p.server_name.is_empty()
        || p.server_name.len() > 64
        || !p.server_name.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(ParamsError::ServerName);
    }
    if p.mtu == 0 || p.base_mtu == 0 {
        return Err(ParamsError::Mtu);
    }
    let mut s = String::with_capacity(640);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "HTTP/1.1 200 CONNECTED\r\nX-CSTP-Version: 1\r\nX-CSTP-Server-Name: {}\r\n\
         X-CSTP-DPD: {}\r\nX-CSTP-Address: {}\r\nX-CSTP-Netmask: {}\r\n",
        p.server_name, p.dpd, p.address, p.netmask
    );
    for dns in p.dns {
        let _ = write!(s, "X-CSTP-DNS: {dns}\r\n");
    }
    for net in p.split_include {
        let _ = write!(
            s,
            "X-CSTP-Split-Include: {}/{}\r\n",
            net.network(),
            net.mask()
        );
    }
    let _ = write!(
        s,
        "X-CSTP-Tunnel-All-DNS: {}\r\nX-CSTP-Keepalive: {}\r\nX-CSTP-Idle-Timeout: {}\r\n\
         X-CSTP-Rekey-Method: none\r\nX-CSTP-Session-Timeout: {}\r\n\
         X-CSTP-Disconnected-Timeout: {}\r\nX-CSTP-Keep: true\r\nX-CSTP-TCP-Keepalive: {}\r\n\
         X-CSTP-Base-MTU: {}\r\nX-CSTP-MTU: {}\r\n\r\n",
        p.tunnel_all_dns,
        p.keepalive,
        Seconds(p.idle_timeout),
        Seconds(p.session_timeout),
        Seconds(p.disconnected_timeout),
        p.tcp_keepalive,
        p.base_mtu,
        p.mtu
    );
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

struct Seconds(Option<u32>);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("none"),
        }
    }
}

/// Why a CONNECT is refused. The reason phrase (or `X-Reason`) is what openconnect prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// 401: no session has this cookie (never issued, expired, ended). openconnect exits.
    UnknownCookie,
    /// 401: the cookie's session belongs to another facility than this connection's
    /// certificate. openconnect exits.
    CertificateMismatch,
    /// 401: the facility's certificate is no longer valid (revoked, expired). openconnect
    /// exits.
    FacilityRefused,
    /// 503: no inside address is free for the facility. openconnect exits, or during a
    /// reconnect retries.
    NoAddress,
    /// 503: the gateway takes no tunnels now (shutting down, reloading).
    Unavailable,
}

impl ConnectRefusal {
    pub fn status(self) -> u16 {
        match self {
            ConnectRefusal::UnknownCookie
            | ConnectRefusal::CertificateMismatch
            | ConnectRefusal::FacilityRefused => 401,
            ConnectRefusal::NoAddress | ConnectRefusal::Unavailable => 503,
        }
    }

    /// The reason phrase of a 401, the `X-Reason` of a 503.
    pub fn reason(self) -> &'static str {
        match self {
            ConnectRefusal::UnknownCookie => "Session cookie unknown or expired",
            ConnectRefusal::CertificateMismatch => "Session belongs to another certificate",
            ConnectRefusal::FacilityRefused => "Facility certificate no longer valid",
            ConnectRefusal::NoAddress => "No address available for this facility",
            ConnectRefusal::Unavailable => "Gateway not accepting tunnels",
        }
    }
}

/// Writes the refusal of a CONNECT; the server closes the connection after it.
pub fn write_connect_refusal(out: &mut Vec<u8>, why: ConnectRefusal) {
    let head = match why.status() {
        401 => format!("HTTP/1.1 401 {}\r\n", why.reason()),
        // openconnect reads the headers after a 503 until `X-Reason: `, spelled so.
        _ => format!(
            "HTTP/1.1 503 Service Unavailable\r\nX-Reason: {}\r\n",
            why.reason()
        ),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(b"Content-Length: 0\r\nConnection: close\r\n\r\n");
}
