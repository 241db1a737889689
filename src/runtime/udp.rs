//! A UDP socket of the data path, driven in batches: quinn-udp's `recvmmsg` with UDP GRO in
//! (one system call reads up to [`DATAGRAMS`] datagrams, each of them up to 64 packets one
//! sender sent back to back), `sendmsg` with UDP GSO out (one system call sends a run of
//! equally long packets to one destination). quinn-udp owns the unsafe system calls.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;

use crate::buffer::{Remote, RxBatch, Via};
use crate::ids::AttachmentId;

/// Datagrams read by one receive call.
pub const DATAGRAMS: usize = quinn_udp::BATCH_SIZE;
/// Room for one received datagram: a GRO datagram holds up to 64 KiB.
pub const CHUNK: usize = 64 * 1024;
/// Packets one GRO datagram can hold (the kernel's `UDP_GRO_CNT_MAX`).
pub const GRO_SEGMENTS: usize = 64;
/// The longest GSO send: the packets of one call stay below the largest UDP payload.
pub const GSO_BYTES: usize = 65_000;

pub struct UdpIo {
    socket: tokio::net::UdpSocket,
    state: UdpSocketState,
}

impl UdpIo {
    /// Registers `socket` with this thread's reactor and turns GRO on. quinn-udp also sets
    /// the don't-fragment bit on everything the socket sends; that is turned back off, so
    /// that an IKE message longer than the path (certificates) still leaves in fragments.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<UdpIo> {
        let state = UdpSocketState::new((&socket).into())?;
        let v4 = socket.local_addr()?.is_ipv4();
        if v4 {
            rustix::net::sockopt::set_ip_mtu_discover(
                &socket,
                rustix::net::sockopt::Ipv4PathMtuDiscovery::WANT,
            )?;
        } else {
            rustix::net::sockopt::set_ipv6_mtu_discover(
                &socket,
                rustix::net::sockopt::Ipv6PathMtuDiscovery::WANT,
            )?;
            nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6DontFrag, &false)
                .map_err(io::Error::from)?;
        }
        Ok(UdpIo {
            socket: tokio::net::UdpSocket::from_std(socket)?,
            state,
        })
    }

    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_recv_ready(cx)
    }

    /// Reads what is waiting, one receive call's worth, into `rx` as packets of `attachment`'s
    /// `io`-th socket. Returns the packets taken and those refused (longer than a packet
    /// buffer); `Ok((0, 0))` also when `rx` has no room for a whole call, `WouldBlock` when
    /// nothing waits.
    pub fn try_recv(
        &self,
        rx: &mut RxBatch,
        attachment: AttachmentId,
        io: u8,
    ) -> io::Result<(usize, usize)> {
        let (packets, bytes) = rx.room();
        let calls = DATAGRAMS.min(packets / GRO_SEGMENTS).min(bytes / CHUNK);
        let Some(spare) = rx
            .spare(calls * GRO_SEGMENTS, calls * CHUNK)
            .filter(|_| calls > 0)
        else {
            return Ok((0, 0));
        };
        let mut meta = [RecvMeta::default(); DATAGRAMS];
        let n = {
            let mut chunks = spare.chunks_mut(CHUNK);
            let mut bufs: [IoSliceMut<'_>; DATAGRAMS] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            self.socket.try_io(Interest::READABLE, || {
                self.state.recv(
                    (&self.socket).into(),
                    &mut bufs[..calls],
                    &mut meta[..calls],
                )
            })?
        };
        let mut taken = (0, 0);
        for (i, m) in meta.iter().take(n).enumerate() {
            let via = Via {
                io,
                remote: Remote::Udp(m.addr),
            };
            let (t, refused) = rx.commit_segments(i * CHUNK, m.len, m.stride, attachment, via);
            taken = (taken.0 + t, taken.1 + refused);
        }
        Ok(taken)
    }

    /// The most packets one send may carry (1 where the kernel or the device has no GSO).
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `contents` to `to`: one datagram, or packets of `segment` bytes each (the last
    /// possibly shorter) by GSO. `WouldBlock` when the socket's buffer is full.
    pub fn try_send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        self.socket.try_io(Interest::WRITABLE, || {
            self.state.try_send((&self.socket).into(), &transmit)
        })
    }

    pub async fn writable(&self) -> io::Result<()> {
        self.socket.writable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BUF_SIZE;

    fn pair() -> (UdpIo, UdpIo, SocketAddr) {
        let bind = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        };
        let (a, b) = (bind(), bind());
        let to = b.local_addr().expect("address");
        (
            UdpIo::new(a).expect("sender"),
            UdpIo::new(b).expect("receiver"),
            to,
        )
    }

    async fn send(io: &UdpIo, to: SocketAddr, contents: &[u8], segment: Option<usize>) {
        loop {
            match io.try_send(to, contents, segment) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    io.writable().await.expect("writable")
                }
                other => return other.expect("send"),
            }
        }
    }

    async fn receive(io: &UdpIo, rx: &mut RxBatch, want: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while rx.len() < want {
            let ready = tokio::time::timeout_at(
                deadline,
                std::future::poll_fn(|cx| io.poll_recv_ready(cx)),
            );
            ready.await.expect("datagrams in time").expect("readable");
            match io.try_recv(rx, AttachmentId(2), 1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
    }

    /// A GSO send of 12 packets (the last shorter) and two plain datagrams arrive as 14
    /// packets, bytes and order intact, each with its sender and socket.
    #[tokio::test]
    async fn gso_sends_arrive_as_single_packets() {
        let (a, b, to) = pair();
        let from = a.socket.local_addr().expect("address");
        let mut run = vec![];
        for k in 0..12u8 {
            run.extend(std::iter::repeat_n(k, if k == 11 { 300 } else { 1000 }));
        }
        // Linux has had UDP GSO and GRO since 4.18.
        assert!(a.max_segments() > 1, "GSO");
        assert_eq!(b.state.gro_segments(), GRO_SEGMENTS, "GRO");
        send(&a, to, &run, Some(1000)).await;
        send(&a, to, &[0xaa; 64], None).await;
        send(&a, to, &[0xbb; 1452], None).await;

        let mut rx = RxBatch::with_arena(2 * DATAGRAMS * GRO_SEGMENTS, 2 * DATAGRAMS * CHUNK);
        receive(&b, &mut rx, 14).await;
        let got: Vec<(usize, u8)> = (0..rx.len())
            .map(|i| {
                let (m, d) = rx.get_mut(i);
                assert_eq!(m.via, Via::udp(1, from));
                assert_eq!(m.attachment, AttachmentId(2));
                assert!(d.iter().all(|&x| x == d[0]));
                (d.len(), d[0])
            })
            .collect();
        let mut want: Vec<(usize, u8)> = (0..11).map(|k| (1000, k)).collect();
        want.extend([(300, 11), (64, 0xaa), (1452, 0xbb)]);
        assert_eq!(got, want);
    }

    /// The largest GSO run a WireGuard peer sends: 44 datagrams of 1456 bytes.
    #[tokio::test]
    async fn a_full_gso_run_of_large_datagrams_arrives_whole() {
        let (a, b, to) = pair();
        let run: Vec<u8> = (0..44u8)
            .flat_map(|k| std::iter::repeat_n(k, 1456))
            .collect();
        send(&a, to, &run, Some(1456)).await;
        let mut rx = RxBatch::with_arena(2 * DATAGRAMS * GRO_SEGMENTS, 2 * DATAGRAMS * CHUNK);
        receive(&b, &mut rx, 44).await;
        for k in 0..44 {
            let (m, d) = rx.get_mut(k);
            assert_eq!((m.len, d[0], d[1455]), (1456, k as u8, k as u8));
        }
    }

    /// A datagram longer than a packet buffer is refused and reported, the one after it
    /// still taken.
    #[tokio::test]
    async fn oversized_datagrams_are_refused() {
        let (a, b, to) = pair();
        send(&a, to, &[1; BUF_SIZE + 1], None).await;
        send(&a, to, &[2; 100], None).await;
        let mut rx = RxBatch::with_arena(2 * DATAGRAMS * GRO_SEGMENTS, 2 * DATAGRAMS * CHUNK);
        let mut refused = 0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while rx.is_empty() {
            let ready = std::future::poll_fn(|cx| b.poll_recv_ready(cx));
            tokio::time::timeout_at(deadline, ready)
                .await
                .expect("in time")
                .expect("ready");
            if let Ok((_, r)) = b.try_recv(&mut rx, AttachmentId(0), 0) {
                refused += r;
            }
        }
        assert_eq!(refused, 1);
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.get_mut(0).1, &[2; 100]);
    }

    /// A batch without room for a whole receive call reads nothing (and loses nothing).
    #[tokio::test]
    async fn a_full_batch_reads_nothing() {
        let (a, b, to) = pair();
        send(&a, to, &[3; 100], None).await;
        let mut rx = RxBatch::new(8);
        std::future::poll_fn(|cx| b.poll_recv_ready(cx))
            .await
            .expect("ready");
        assert_eq!(
            b.try_recv(&mut rx, AttachmentId(0), 0).expect("no error"),
            (0, 0)
        );
        let mut rx = RxBatch::with_arena(GRO_SEGMENTS, CHUNK);
        receive(&b, &mut rx, 1).await;
        assert_eq!(rx.get_mut(0).1, &[3; 100]);
    }
}
