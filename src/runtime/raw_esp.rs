//! Raw ESP sockets (IP protocol 50) for IPsec attachments whose peers send ESP without UDP
//! encapsulation. The kernel hands each received packet with its IPv4 header and adds the
//! header to what we send.
//!
//! rustix makes the socket. tokio has no raw-socket type, and registering a file descriptor
//! of our own (`AsyncFd::register`) is `unsafe`; its `UdpSocket` makes exactly the calls a raw
//! socket needs (`recvfrom`, `sendto` with a port the kernel ignores, readiness), so a raw
//! socket is driven as one. No `unsafe` is needed.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use rustix::net::{bind, ipproto, socket_with, AddressFamily, SocketFlags, SocketType};

/// A raw IPv4 socket of protocol ESP, non-blocking, bound to one address, ready for
/// `tokio::net::UdpSocket::from_std`.
pub(crate) fn open(addr: Ipv4Addr) -> io::Result<std::net::UdpSocket> {
    open_filtered(addr, &[])
}

/// [`open`] with a socket filter (one worker's SPIs, `steer::esp_filter`), attached before
/// the bind so that no packet of another worker is queued in between.
pub(crate) fn open_filtered(
    addr: Ipv4Addr,
    filter: &[socket2::SockFilter],
) -> io::Result<std::net::UdpSocket> {
    let fd = socket_with(
        AddressFamily::INET,
        SocketType::RAW,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(ipproto::ESP),
    )?;
    if !filter.is_empty() {
        socket2::SockRef::from(&fd).attach_filter(filter)?;
    }
    bind(&fd, &SocketAddrV4::new(addr, 0))?;
    Ok(std::net::UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs CAP_NET_RAW (the tests run as root). ESP sent to loopback comes back to a raw
    /// socket with its IPv4 header: this kernel has no ESP of its own to take it.
    #[tokio::test]
    async fn a_raw_esp_socket_sends_and_receives_protocol_50() {
        // An address of its own: other tests' ESP on loopback stays away.
        let lo = Ipv4Addr::new(127, 0, 79, 1);
        let rx = tokio::net::UdpSocket::from_std(open(lo).expect("raw socket (root?)")).unwrap();
        let tx = tokio::net::UdpSocket::from_std(open(lo).unwrap()).unwrap();
        let esp = [0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1, 0xaa, 0xbb];
        tx.send_to(&esp, (lo, 0)).await.unwrap();
        let mut buf = [0u8; 128];
        let (n, from) =
            tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv_from(&mut buf))
                .await
                .expect("a packet within 2 s")
                .unwrap();
        assert_eq!(from.ip(), std::net::IpAddr::from(lo));
        assert_eq!(buf[9], 50, "IP protocol ESP");
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        assert_eq!(&buf[ihl..n], &esp);
    }
}
