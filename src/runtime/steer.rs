//! Sockets of one UDP address shared by the data-path workers: a `SO_REUSEPORT` group of one
//! socket per worker, and a classic BPF program on the group that hands each WireGuard
//! datagram to the socket of the worker owning its peer. A WireGuard attachment's peer lives in
//! a slot, every session index of the peer is `slot << 8 | n` (see `tunnel::wireguard`), and
//! the worker owning slot `s` is `s % workers`: data messages and cookie replies name the
//! receiver's index at byte 4 of the UDP payload, handshake responses at byte 8 (all
//! little-endian). Initiations name no index of ours: the program returns an index past the
//! group, and the kernel falls back to its hash of the addresses; the worker that gets one
//! finds the peer and hands it on.
//!
//! An IPsec attachment's NAT-T address is such a group too, with [`esp_program`]: ESP in UDP
//! goes to the worker its SPI names (every inbound SPI of a peer's CHILD SAs is congruent to
//! its owner modulo the workers, see `tunnel::Shard`), IKE behind the non-ESP marker and
//! anything too short to name an SPI to worker 0, which hands IKE to the IKE thread. Raw ESP
//! has no reuse-port groups: every worker has a raw socket of its own, and [`esp_filter`]
//! lets each take only the SPIs it owns.

use std::io;
use std::net::SocketAddr;

use nix::libc;

use super::bpf::*;

use crate::dataplane::{AttachmentPlan, AttachmentPlanKind};

/// Where each message type names our index (byte offset in the UDP payload).
const DATA: u32 = 4;
const RESPONSE: u32 = 2;
const COOKIE: u32 = 3;
const INDEX_AT_DATA: u32 = 4;
const INDEX_AT_RESPONSE: u32 = 8;
/// Past any group: the kernel picks by hash.
const FALL_BACK: u32 = u32::MAX;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The program for `workers` sockets: the owner of the slot a datagram names, or
/// [`FALL_BACK`].
pub fn wireguard_program(workers: u32) -> Vec<libc::sock_filter> {
    // The slot: the index's upper three bytes, little-endian, at `at + 1 ..= at + 3`.
    let slot = |at: u32| {
        vec![
            op(LD_B_ABS, 0, 0, at + 3),
            op(LSH_K, 0, 0, 8),
            op(TAX, 0, 0, 0),
            op(LD_B_ABS, 0, 0, at + 2),
            op(OR_X, 0, 0, 0),
            op(LSH_K, 0, 0, 8),
            op(TAX, 0, 0, 0),
            op(LD_B_ABS, 0, 0, at + 1),
            op(OR_X, 0, 0, 0),
            op(MOD_K, 0, 0, workers.max(1)),
            op(RET_A, 0, 0, 0),
        ]
    };
    let at_data = slot(INDEX_AT_DATA);
    let at_response = slot(INDEX_AT_RESPONSE);
    let n = at_data.len() as u8;
    // 0: the type; 1, 2: data or cookie reply → the block at 4; 3: response → the block at
    // 4 + n, anything else → the fallback at 4 + 2n (jumps count from the next instruction).
    let mut p = vec![
        op(LD_B_ABS, 0, 0, 0),
        op(JEQ_K, 2, 0, DATA),
        op(JEQ_K, 1, 0, COOKIE),
        op(JEQ_K, n, 2 * n, RESPONSE),
    ];
    p.extend(at_data);
    p.extend(at_response);
    p.push(op(RET_K, 0, 0, FALL_BACK));
    p
}

/// The program of an IPsec attachment's NAT-T group of `workers` sockets: an ESP datagram's
/// SPI modulo `workers`; worker 0 for IKE (the four zero bytes of the non-ESP marker) and
/// for a datagram shorter than an SPI (a NAT keepalive: the load fails, and a classic
/// program that fails returns 0).
pub fn esp_program(workers: u32) -> Vec<libc::sock_filter> {
    vec![
        // The SPI (network order, as classic BPF loads words).
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 2, 0, 0),
        op(MOD_K, 0, 0, workers.max(1)),
        op(RET_A, 0, 0, 0),
        op(RET_K, 0, 0, 0),
    ]
}

/// The socket filter of worker `k`'s raw ESP socket among `workers`: a packet (IPv4 header
/// first) passes if its SPI modulo `workers` is `k`; one too short to hold an SPI passes
/// worker 0's alone, which counts it (`esp_malformed`). Each worker's socket gets a copy of
/// every ESP packet; the others' filters drop it before it is queued (not a socket drop).
pub fn esp_filter(k: u32, workers: u32) -> Vec<socket2::SockFilter> {
    use socket2::SockFilter;
    let (pass, drop) = (u32::MAX, 0);
    vec![
        // X: the IPv4 header's length; A: the bytes behind it.
        SockFilter::new(LDX_B_MSH, 0, 0, 0),
        SockFilter::new(LD_W_LEN, 0, 0, 0),
        SockFilter::new(SUB_X, 0, 0, 0),
        // Shorter than an SPI: to the last instruction.
        SockFilter::new(JGE_K, 0, 5, 4),
        // A: the SPI.
        SockFilter::new(LD_W_IND, 0, 0, 0),
        SockFilter::new(MOD_K, 0, 0, workers.max(1)),
        SockFilter::new(JEQ_K, 0, 1, k),
        SockFilter::new(RET_K, 0, 0, pass),
        SockFilter::new(RET_K, 0, 0, drop),
        SockFilter::new(RET_K, 0, 0, if k == 0 { pass } else { drop }),
    ]
}

/// Which program a group gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// By the receiver index of a WireGuard message ([`wireguard_program`]).
    WireGuard,
    /// By the SPI of ESP in UDP ([`esp_program`]).
    Esp,
}

impl Steering {
    /// How the workers share `a`'s `io`-th socket when there are several: a group with this
    /// program, or `None` (worker 0's alone).
    pub fn of(a: &AttachmentPlan, io: usize) -> Option<Steering> {
        if !a.per_worker(io) {
            return None;
        }
        match a.kind {
            AttachmentPlanKind::Ipsec { .. } => Some(Steering::Esp),
            _ => Some(Steering::WireGuard),
        }
    }
}

/// `workers` UDP sockets bound to `addr` in one `SO_REUSEPORT` group, nonblocking, the
/// program of `steering` attached: socket `k` receives the datagrams of the peers worker `k`
/// owns. An address with port 0 gets the port the first socket was given.
pub fn bind_group(
    addr: SocketAddr,
    workers: u32,
    steering: Steering,
) -> io::Result<Vec<std::net::UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut out: Vec<std::net::UdpSocket> = Vec::with_capacity(workers as usize);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        if addr.port() == 0 {
            addr = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("not an IP socket"))?;
        }
        out.push(s.into());
    }
    let program = match steering {
        Steering::WireGuard => wireguard_program(workers),
        Steering::Esp => esp_program(workers),
    };
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    nix::sys::socket::setsockopt(
        &out[0],
        nix::sys::socket::sockopt::AttachReusePortCbpf,
        &fprog,
    )
    .map_err(io::Error::from)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().expect("address")
    }

    fn message(kind: u8, index_at: usize, index: u32) -> Vec<u8> {
        let mut m = vec![0u8; 48];
        m[0] = kind;
        m[index_at..index_at + 4].copy_from_slice(&index.to_le_bytes());
        m
    }

    /// Which socket of the group got each datagram sent, in order.
    fn deliver(group: &[std::net::UdpSocket], datagrams: &[Vec<u8>]) -> Vec<Option<usize>> {
        let to = group[0].local_addr().expect("address");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        for d in datagrams {
            sender.send_to(d, to).expect("send");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut which = None;
            while which.is_none() && std::time::Instant::now() < deadline {
                for (k, s) in group.iter().enumerate() {
                    if let Ok(n) = s.recv(&mut buf) {
                        assert_eq!(&buf[..n], &d[..], "the datagram itself");
                        which = Some(k);
                    }
                }
            }
            got.push(which);
        }
        got
    }

    /// Data messages, cookie replies and handshake responses reach the socket of the worker
    /// owning the slot their index names; any slot, any number of workers.
    #[test]
    fn datagrams_reach_the_owner_of_their_peer() {
        for workers in [2u32, 3, 4] {
            let group = bind_group(loopback(), workers, Steering::WireGuard).expect("group");
            let slots = [0u32, 1, 2, 3, 5, 7, 255, 256, 257, 65_537, (1 << 24) - 1];
            let mut datagrams = Vec::new();
            let mut want = Vec::new();
            for &slot in &slots {
                for (kind, at) in [(4, 4), (3, 4), (2, 8)] {
                    datagrams.push(message(kind, at, slot << 8 | 0x2a));
                    want.push(Some((slot % workers) as usize));
                }
            }
            assert_eq!(deliver(&group, &datagrams), want, "{workers} workers");
        }
    }

    /// An initiation (no index of ours), a short or unknown datagram is still delivered, to
    /// some socket of the group.
    #[test]
    fn other_datagrams_reach_some_socket() {
        let group = bind_group(loopback(), 2, Steering::WireGuard).expect("group");
        let datagrams = vec![message(1, 4, 0x0100), vec![4, 0], vec![9; 20]];
        let got = deliver(&group, &datagrams);
        assert!(got.iter().all(Option::is_some), "{got:?}");
    }

    /// ESP in UDP reaches the worker its SPI names; IKE (the non-ESP marker) and keepalives
    /// reach worker 0.
    #[test]
    fn esp_reaches_the_owner_of_its_spi_and_ike_worker_0() {
        for workers in [2u32, 3] {
            let group = bind_group(loopback(), workers, Steering::Esp).expect("group");
            let spis = [256u32, 257, 258, 0x1234_5679, 0xffff_fffe, 0xffff_ffff];
            let mut datagrams: Vec<Vec<u8>> = spis
                .iter()
                .map(|spi| [&spi.to_be_bytes()[..], &[0, 0, 0, 1], &[0xaa; 24]].concat())
                .collect();
            let mut want: Vec<Option<usize>> = spis
                .iter()
                .map(|spi| Some((spi % workers) as usize))
                .collect();
            datagrams.push([&[0u8; 4][..], &[0x11; 28]].concat());
            datagrams.push(vec![0xff]);
            want.extend([Some(0), Some(0)]);
            assert_eq!(deliver(&group, &datagrams), want, "{workers} workers");
        }
    }

    /// Each worker's raw ESP socket takes the SPIs it owns and no other. Needs CAP_NET_RAW
    /// (the tests run as root).
    #[test]
    fn each_raw_esp_socket_takes_its_own_spis() {
        use std::net::Ipv4Addr;
        // An address of its own: other tests' ESP on loopback stays away.
        let lo = Ipv4Addr::new(127, 0, 79, 2);
        let workers = 2;
        let sockets: Vec<std::net::UdpSocket> = (0..workers)
            .map(|k| {
                super::super::raw_esp::open_filtered(lo, &esp_filter(k, workers))
                    .expect("raw socket (root?)")
            })
            .collect();
        let tx = super::super::raw_esp::open(lo).expect("raw socket");
        // Other tests may send ESP on loopback too: only these SPIs count.
        let spis = [0x7e57_0100u32, 0x7e57_0101, 0x7e57_0102, 0x7e57_0105];
        for spi in spis {
            let esp = [&spi.to_be_bytes()[..], &[0, 0, 0, 1, 0xaa, 0xbb]].concat();
            tx.send_to(&esp, (lo, 0)).expect("send");
        }
        // Too short for an SPI: worker 0's alone (it counts it malformed).
        tx.send_to(&[0x7e, 0x57], (lo, 0)).expect("send");
        let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); workers as usize];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut buf = [0u8; 128];
        while got.iter().map(Vec::len).sum::<usize>() < spis.len() + 1
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
            for (k, s) in sockets.iter().enumerate() {
                while let Ok(n) = s.recv(&mut buf) {
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    got[k].push(buf[ihl..n].to_vec());
                }
            }
        }
        let spi = |p: &Vec<u8>| {
            p.get(..4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4")))
        };
        let of = |k: usize| got[k].iter().map(spi).collect::<Vec<_>>();
        assert_eq!(of(0), [Some(0x7e57_0100), Some(0x7e57_0102), None]);
        assert_eq!(of(1), [Some(0x7e57_0101), Some(0x7e57_0105)]);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            sockets.iter().all(|s| s.recv(&mut buf).is_err()),
            "nothing more"
        );
    }
}
