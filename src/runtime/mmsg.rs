//! Batched datagram I/O for the sockets quinn-udp does not drive: raw ESP sockets (`raw_esp`),
//! Ethernet ports' packet sockets (`link`) and the worker's end of a TLS relay. One
//! `recvmmsg` reads up to [`BATCH`] datagrams straight into packet buffers of the batch's
//! arena; one `sendmmsg` sends up to [`BATCH`] packets where they lie in the transmit batch,
//! each raw ESP packet to its own peer.
//!
//! Receives use nix's `recvmmsg` with headers allocated once ([`Receiver`]); a datagram longer
//! than a packet buffer comes back marked `MSG_TRUNC` and is refused, never taken truncated.
//! Sends use rustix's `sendmmsg`, whose headers live on the stack: nix's `sendmmsg` tells how
//! many messages left only through an iterator that reads the headers' address slots, which
//! a send never fills. Nothing here allocates per call; the calls run inside tokio's `try_io`,
//! so that a `WouldBlock` clears the socket's readiness.
//!
//! Public for the allocation test (`tests/alloc.rs`); the worker is its only user.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrIn, SockaddrLike};
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use tokio::io::Interest;

use crate::buffer::{Remote, RxBatch, Via, BUF_SIZE};
use crate::ids::AttachmentId;

/// Datagrams one receive or send call handles at most.
pub const BATCH: usize = 32;

/// A socket this module drives, by what its datagrams are.
#[derive(Clone, Copy)]
pub enum Socket<'s> {
    /// A raw IPv4 socket (ESP): every datagram has a peer address.
    RawIp(&'s tokio::net::UdpSocket),
    /// An AF_PACKET socket bound to its interface: frames have no peer.
    Packet(&'s tokio::net::UdpSocket),
    /// One end of a connected socket pair.
    Relay(&'s tokio::net::UnixDatagram),
}

impl Socket<'_> {
    /// Whether a packet for `remote` can leave on this socket.
    pub fn suits(self, remote: Remote) -> bool {
        match self {
            Socket::RawIp(_) => matches!(remote, Remote::Ip(IpAddr::V4(_))),
            Socket::Packet(_) | Socket::Relay(_) => remote == Remote::Device,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::RawIp(s) | Socket::Packet(s) => s.as_fd(),
            Socket::Relay(s) => s.as_fd(),
        }
    }

    fn raw_fd(self) -> RawFd {
        self.fd().as_raw_fd()
    }

    fn try_io<R>(self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Socket::RawIp(s) | Socket::Packet(s) => s.try_io(interest, f),
            Socket::Relay(s) => s.try_io(interest, f),
        }
    }

    async fn writable(self) -> io::Result<()> {
        match self {
            Socket::RawIp(s) | Socket::Packet(s) => s.writable().await,
            Socket::Relay(s) => s.writable().await,
        }
    }
}

/// The message headers of batched receives, allocated once (per worker): one set that takes
/// each datagram's IPv4 source (raw ESP), one that takes no address (a frame carries its
/// own; the relay's peer is the TLS thread). The kernel writes each header's address length
/// back and nix does not reset it, so the first set serves only AF_INET sockets, whose
/// sources are all as long. Sends never use these headers (see the module's doc).
pub struct Receiver {
    from: MultiHeaders<SockaddrIn>,
    plain: MultiHeaders<()>,
}

/// One received datagram, between the system call and the batch.
#[derive(Clone, Copy)]
struct Got {
    len: usize,
    truncated: bool,
    remote: Remote,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new()
    }
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver {
            from: MultiHeaders::preallocate(BATCH, None),
            plain: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Reads what waits on `socket`, up to [`BATCH`] datagrams in one system call, into
    /// `rx` as packets of `attachment`'s `io`-th socket, each in a packet buffer of its own.
    /// Returns the packets taken and those refused (longer than a packet buffer);
    /// `Ok((0, 0))` when `rx` has no room for a packet, `WouldBlock` when nothing waits.
    pub fn try_recv(
        &mut self,
        socket: Socket<'_>,
        rx: &mut RxBatch,
        attachment: AttachmentId,
        io: u8,
    ) -> io::Result<(usize, usize)> {
        let (packets, bytes) = rx.room();
        let n = BATCH.min(packets).min(bytes / BUF_SIZE);
        let Some(spare) = rx.spare(n, n * BUF_SIZE).filter(|_| n > 0) else {
            return Ok((0, 0));
        };
        let mut got = [Got {
            len: 0,
            truncated: false,
            remote: Remote::Device,
        }; BATCH];
        let received = {
            let mut chunks = spare.chunks_mut(BUF_SIZE);
            let mut bufs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            let fd = socket.raw_fd();
            socket.try_io(Interest::READABLE, || match socket {
                Socket::RawIp(_) => recv(&mut self.from, fd, &mut bufs[..n], &mut got, |a| {
                    // An AF_INET socket's datagrams always carry an IPv4 source.
                    Remote::Ip(IpAddr::V4(
                        a.map_or(std::net::Ipv4Addr::UNSPECIFIED, |a| a.ip()),
                    ))
                }),
                Socket::Packet(_) | Socket::Relay(_) => {
                    recv(&mut self.plain, fd, &mut bufs[..n], &mut got, |_| {
                        Remote::Device
                    })
                }
            })?
        };
        let mut taken = (0, 0);
        for (i, g) in got.iter().take(received).enumerate() {
            let via = Via {
                io,
                remote: g.remote,
            };
            if !g.truncated && rx.commit_at(i * BUF_SIZE, g.len, attachment, via) {
                taken.0 += 1;
            } else {
                taken.1 += 1;
            }
        }
        Ok(taken)
    }
}

/// One `recvmmsg` on `fd` into `bufs` (one buffer per datagram) with `headers`; what each
/// datagram was goes into `got`, its far end made by `remote` from its source address.
/// Returns how many datagrams arrived.
fn recv<'a, S: SockaddrLike + Copy>(
    headers: &'a mut MultiHeaders<S>,
    fd: RawFd,
    bufs: &'a mut [[IoSliceMut<'a>; 1]],
    got: &mut [Got],
    remote: impl Fn(Option<S>) -> Remote,
) -> io::Result<usize> {
    let results = recvmmsg(fd, headers, bufs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
    let mut n = 0;
    for (g, r) in got.iter_mut().zip(results) {
        *g = Got {
            len: r.bytes,
            truncated: r.flags.contains(MsgFlags::MSG_TRUNC),
            remote: remote(r.address),
        };
        n += 1;
    }
    Ok(n)
}

/// One message of a batched send, its parts where `sendmmsg`'s header points.
struct Part<'p> {
    iov: [IoSlice<'p>; 1],
    to: Option<SocketAddrAny>,
    control: SendAncillaryBuffer<'static, 'static, 'static>,
}

impl<'p> Part<'p> {
    fn message(&mut self) -> MMsgHdr<'_> {
        match &self.to {
            Some(to) => MMsgHdr::new_with_addr(to, &self.iov, &mut self.control),
            None => MMsgHdr::new(&self.iov, &mut self.control),
        }
    }
}

/// Sends the first [`BATCH`] of `packets` on `socket` in one system call, a raw IP
/// socket's each to its `Remote::Ip` (every far end must [`Socket::suits`] the socket).
/// Returns how many left, at least one unless `packets` is empty; the first one's error if
/// none did (`WouldBlock`: the socket's buffer is full).
pub fn try_send<'p>(
    socket: Socket<'_>,
    packets: impl IntoIterator<Item = (&'p [u8], Remote)>,
) -> io::Result<usize> {
    let mut parts: [Part<'p>; BATCH] = std::array::from_fn(|_| Part {
        iov: [IoSlice::new(&[])],
        to: None,
        control: SendAncillaryBuffer::default(),
    });
    let mut n = 0;
    for (part, (packet, remote)) in parts.iter_mut().zip(packets) {
        part.iov = [IoSlice::new(packet)];
        part.to = match (socket, remote) {
            (Socket::RawIp(_), Remote::Ip(IpAddr::V4(to))) => Some(SocketAddrV4::new(to, 0).into()),
            _ => None,
        };
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    let mut messages = parts.each_mut().map(Part::message);
    socket.try_io(Interest::WRITABLE, || {
        Ok(sendmmsg(
            socket.fd(),
            &mut messages[..n],
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        )?)
    })
}

/// What to do when a socket's buffer is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait until it takes more.
    Wait,
    /// Drop what has not left.
    Drop,
}

/// What became of the packets given to [`send`].
#[derive(Debug, Default)]
pub struct Sent {
    pub sent: usize,
    /// Dropped because the socket was full ([`WhenFull::Drop`]).
    pub full: usize,
    /// Refused by the kernel, each with an error of its own.
    pub failed: usize,
    /// The last error, for the log.
    pub error: Option<io::Error>,
}

/// Sends `packets` on `socket` in order, [`BATCH`] per system call, going on after a
/// partial send with the rest. A packet the kernel refuses is counted and skipped; a full
/// socket is waited for or ends the send, as `when_full` says.
pub async fn send<'p, I>(socket: Socket<'_>, packets: I, when_full: WhenFull) -> Sent
where
    I: ExactSizeIterator<Item = (&'p [u8], Remote)> + Clone,
{
    let total = packets.len();
    let mut out = Sent::default();
    while out.sent + out.failed < total {
        let at = out.sent + out.failed;
        match try_send(socket, packets.clone().skip(at)) {
            Ok(0) => {
                // Not for a non-empty batch; never loop on it.
                out.failed += total - at;
                break;
            }
            Ok(n) => out.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match when_full {
                WhenFull::Drop => {
                    out.full = total - at;
                    break;
                }
                WhenFull::Wait => {
                    if let Err(e) = socket.writable().await {
                        out.failed += total - at;
                        out.error = Some(e);
                        break;
                    }
                }
            },
            Err(e) => {
                out.failed += 1;
                out.error = Some(e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    const A: AttachmentId = AttachmentId(4);

    /// A socket pair as the worker and the TLS thread hold it.
    fn pair() -> (tokio::net::UnixDatagram, tokio::net::UnixDatagram) {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().expect("socket pair");
        let register = |s: std::os::unix::net::UnixDatagram| {
            s.set_nonblocking(true).expect("nonblocking");
            tokio::net::UnixDatagram::from_std(s).expect("registered")
        };
        (register(a), register(b))
    }

    /// `n` packets, the `k`-th of `len(k)` bytes of the value `k`.
    fn packets(n: usize, len: impl Fn(usize) -> usize) -> Vec<Vec<u8>> {
        (0..n).map(|k| vec![k as u8; len(k)]).collect()
    }

    async fn readable(socket: Socket<'_>) {
        let ready = async {
            match socket {
                Socket::RawIp(s) | Socket::Packet(s) => s.readable().await,
                Socket::Relay(s) => s.readable().await,
            }
        };
        tokio::time::timeout(Duration::from_secs(5), ready)
            .await
            .expect("readable in time")
            .expect("readable");
    }

    /// Receives until `rx` holds `want` packets; the receive calls' results.
    async fn receive(
        r: &mut Receiver,
        socket: Socket<'_>,
        rx: &mut RxBatch,
        want: usize,
    ) -> Vec<(usize, usize)> {
        let mut calls = vec![];
        while rx.len() < want {
            readable(socket).await;
            match r.try_recv(socket, rx, A, 3) {
                Ok(got) => calls.push(got),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
        calls
    }

    /// The packets `rx` holds: their bytes, after asserting each one's attachment, socket
    /// and far end.
    fn taken(rx: &mut RxBatch, remote: Remote) -> Vec<Vec<u8>> {
        (0..rx.len())
            .map(|i| {
                let (m, d) = rx.get_mut(i);
                assert_eq!((m.attachment, m.via), (A, Via { io: 3, remote }));
                assert_eq!(m.len, d.len());
                d.to_vec()
            })
            .collect()
    }

    fn as_run(
        packets: &[Vec<u8>],
        remote: Remote,
    ) -> impl ExactSizeIterator<Item = (&[u8], Remote)> + Clone {
        packets.iter().map(move |p| (p.as_slice(), remote))
    }

    /// Datagrams waiting on a relay socket come in with one system call, each whole and in
    /// order in a packet buffer of its own.
    #[tokio::test]
    async fn one_receive_takes_every_waiting_datagram_in_order() {
        let (a, b) = pair();
        let sent = packets(20, |k| 1 + 97 * k);
        for p in &sent {
            a.send(p).await.expect("send");
        }
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        let mut r = Receiver::new();
        readable(Socket::Relay(&b)).await;
        let got = r.try_recv(Socket::Relay(&b), &mut rx, A, 3);
        assert_eq!(got.expect("received"), (20, 0));
        assert_eq!(taken(&mut rx, Remote::Device), sent);
        let more = r.try_recv(Socket::Relay(&b), &mut rx, A, 3);
        assert_eq!(more.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }

    /// A receive takes at most [`BATCH`] datagrams and at most what the batch has room for
    /// (packets, and a packet buffer's bytes each); what it leaves stays queued, in order.
    #[tokio::test]
    async fn a_receive_takes_at_most_a_batch_and_the_room_left() {
        let (a, b) = pair();
        let sent = packets(BATCH + 8, |_| 100);
        for p in &sent {
            a.send(p).await.expect("send");
        }
        let b = Socket::Relay(&b);
        let mut r = Receiver::new();
        readable(b).await;
        let mut small = RxBatch::with_arena(5, 1 << 20);
        assert_eq!(r.try_recv(b, &mut small, A, 3).expect("five"), (5, 0));
        assert_eq!(r.try_recv(b, &mut small, A, 3).expect("no room"), (0, 0));
        let mut narrow = RxBatch::with_arena(256, 2 * BUF_SIZE + 100);
        assert_eq!(r.try_recv(b, &mut narrow, A, 3).expect("two"), (2, 0));
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        assert_eq!(r.try_recv(b, &mut rx, A, 3).expect("a batch"), (BATCH, 0));
        assert_eq!(r.try_recv(b, &mut rx, A, 3).expect("the last"), (1, 0));
        let mut got = taken(&mut small, Remote::Device);
        got.extend(taken(&mut narrow, Remote::Device));
        got.extend(taken(&mut rx, Remote::Device));
        assert_eq!(got, sent);
    }

    /// A datagram longer than a packet buffer is refused and reported, never taken
    /// truncated; the ones around it are taken whole.
    #[tokio::test]
    async fn an_oversized_datagram_is_refused_not_truncated() {
        let (a, b) = pair();
        for p in [vec![1; 100], vec![2; BUF_SIZE + 1], vec![3; BUF_SIZE]] {
            a.send(&p).await.expect("send");
        }
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        let calls = receive(&mut Receiver::new(), Socket::Relay(&b), &mut rx, 2).await;
        assert_eq!(calls, [(2, 1)]);
        assert_eq!(
            taken(&mut rx, Remote::Device),
            [vec![1; 100], vec![3; BUF_SIZE]]
        );
    }

    /// More packets than a batch leave in batched sends, whole and in order.
    #[tokio::test]
    async fn a_batched_send_arrives_whole_and_in_order() {
        let (a, b) = pair();
        let sent = packets(3 * BATCH + 5, |k| 1 + 13 * k);
        let out = send(
            Socket::Relay(&a),
            as_run(&sent, Remote::Device),
            WhenFull::Wait,
        )
        .await;
        assert_eq!((out.sent, out.full, out.failed), (sent.len(), 0, 0));
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        receive(&mut Receiver::new(), Socket::Relay(&b), &mut rx, sent.len()).await;
        assert_eq!(taken(&mut rx, Remote::Device), sent);
    }

    /// A relay whose buffer fills part way through a send: what left arrives in order, the
    /// rest is dropped and reported as such, and nothing is waited for.
    #[tokio::test]
    async fn a_full_socket_drops_the_rest_when_told_to() {
        let (a, b) = pair();
        rustix::net::sockopt::set_socket_send_buffer_size(&a, 4096).expect("SO_SNDBUF");
        // The reactor has seen the new socket writable (a relay in use has).
        a.writable().await.expect("writable");
        let sent = packets(200, |_| 1000);
        let out = send(
            Socket::Relay(&a),
            as_run(&sent, Remote::Device),
            WhenFull::Drop,
        )
        .await;
        assert!(out.sent > 0 && out.full > 0, "{out:?}");
        assert_eq!((out.sent + out.full, out.failed), (sent.len(), 0));
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        let mut r = Receiver::new();
        receive(&mut r, Socket::Relay(&b), &mut rx, out.sent).await;
        assert_eq!(taken(&mut rx, Remote::Device), sent[..out.sent]);
        let more = r.try_recv(Socket::Relay(&b), &mut rx, A, 3);
        assert_eq!(more.map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    }

    /// The same socket waited for: every packet arrives, in order, while the far end reads.
    #[tokio::test]
    async fn a_full_socket_is_waited_for_when_told_to() {
        let (a, b) = pair();
        rustix::net::sockopt::set_socket_send_buffer_size(&a, 4096).expect("SO_SNDBUF");
        let sent = packets(200, |_| 1000);
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        let mut r = Receiver::new();
        let (out, _) = tokio::join!(
            send(
                Socket::Relay(&a),
                as_run(&sent, Remote::Device),
                WhenFull::Wait
            ),
            receive(&mut r, Socket::Relay(&b), &mut rx, sent.len()),
        );
        assert_eq!((out.sent, out.full, out.failed), (sent.len(), 0, 0));
        assert_eq!(taken(&mut rx, Remote::Device), sent);
    }

    fn raw(addr: Ipv4Addr) -> tokio::net::UdpSocket {
        let s = crate::runtime::raw_esp::open(addr).expect("raw socket (root?)");
        tokio::net::UdpSocket::from_std(s).expect("registered")
    }

    /// What follows the IPv4 header of each received raw packet.
    fn payloads(rx: &mut RxBatch, from: Ipv4Addr) -> Vec<Vec<u8>> {
        taken(rx, Remote::Ip(from.into()))
            .into_iter()
            .map(|d| {
                assert_eq!(d[9], 50, "IP protocol ESP");
                d[usize::from(d[0] & 0x0f) * 4..].to_vec()
            })
            .collect()
    }

    /// Needs CAP_NET_RAW (the tests run as root). One batched send of ESP to two peers, each
    /// packet to its own; each peer's packets come in with one receive, in order, with the
    /// sender's address. Addresses of their own on loopback keep other tests' ESP away.
    #[tokio::test]
    async fn raw_esp_goes_to_each_packets_peer_and_comes_with_its_source() {
        let ip = |d| Ipv4Addr::new(127, 0, 77, d);
        let (to1, to3) = (raw(ip(1)), raw(ip(3)));
        let from = raw(ip(2));
        let esp: Vec<Vec<u8>> = (0..2 * BATCH as u32 + 6)
            .map(|k| {
                [0x00, 0x77, 0, 1]
                    .into_iter()
                    .chain(k.to_be_bytes())
                    .chain([0xee; 40])
                    .collect()
            })
            .collect();
        let peer = |k: usize| Remote::Ip(ip(if k % 2 == 0 { 1 } else { 3 }).into());
        let run = esp.iter().enumerate().map(|(k, p)| (p.as_slice(), peer(k)));
        let out = send(Socket::RawIp(&from), run, WhenFull::Wait).await;
        assert_eq!((out.sent, out.failed), (esp.len(), 0), "{out:?}");

        let mut r = Receiver::new();
        for (socket, parity) in [(&to1, 0), (&to3, 1)] {
            let mut rx = RxBatch::with_arena(256, 1 << 20);
            receive(&mut r, Socket::RawIp(socket), &mut rx, esp.len() / 2).await;
            let want: Vec<Vec<u8>> = esp.iter().skip(parity).step_by(2).cloned().collect();
            assert_eq!(payloads(&mut rx, ip(2)), want);
        }
    }

    /// A packet the kernel refuses (a broadcast without SO_BROADCAST) is counted with its
    /// error, and the packets after it in the same batch still leave.
    #[tokio::test]
    async fn a_refused_packet_is_counted_and_the_rest_leaves() {
        let ip = |d| Ipv4Addr::new(127, 0, 77, d);
        let (to, from) = (raw(ip(11)), raw(ip(12)));
        let esp = packets(3, |_| 20);
        let peers = [ip(11), Ipv4Addr::BROADCAST, ip(11)];
        let run = esp
            .iter()
            .zip(peers)
            .map(|(p, to)| (p.as_slice(), Remote::Ip(to.into())));
        let out = send(Socket::RawIp(&from), run, WhenFull::Wait).await;
        assert_eq!((out.sent, out.full, out.failed), (2, 0, 1));
        assert!(out.error.is_some());
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        receive(&mut Receiver::new(), Socket::RawIp(&to), &mut rx, 2).await;
        assert_eq!(payloads(&mut rx, ip(12)), [esp[0].clone(), esp[2].clone()]);
    }

    /// Needs CAP_NET_RAW. Ethernet frames sent on loopback in one batch come back to a packet
    /// socket of their VLAN (nothing else on loopback is tagged), whole and in order.
    #[tokio::test]
    async fn packet_socket_frames_leave_and_arrive_in_batches() {
        let port = |vlan| {
            let s = crate::runtime::link::open("lo", Some(vlan)).expect("packet socket (root?)");
            tokio::net::UdpSocket::from_std(s).expect("registered")
        };
        let (rx_port, tx_port) = (port(1234), port(1235));
        let frame = |k: u8| -> Vec<u8> {
            let mut f = vec![0u8; 6];
            f.extend([0x02, 0, 0x5e, 0, 0x53, 0x78, 0x81, 0x00]);
            f.extend(1234u16.to_be_bytes());
            f.extend([0x88, 0xb5]); // local experimental EtherType
            f.extend([k; 50]);
            f
        };
        let frames: Vec<Vec<u8>> = (0..BATCH as u8 + 4).map(frame).collect();
        let out = send(
            Socket::Packet(&tx_port),
            as_run(&frames, Remote::Device),
            WhenFull::Wait,
        )
        .await;
        assert_eq!((out.sent, out.failed), (frames.len(), 0), "{out:?}");
        let mut rx = RxBatch::with_arena(256, 1 << 20);
        receive(
            &mut Receiver::new(),
            Socket::Packet(&rx_port),
            &mut rx,
            frames.len(),
        )
        .await;
        // The kernel takes the 802.1Q tag out of the received frame.
        let untagged: Vec<Vec<u8>> = (frames.iter())
            .map(|f| [&f[..12], &f[16..]].concat())
            .collect();
        assert_eq!(taken(&mut rx, Remote::Device), untagged);
    }

    #[test]
    fn sockets_take_the_far_ends_they_can_reach() {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let relay = tokio::net::UnixDatagram::from_std(a).expect("registered");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        udp.set_nonblocking(true).expect("nonblocking");
        let udp = tokio::net::UdpSocket::from_std(udp).expect("registered");
        let v4 = Remote::Ip(Ipv4Addr::LOCALHOST.into());
        let v6 = Remote::Ip(std::net::Ipv6Addr::LOCALHOST.into());
        let udp_far = Remote::Udp("127.0.0.1:1".parse().expect("address"));
        assert!(Socket::RawIp(&udp).suits(v4));
        assert!(!Socket::RawIp(&udp).suits(v6));
        assert!(!Socket::RawIp(&udp).suits(Remote::Device));
        assert!(!Socket::RawIp(&udp).suits(udp_far));
        for s in [Socket::Packet(&udp), Socket::Relay(&relay)] {
            assert!(s.suits(Remote::Device));
            assert!(!s.suits(v4));
        }
    }
}
