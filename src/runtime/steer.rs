//! Sockets of one UDP address shared by the data-path workers: a `SO_REUSEPORT` group of one
//! socket per worker, and a classic BPF program on the group that hands each WireGuard
//! datagram to the socket of the worker owning its peer. A WireGuard attachment's peer lives in
//! a slot, every session index of the peer is `slot << 8 | n` (see `tunnel::wireguard`), and
//! the worker owning slot `s` is `s % workers`: data messages and cookie replies name the
//! receiver's index at byte 4 of the UDP payload, handshake responses at byte 8 (all
//! little-endian). Initiations name no index of ours: the program returns an index past the
//! group, and the kernel falls back to its hash of the addresses; the worker that gets one
//! finds the peer and hands it on.

use std::io;
use std::net::SocketAddr;

use nix::libc;

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
    let ldb = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    let lsh = (libc::BPF_ALU | libc::BPF_LSH | libc::BPF_K) as u16;
    let or_x = (libc::BPF_ALU | libc::BPF_OR | libc::BPF_X) as u16;
    let modk = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
    let tax = (libc::BPF_MISC | libc::BPF_TAX) as u16;
    let ret_a = (libc::BPF_RET | libc::BPF_A) as u16;
    let ret_k = (libc::BPF_RET | libc::BPF_K) as u16;
    // The slot: the index's upper three bytes, little-endian, at `at + 1 ..= at + 3`.
    let slot = |at: u32| {
        vec![
            op(ldb, 0, 0, at + 3),
            op(lsh, 0, 0, 8),
            op(tax, 0, 0, 0),
            op(ldb, 0, 0, at + 2),
            op(or_x, 0, 0, 0),
            op(lsh, 0, 0, 8),
            op(tax, 0, 0, 0),
            op(ldb, 0, 0, at + 1),
            op(or_x, 0, 0, 0),
            op(modk, 0, 0, workers.max(1)),
            op(ret_a, 0, 0, 0),
        ]
    };
    let at_data = slot(INDEX_AT_DATA);
    let at_response = slot(INDEX_AT_RESPONSE);
    let n = at_data.len() as u8;
    // 0: the type; 1, 2: data or cookie reply → the block at 4; 3: response → the block at
    // 4 + n, anything else → the fallback at 4 + 2n (jumps count from the next instruction).
    let mut p = vec![
        op(ldb, 0, 0, 0),
        op(jeq, 2, 0, DATA),
        op(jeq, 1, 0, COOKIE),
        op(jeq, n, 2 * n, RESPONSE),
    ];
    p.extend(at_data);
    p.extend(at_response);
    p.push(op(ret_k, 0, 0, FALL_BACK));
    p
}

/// `workers` UDP sockets bound to `addr` in one `SO_REUSEPORT` group, nonblocking, the
/// WireGuard program attached: socket `k` receives the datagrams of the peers worker `k` owns.
/// An address with port 0 gets the port the first socket was given.
pub fn bind_group(addr: SocketAddr, workers: u32) -> io::Result<Vec<std::net::UdpSocket>> {
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
    let program = wireguard_program(workers);
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
            let group =
                bind_group("127.0.0.1:0".parse().expect("address"), workers).expect("group");
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
        let group = bind_group("127.0.0.1:0".parse().expect("address"), 2).expect("group");
        let datagrams = vec![message(1, 4, 0x0100), vec![4, 0], vec![9; 20]];
        let got = deliver(&group, &datagrams);
        assert!(got.iter().all(Option::is_some), "{got:?}");
    }
}
