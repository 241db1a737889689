//! Ethernet ports of `ethernet` attachments: an AF_PACKET socket per (interface, VLAN) that
//! sees the attachment's frames whole, link-layer header included.
//!
//! The socket is made by rustix with protocol 0 (it receives nothing yet), given a classic BPF
//! filter (socket2) that passes only received frames of the attachment's VLAN, then bound to
//! the interface in promiscuous mode by pnet's datalink (`Config::socket_fd`: pnet binds and
//! joins a duplicate of our descriptor, whose handles we drop). As with raw ESP sockets
//! (`raw_esp`), tokio drives it as a `UdpSocket`: `recv` and `send` (a bound packet socket
//! sends on its interface) are the calls it needs, with no `unsafe` here.
//!
//! The filter exists because Linux takes a received frame's 802.1Q tag out of the frame
//! before packet sockets see it (into metadata that only `PACKET_AUXDATA` would show): the
//! kernel's own BPF reads the tag from that metadata, so each socket gets only its VLAN's
//! frames, and several attachments can share a trunk port. It also drops the frames the host
//! itself sends on the port (`PACKET_OUTGOING`), which a packet socket would otherwise see.

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};

use rustix::net::{socket_with, AddressFamily, SocketFlags, SocketType};
use socket2::SockFilter;

use super::bpf::{AND_K, JEQ_K, LD_W_ABS, RET_K};

/// SKF_AD_OFF (-0x1000) plus the ancillary field's offset.
const fn ancillary(field: u32) -> u32 {
    0u32.wrapping_sub(0x1000).wrapping_add(field)
}
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_VLAN_TAG: u32 = 44;
const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
const PACKET_OUTGOING: u32 = 4;
/// What a passing frame keeps: all of it.
const SNAP: u32 = 0x0004_0000;

/// The socket filter of one attachment: frames received (not sent by the host) with the VLAN
/// tag `vlan`, or without a tag when `vlan` is `None`.
pub(crate) fn filter(vlan: Option<u16>) -> Vec<SockFilter> {
    let mut f = vec![
        SockFilter::new(LD_W_ABS, 0, 0, ancillary(SKF_AD_PKTTYPE)),
        // jt/jf count instructions after this one.
        SockFilter::new(JEQ_K, 0, 1, PACKET_OUTGOING),
        SockFilter::new(RET_K, 0, 0, 0),
        SockFilter::new(LD_W_ABS, 0, 0, ancillary(SKF_AD_VLAN_TAG_PRESENT)),
    ];
    match vlan {
        None => f.extend([
            SockFilter::new(JEQ_K, 0, 1, 0),
            SockFilter::new(RET_K, 0, 0, SNAP),
            SockFilter::new(RET_K, 0, 0, 0),
        ]),
        Some(id) => f.extend([
            SockFilter::new(JEQ_K, 3, 0, 0),
            SockFilter::new(LD_W_ABS, 0, 0, ancillary(SKF_AD_VLAN_TAG)),
            SockFilter::new(AND_K, 0, 0, 0x0fff),
            SockFilter::new(JEQ_K, 1, 0, u32::from(id)),
            SockFilter::new(RET_K, 0, 0, 0),
            SockFilter::new(RET_K, 0, 0, SNAP),
        ]),
    }
    f
}

/// An AF_PACKET socket on `interface` for the frames of `vlan`, non-blocking, ready for
/// `tokio::net::UdpSocket::from_std`.
pub(crate) fn open(interface: &str, vlan: Option<u16>) -> io::Result<std::net::UdpSocket> {
    let port = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == interface)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no network interface named {interface}"),
            )
        })?;
    let fd: OwnedFd = socket_with(
        AddressFamily::PACKET,
        SocketType::RAW,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let socket = socket2::Socket::from(fd);
    socket.attach_filter(&filter(vlan))?;
    let for_pnet = socket.try_clone()?;
    let config = pnet_datalink::Config {
        socket_fd: Some(for_pnet.into_raw_fd()),
        promiscuous: true,
        read_buffer_size: 0,
        write_buffer_size: 0,
        ..Default::default()
    };
    match pnet_datalink::channel(&port, config)? {
        // The binding and the membership belong to the socket, not to pnet's descriptor.
        pnet_datalink::Channel::Ethernet(tx, rx) => drop((tx, rx)),
        _ => return Err(io::Error::other("pnet opened no Ethernet channel")),
    }
    Ok(std::net::UdpSocket::from(OwnedFd::from(socket)))
}

/// Makes the port the gateway's alone. First, every frame the port receives is dropped before
/// the host's IP stack (an nftables `netdev` ingress chain with policy drop, table
/// `ixgw_port_IF`): packet sockets see frames before that hook, so ixgw still gets them, but a
/// tenant can reach neither the host's addresses nor its forwarding. Without it the port is
/// refused. Then: up, no IPv6 of the kernel's own, no ARP answers from the kernel, no
/// receive offloads that merge frames (a packet socket would see 64 KiB frames); each of
/// these that fails is logged and the port used as it is. The table stays when the
/// attachment goes (the port stays closed to the host: `nft delete table netdev
/// ixgw_port_IF` opens it).
pub(crate) fn prepare(attachment: &str, interface: &str) -> io::Result<()> {
    close_to_host(interface)?;
    let sysctl = |path: String, value: &str, why: &str| {
        if let Err(e) = std::fs::write(&path, value) {
            tracing::warn!(
                attachment,
                interface,
                "cannot set {path} to {value} ({e}): {why}"
            );
        }
    };
    sysctl(
        format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"),
        "1",
        "the kernel's IPv6 on the port will count as ipv6 drops",
    );
    sysctl(
        format!("/proc/sys/net/ipv4/conf/{interface}/arp_ignore"),
        "8",
        "the kernel may answer ARP on the port for the host's own addresses",
    );
    if !run(
        attachment,
        interface,
        "ip",
        &["link", "set", "dev", interface, "up"],
    ) {
        tracing::warn!(
            attachment,
            interface,
            "could not bring the port up (ip link set dev {interface} up)"
        );
    }
    let ethtool = ["-K", interface, "gro", "off", "lro", "off"];
    if !run(attachment, interface, "ethtool", &ethtool) {
        tracing::warn!(
            attachment,
            interface,
            "could not turn receive offloads off (ethtool -K {interface} gro off lro off): merged frames would be dropped as malformed"
        );
    }
    Ok(())
}

/// The nftables table that keeps `interface`'s frames from the host's IP stack.
pub(crate) fn host_table(interface: &str) -> String {
    let name: String = (interface.chars())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("ixgw_port_{name}")
}

/// Drops every frame `interface` receives at the netdev ingress hook (idempotent).
fn close_to_host(interface: &str) -> io::Result<()> {
    use std::io::Write as _;
    let table = host_table(interface);
    let script = format!(
        "add table netdev {table}\n\
         add chain netdev {table} ingress {{ type filter hook ingress device \"{interface}\" priority -500; policy drop; }}\n"
    );
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("nft: {e} (install nftables)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cannot close the port to the host's IP stack (nft table {table}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs a short configuration command; whether it succeeded (failures are logged at debug).
fn run(attachment: &str, interface: &str, program: &str, args: &[&str]) -> bool {
    match std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            let msg = String::from_utf8_lossy(&out.stderr);
            tracing::debug!(attachment, interface, "{program} {args:?}: {}", msg.trim());
            false
        }
        Err(e) => {
            tracing::debug!(attachment, interface, "{program}: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests;
