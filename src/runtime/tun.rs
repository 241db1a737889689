//! The TUN device of a plain attachment, with the kernel's offloads where it offers them
//! (`IFF_VNET_HDR` with `TUN_F_CSUM`, `TSO4/6` and, from Linux 6.2, `USO4/6`, asked for by
//! tun-rs's `offload`): every read and write then carries a virtio-net header, and
//!
//! * a read may return a super-packet of up to 64 KiB that the kernel did not segment
//!   (TCP it sent itself or forwarded after GRO, UDP sent with `UDP_SEGMENT`) or a packet whose
//!   checksum it left to the device (`NEEDS_CSUM`). tun-rs's `try_recv_multiple` splits the
//!   super-packet into segments of its `gso_size` and completes every checksum, writing each
//!   segment straight into a packet buffer of the batch's arena ([`TunIo::try_recv`]): the
//!   data path sees only whole IPv4 packets of the device's MTU with correct checksums, as
//!   it did without offloads, at one system call per super-packet;
//! * a send coalesces runs of one TCP connection's consecutive segments and, where the
//!   device took USO, runs of one UDP flow's consecutive datagrams into super-packets that
//!   the kernel segments again (`gro`) and writes each with one `writev` of the packets
//!   where they lie, the rest as single packets behind an empty header ([`TunIo::send`]).
//!
//! Without offloads (a kernel that refuses them) the device is read and written one packet
//! per system call. tun-rs owns the system calls; nothing here allocates per packet. Sends
//! do not use tun-rs's `send_multiple`: its GRO copies every TCP and UDP packet into a
//! fresh `Vec` (tun-rs 2.8.16, `tcp_gro`/`udp_gro`) and coalesces into buffers that must
//! each have room for 64 KiB, where the packets already lie in the transmit batch.
//!
//! Public for the allocation test (`tests/alloc.rs`); the worker is its only user.

mod gro;
#[cfg(test)]
mod testing;

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use crate::buffer::{Remote, RxBatch, Via, BUF_SIZE};
use crate::ids::AttachmentId;

pub use gro::MAX_PACKETS;
use gro::{Plan, MAX_HEADERS, MAX_SEGMENTS, PLAIN_HDR, VNET_HDR_LEN};

/// Packets one read can hold: a super-packet of 64 KiB cut into segments of at least 512
/// bytes of payload. One cut finer is refused whole (`oversized`).
pub const SEGMENTS: usize = 128;
/// One read with offloads: the virtio-net header and a packet of up to 64 KiB.
const RAW: usize = VNET_HDR_LEN + 65_535;

/// A plain attachment's TUN device, registered with this thread's reactor.
pub struct TunIo {
    dev: tun_rs::AsyncDevice,
    offload: bool,
    /// The device took `TUN_F_USO4`: UDP runs may leave as super-packets too.
    uso: bool,
}

/// Creates the TUN device `name` down, with `mtu`, and with offloads unless the kernel
/// refuses them.
pub fn open(name: &str, mtu: u16) -> io::Result<tun_rs::SyncDevice> {
    let build = |offload| {
        tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .offload(offload)
            .enable(false)
            .build_sync()
    };
    build(true).or_else(|e| {
        tracing::debug!(
            tun = name,
            "TUN offloads refused ({e}): one packet per read and write"
        );
        build(false)
    })
}

/// Packets of a send that did not leave, and the last error.
#[derive(Debug)]
pub struct SendError {
    pub failed: usize,
    pub error: io::Error,
}

impl TunIo {
    pub fn new(dev: tun_rs::SyncDevice) -> io::Result<TunIo> {
        let dev = tun_rs::AsyncDevice::new(dev)?;
        let offload = dev.tcp_gso();
        // tun-rs asks for USO4 and USO6 in one TUNSETOFFLOAD, after TSO alone succeeded.
        let uso = offload && dev.udp_gso();
        Ok(TunIo { dev, offload, uso })
    }

    /// Whether reads and writes carry virtio-net headers.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Whether sends coalesce UDP datagrams into super-packets (the kernel has USO for TUN,
    /// Linux 6.2).
    pub fn udp_offload(&self) -> bool {
        self.uso
    }

    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.dev.poll_readable(cx)
    }

    /// Reads one packet or super-packet into `rx` as packets of `attachment`'s `io`-th
    /// device, each segment in a packet buffer of its own. Returns the packets taken and
    /// those refused: a super-packet the split cannot lay out (more segments than
    /// [`SEGMENTS`], one longer than a packet buffer, a header that makes no sense) counts
    /// as one. `Ok((0, 0))` when `rx` has no room for a whole read, `WouldBlock` when nothing
    /// waits.
    pub fn try_recv(
        &self,
        rx: &mut RxBatch,
        attachment: AttachmentId,
        io: u8,
    ) -> io::Result<(usize, usize)> {
        let (slots, raw) = if self.offload {
            (SEGMENTS, RAW)
        } else {
            (1, 0)
        };
        let Some(spare) = rx.spare(slots, slots * BUF_SIZE + raw) else {
            return Ok((0, 0));
        };
        let (cells, rest) = spare.split_at_mut(slots * BUF_SIZE);
        let mut chunks = cells.chunks_mut(BUF_SIZE);
        let mut bufs: [&mut [u8]; SEGMENTS] =
            std::array::from_fn(|_| chunks.next().unwrap_or_default());
        let mut sizes = [0; SEGMENTS];
        let n = match self.dev.try_recv_multiple(
            &mut rest[..raw],
            &mut bufs[..slots],
            &mut sizes[..slots],
            0,
        ) {
            Ok(n) => n,
            // tun-rs's own errors are about what it read (the system call's carry an errno).
            Err(e) if e.kind() != io::ErrorKind::WouldBlock && e.raw_os_error().is_none() => {
                tracing::debug!(attachment = attachment.0, "TUN read refused: {e}");
                return Ok((0, 1));
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            // A super-packet of headers only.
            return Ok((0, 1));
        }
        let via = Via {
            io,
            remote: Remote::Device,
        };
        let taken = (0..n.min(slots))
            .filter(|&i| rx.commit_at(i * BUF_SIZE, sizes[i], attachment, via))
            .count();
        Ok((taken, n - taken))
    }

    /// Writes `packets` (IPv4 packets for the device, in order), waiting for room when the
    /// device pushes back. With offloads, runs of one TCP connection (and with USO of one UDP
    /// flow) leave as super-packets; one the kernel refuses is written again as single
    /// packets.
    pub async fn send(&self, packets: &[&[u8]]) -> Result<(), SendError> {
        let mut failed = 0;
        let mut last = None;
        if !self.offload {
            for p in packets {
                if let Err(e) = self.write(&[IoSlice::new(p)]).await {
                    failed += 1;
                    last = Some(e);
                }
            }
        } else {
            let mut plan = Plan::new(self.uso);
            let mut head = [0; VNET_HDR_LEN + MAX_HEADERS];
            for chunk in packets.chunks(MAX_PACKETS) {
                plan.make(chunk);
                for unit in plan.units() {
                    let mut iov = [IoSlice::new(&[]); MAX_SEGMENTS + 1];
                    let n = plan.head(unit, chunk, &mut head);
                    iov[0] = IoSlice::new(&head[..n]);
                    let mut k = 1;
                    for body in plan.bodies(unit, chunk) {
                        iov[k] = IoSlice::new(body);
                        k += 1;
                    }
                    let Err(e) = self.write(&iov[..k]).await else {
                        continue;
                    };
                    if unit.count() == 1 {
                        failed += 1;
                        last = Some(e);
                        continue;
                    }
                    tracing::debug!(
                        segments = unit.count(),
                        "TUN refused a super-packet ({e}): its segments go one by one"
                    );
                    for p in plan.members(unit, chunk) {
                        let plain = [IoSlice::new(&PLAIN_HDR), IoSlice::new(p)];
                        if let Err(e) = self.write(&plain).await {
                            failed += 1;
                            last = Some(e);
                        }
                    }
                }
            }
        }
        match last {
            None => Ok(()),
            Some(error) => Err(SendError { failed, error }),
        }
    }

    async fn write(&self, iov: &[IoSlice<'_>]) -> io::Result<()> {
        loop {
            match self.dev.try_send_vectored(iov) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.dev.writable().await?,
                other => return other.map(drop),
            }
        }
    }
}

/// These tests need root: each makes a network namespace of its own for its thread
/// (`unshare`), where it creates the TUN device `ixgwt0` at 10.77.0.1/24 and plays the far
/// end at 10.77.0.2 with packets it builds. Run them with
/// `cargo test --lib -- --ignored runtime::tun::tests`.
#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use super::testing::{fix_checksums, tcp_segment, udp_datagram, udp_datagram_summing_to_zero};
    use super::*;
    use crate::wire::ipv4::Ipv4Packet;
    use crate::wire::tcp::{self, TcpPacket};
    use crate::wire::udp::UdpPacket;
    use crate::wire::{build, checksum, PROTO_TCP, PROTO_UDP};

    const NAME: &str = "ixgwt0";
    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const FAR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    fn ip(args: &[&str]) {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }

    /// This thread's own network namespace with the device up at 10.77.0.1/24, MTU 1500,
    /// with offloads as [`open`] gets them or none.
    fn device(offload: bool) -> TunIo {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("a network namespace of the test's own (needs root)");
        let dev = if offload {
            open(NAME, 1500)
        } else {
            plain(NAME)
        };
        let io = TunIo::new(dev.expect("TUN device")).expect("registered");
        assert_eq!(io.offload(), offload, "offloads on this kernel");
        ip(&["link", "set", "lo", "up"]);
        up(NAME, "10.77.0.1/24");
        io
    }

    /// A device without offloads, down, MTU 1500.
    fn plain(name: &str) -> io::Result<tun_rs::SyncDevice> {
        tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(1500)
            .enable(false)
            .build_sync()
    }

    /// The device `name` up at `cidr`, without the kernel's IPv6.
    fn up(name: &str, cidr: &str) {
        super::super::disable_ipv6(name);
        ip(&["addr", "add", cidr, "dev", name]);
        ip(&["link", "set", name, "up"]);
    }

    fn batch() -> RxBatch {
        RxBatch::with_arena(1024, 8 << 20)
    }

    /// Reads until the batch holds at least `want` packets; the packets each read took.
    async fn read(io: &TunIo, rx: &mut RxBatch, want: usize) -> Vec<usize> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut reads = vec![];
        while rx.len() < want {
            let ready = poll_fn(|cx| io.poll_recv_ready(cx));
            tokio::time::timeout_at(deadline, ready)
                .await
                .expect("packets in time")
                .expect("readable");
            match io.try_recv(rx, AttachmentId(1), 2) {
                Ok((taken, refused)) => {
                    assert_eq!(refused, 0, "nothing refused");
                    reads.extend((taken > 0).then_some(taken));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        reads
    }

    /// The batch's packets, each checked: from the device, IPv4, at most the MTU, the header
    /// checksum right.
    fn take(rx: &mut RxBatch) -> Vec<Vec<u8>> {
        let packets = (0..rx.len())
            .map(|i| {
                let (m, p) = rx.get_mut(i);
                assert_eq!(
                    (m.attachment, m.via),
                    (
                        AttachmentId(1),
                        Via {
                            io: 2,
                            remote: Remote::Device
                        }
                    )
                );
                let ip = Ipv4Packet::new_checked(&*p).expect("IPv4");
                assert_eq!(usize::from(ip.total_len()), p.len());
                assert!(p.len() <= 1500, "{} bytes: larger than the MTU", p.len());
                assert!(ip.verify_checksum(), "IPv4 header checksum");
                p.to_vec()
            })
            .collect();
        rx.clear();
        packets
    }

    fn transport_ok(p: &[u8], protocol: u8) -> bool {
        let ip = Ipv4Packet::new_unchecked(p);
        checksum::transport(ip.src_addr(), ip.dst_addr(), protocol, ip.payload()) == 0
    }

    fn tcp_of(p: &[u8]) -> Option<TcpPacket<&[u8]>> {
        let ip = Ipv4Packet::new_unchecked(p);
        (ip.protocol() == PROTO_TCP).then(|| TcpPacket::new_checked(&p[20..]).expect("TCP"))
    }

    /// The TCP packets the device has sent until one matches.
    async fn tcp_until(
        io: &TunIo,
        rx: &mut RxBatch,
        want: impl Fn(&TcpPacket<&[u8]>) -> bool,
    ) -> Vec<u8> {
        loop {
            read(io, rx, 1).await;
            for p in take(rx) {
                if tcp_of(&p).is_some_and(|t| want(&t)) {
                    return p;
                }
            }
        }
    }

    /// The kernel's TCP sends a bulk write through the device as TSO super-packets; each
    /// read splits one into segments of the MTU with both checksums right, and the bytes
    /// come out whole and in order.
    #[tokio::test]
    #[ignore = "needs root: makes a network namespace and a TUN device"]
    async fn tcp_super_packets_arrive_as_checksummed_segments() {
        let io = device(true);
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        let _in_progress = s.connect(&SocketAddr::from((FAR, 80)).into());
        let mut rx = batch();
        let syn = tcp_until(&io, &mut rx, |t| t.flags() & tcp::FLAG_SYN != 0).await;
        let syn = tcp_of(&syn).expect("TCP");
        let (port, isn) = (syn.src_port(), syn.seq_number());
        let syn_ack = tcp_segment(
            (FAR, 80),
            (LOCAL, port),
            7000,
            isn.wrapping_add(1),
            tcp::FLAG_SYN | tcp::FLAG_ACK,
            Some(1460),
            &[],
            1,
        );
        io.send(&[&syn_ack]).await.expect("SYN-ACK");

        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let sent = loop {
            match s.send(&data) {
                Ok(n) => break n,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("send: {e}"),
            }
        };
        let mut got = Vec::new();
        let mut next = isn.wrapping_add(1);
        let mut reads = vec![];
        let mut ident = 2;
        while got.len() < sent {
            reads.extend(read(&io, &mut rx, 1).await);
            for p in take(&mut rx) {
                let Some(t) = tcp_of(&p) else { continue };
                assert!(transport_ok(&p, PROTO_TCP), "TCP checksum of a segment");
                if t.seq_number() == next && !t.payload().is_empty() {
                    got.extend_from_slice(t.payload());
                    next = next.wrapping_add(t.payload().len() as u32);
                }
            }
            let ack = tcp_segment(
                (FAR, 80),
                (LOCAL, port),
                7001,
                next,
                tcp::FLAG_ACK,
                None,
                &[],
                ident,
            );
            ident += 1;
            io.send(&[&ack]).await.expect("ACK");
        }
        assert_eq!(got, data[..sent]);
        assert!(
            reads.iter().any(|&n| n > 1),
            "no read returned a super-packet's segments: {reads:?}"
        );
    }

    /// A UDP GSO send reaches the device as one super-packet where the kernel has USO for
    /// TUN (Linux 6.2), else as single datagrams; either way as whole datagrams with their
    /// checksums.
    #[tokio::test]
    #[ignore = "needs root: makes a network namespace and a TUN device"]
    async fn udp_gso_sends_arrive_as_datagrams() {
        let io = device(true);
        let s = std::net::UdpSocket::bind((LOCAL, 0)).expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        let u = crate::runtime::udp::UdpIo::new(s).expect("UDP");
        let run: Vec<u8> = (0..10u8).flat_map(|k| [k; 1000]).collect();
        loop {
            match u.try_send(SocketAddr::from((FAR, 9999)), &run, Some(1000)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    u.writable().await.expect("writable")
                }
                other => break other.expect("GSO send"),
            }
        }
        let mut rx = batch();
        let reads = read(&io, &mut rx, 10).await;
        let packets = take(&mut rx);
        for (k, p) in packets.iter().enumerate() {
            assert!(transport_ok(p, PROTO_UDP), "UDP checksum");
            let d = UdpPacket::new_checked(&p[20..]).expect("UDP");
            assert_eq!(d.payload(), &[k as u8; 1000]);
        }
        let want = if io.dev.udp_gso() {
            vec![10]
        } else {
            vec![1; 10]
        };
        assert_eq!(reads, want);
    }

    /// 40 segments of a connection to a local listener leave in one send: the kernel
    /// gets one super-packet (its receive counter moves by one) and the socket reads every
    /// byte in order.
    #[tokio::test]
    #[ignore = "needs root: makes a network namespace and a TUN device"]
    async fn a_send_of_segments_reaches_the_socket_as_one_super_packet() {
        let io = device(true);
        let listener = std::net::TcpListener::bind((LOCAL, 5000)).expect("listen");
        listener.set_nonblocking(true).expect("nonblocking");
        let me = (FAR, 40000);
        let syn = tcp_segment(me, (LOCAL, 5000), 100, 0, tcp::FLAG_SYN, Some(1460), &[], 1);
        io.send(&[&syn]).await.expect("SYN");
        let mut rx = batch();
        let syn_ack = tcp_until(&io, &mut rx, |t| t.flags() == tcp::FLAG_SYN | tcp::FLAG_ACK).await;
        let server = tcp_of(&syn_ack).expect("TCP").seq_number().wrapping_add(1);
        let ack = tcp_segment(me, (LOCAL, 5000), 101, server, tcp::FLAG_ACK, None, &[], 2);
        io.send(&[&ack]).await.expect("ACK");

        let data: Vec<u8> = (0..40 * 1400u32).map(|i| (i % 253) as u8).collect();
        let segments: Vec<Vec<u8>> = data
            .chunks(1400)
            .enumerate()
            .map(|(k, c)| {
                let flags = tcp::FLAG_ACK | if k == 39 { tcp::FLAG_PSH } else { 0 };
                tcp_segment(
                    me,
                    (LOCAL, 5000),
                    101 + 1400 * k as u32,
                    server,
                    flags,
                    None,
                    c,
                    3 + k as u16,
                )
            })
            .collect();
        let refs: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        let before = rx_packets();
        io.send(&refs).await.expect("segments");
        assert_eq!(rx_packets() - before, 1, "one write of one super-packet");

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut got = vec![0; data.len()];
        std::io::Read::read_exact(&mut conn, &mut got).expect("every byte");
        assert_eq!(got, data);
    }

    /// 30 datagrams of one flow and a shorter last one leave in one send: the kernel gets one
    /// super-packet (its receive counter moves by one) and a socket reads every datagram,
    /// whole and in order.
    #[tokio::test]
    #[ignore = "needs root: makes a network namespace and a TUN device"]
    async fn a_send_of_datagrams_reaches_the_socket_as_one_super_packet() {
        let io = device(true);
        assert!(io.udp_offload(), "USO on this kernel (Linux 6.2 or later)");
        let s = std::net::UdpSocket::bind((LOCAL, 6001)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let payloads: Vec<Vec<u8>> = (0..31u16)
            .map(|k| {
                let len = if k == 30 { 123 } else { 1200 };
                (0..len).map(|i: u16| (i * 3 + k * 11) as u8).collect()
            })
            .collect();
        let datagrams: Vec<Vec<u8>> = (0..31u16)
            .map(|k| {
                udp_datagram(
                    (FAR, 7000),
                    (LOCAL, 6001),
                    &payloads[usize::from(k)],
                    100 + k,
                )
            })
            .collect();
        let refs: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
        let before = rx_packets();
        io.send(&refs).await.expect("datagrams");
        assert_eq!(rx_packets() - before, 1, "one write of one super-packet");

        let mut buf = [0; 2048];
        for (k, want) in payloads.iter().enumerate() {
            let (n, from) = s.recv_from(&mut buf).expect("every datagram");
            assert_eq!(
                (&buf[..n], from),
                (&want[..], SocketAddr::from((FAR, 7000))),
                "datagram {k}"
            );
        }
    }

    /// What the kernel forwards of a super-packet is each datagram as it would have left
    /// alone, TTL one less as forwarding makes it: read from a second device without
    /// offloads, for which the kernel cut and checksummed the datagrams in full. Without DF
    /// the identifications are the datagrams' own; with DF they are numbered up from the
    /// first's, the one field that differs.
    #[tokio::test]
    #[ignore = "needs root: makes a network namespace and a TUN device"]
    async fn forwarded_super_packets_leave_as_their_datagrams_byte_for_byte() {
        let io = device(true);
        assert!(io.udp_offload(), "USO on this kernel (Linux 6.2 or later)");
        let out = TunIo::new(plain("ixgwt1").expect("TUN device")).expect("registered");
        up("ixgwt1", "10.78.0.1/24");
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("forwarding on");
        let beyond = Ipv4Addr::new(10, 78, 0, 2);
        let payload = |k: u16, len: u16| -> Vec<u8> {
            (0..len).map(|i| (i ^ k.wrapping_mul(31)) as u8).collect()
        };
        // Without DF, identifications in turn: 20 of 1000 bytes (one with a checksum that
        // computes to 0, sent as 0xFFFF) and a last one of 500.
        let no_df: Vec<Vec<u8>> = (0..21u16)
            .map(|k| {
                let (from, to) = ((FAR, 7001), (beyond, 9000));
                let mut d = match k {
                    5 => udp_datagram_summing_to_zero(from, to, 1000, 4000 + k),
                    20 => udp_datagram(from, to, &payload(k, 500), 4000 + k),
                    _ => udp_datagram(from, to, &payload(k, 1000), 4000 + k),
                };
                d[6] = 0;
                fix_checksums(&mut d);
                d
            })
            .collect();
        // DF and identification 0, as from an unconnected Linux socket: 20 of 700 bytes.
        let df: Vec<Vec<u8>> = (0..20u16)
            .map(|k| udp_datagram((FAR, 7002), (beyond, 9000), &payload(k, 700), 0))
            .collect();
        let all: Vec<&[u8]> = no_df.iter().chain(&df).map(Vec::as_slice).collect();
        let before = rx_packets();
        io.send(&all).await.expect("datagrams");
        assert_eq!(rx_packets() - before, 2, "two super-packets");

        let mut rx = batch();
        read(&out, &mut rx, all.len()).await;
        let got = take(&mut rx);
        let renumbered = df.iter().enumerate().map(|(k, d)| {
            let mut d = d.clone();
            d[4..6].copy_from_slice(&(k as u16).to_be_bytes());
            d
        });
        let want: Vec<Vec<u8>> = no_df
            .iter()
            .cloned()
            .chain(renumbered)
            .map(|mut p| {
                p[8] -= 1;
                fix_checksums(&mut p);
                p
            })
            .collect();
        assert_eq!(got.len(), want.len());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "datagram {k}");
        }
    }

    /// Packets the device's kernel received (its `rx_packets` in this thread's namespace).
    fn rx_packets() -> u64 {
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
        let line = dev
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{NAME}:")))
            .expect("the device's line");
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields[2].parse().expect("rx_packets")
    }

    /// Without offloads: one datagram per read, one write per packet.
    #[tokio::test]
    #[ignore = "needs root: makes a network namespace and a TUN device"]
    async fn without_offloads_one_packet_per_system_call() {
        let io = device(false);
        let s = std::net::UdpSocket::bind((LOCAL, 6000)).expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        for k in 0..3u8 {
            s.send_to(&[k; 700], (FAR, 9999)).expect("send");
        }
        let mut rx = batch();
        assert_eq!(read(&io, &mut rx, 3).await, [1, 1, 1]);
        for (k, p) in take(&mut rx).iter().enumerate() {
            assert!(transport_ok(p, PROTO_UDP));
            assert_eq!(
                UdpPacket::new_checked(&p[20..]).expect("UDP").payload(),
                &[k as u8; 700]
            );
        }
        let mut buf = [0; 100];
        let n = build::udp(&mut buf, FAR, LOCAL, 9999, 6000, b"back").expect("fits");
        io.send(&[&buf[..n], &buf[..n]]).await.expect("written");
        let mut got = [0; 16];
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..2 {
            let (len, from) = s.recv_from(&mut got).expect("datagram");
            assert_eq!(
                (&got[..len], from),
                (&b"back"[..], SocketAddr::from((FAR, 9999)))
            );
        }
    }
}
