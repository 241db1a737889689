//! The messages between the TLS thread (which terminates TLS, logs clients in and speaks CSTP)
//! and the data-path worker, one per datagram of the socket pair that joins them. Sans-IO:
//! bytes in, bytes out.
//!
//! From the TLS thread to the worker:
//! * `0 | session u32 | packet` — an IP packet a session's client sent;
//! * `1 | session u32 | peer u32 | address [4] | generation u64 | login u8` — a session is up
//!   (again): it holds `address` for `peer`, numbered as in the plan of `generation`;
//!   `login` 1 for a new login, 0 for a reconnect;
//! * `2 | session u32` — the session ended;
//! * `3 | result u8 | peer u32 | generation u64` — a login refused (a
//!   [`HandshakeResult`]), of `peer` if known (`u32::MAX` if not), to count;
//! * `4 | reason u8 | packets u32` — packets the TLS thread dropped (a [`DropReason`]),
//!   to count.
//!
//! From the worker to the TLS thread: `0 | session u32 | packet` — a packet for a session's
//! client.

use std::net::Ipv4Addr;

use crate::ids::PeerId;
use crate::vocab::{DropReason, HandshakeResult};

pub const PACKET: u8 = 0;
pub const UP: u8 = 1;
pub const DOWN: u8 = 2;
pub const REFUSED: u8 = 3;
pub const LOST: u8 = 4;
/// What precedes a packet: the kind and the session.
pub const PACKET_HEADER: usize = 5;
const NO_PEER: u32 = u32::MAX;

/// A message, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A packet of `session`; it starts at [`PACKET_HEADER`].
    Packet {
        session: u32,
    },
    Up {
        session: u32,
        peer: PeerId,
        address: Ipv4Addr,
        generation: u64,
        login: bool,
    },
    Down {
        session: u32,
    },
    Refused {
        result: HandshakeResult,
        peer: Option<PeerId>,
        generation: u64,
    },
    Lost {
        reason: DropReason,
        packets: u32,
    },
}

impl Message {
    /// Parses a datagram; `None` when it is none of the above.
    pub fn parse(b: &[u8]) -> Option<Message> {
        let u32_at = |i: usize| Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?));
        match *b.first()? {
            PACKET => Some(Message::Packet {
                session: u32_at(1)?,
            }),
            UP if b.len() == 22 => Some(Message::Up {
                session: u32_at(1)?,
                peer: PeerId(u32_at(5)?),
                address: Ipv4Addr::from(u32_at(9)?),
                generation: u64_at(13)?,
                login: match b[21] {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
            }),
            DOWN if b.len() == 5 => Some(Message::Down {
                session: u32_at(1)?,
            }),
            REFUSED if b.len() == 14 => Some(Message::Refused {
                result: *HandshakeResult::ALL.get(usize::from(b[1]))?,
                peer: Some(u32_at(2)?).filter(|p| *p != NO_PEER).map(PeerId),
                generation: u64_at(6)?,
            }),
            LOST if b.len() == 6 => Some(Message::Lost {
                reason: *DropReason::ALL.get(usize::from(b[1]))?,
                packets: u32_at(2)?,
            }),
            _ => None,
        }
    }

    /// Writes a message other than a packet; returns its length (at most 22).
    pub fn write(&self, out: &mut [u8; 22]) -> usize {
        match *self {
            Message::Packet { session } => {
                packet_header(out, session);
                PACKET_HEADER
            }
            Message::Up {
                session,
                peer,
                address,
                generation,
                login,
            } => {
                out[0] = UP;
                out[1..5].copy_from_slice(&session.to_be_bytes());
                out[5..9].copy_from_slice(&peer.0.to_be_bytes());
                out[9..13].copy_from_slice(&address.octets());
                out[13..21].copy_from_slice(&generation.to_be_bytes());
                out[21] = u8::from(login);
                22
            }
            Message::Down { session } => {
                out[0] = DOWN;
                out[1..5].copy_from_slice(&session.to_be_bytes());
                5
            }
            Message::Refused {
                result,
                peer,
                generation,
            } => {
                out[0] = REFUSED;
                out[1] = result as u8;
                out[2..6].copy_from_slice(&peer.map_or(NO_PEER, |p| p.0).to_be_bytes());
                out[6..14].copy_from_slice(&generation.to_be_bytes());
                14
            }
            Message::Lost { reason, packets } => {
                out[0] = LOST;
                out[1] = reason as u8;
                out[2..6].copy_from_slice(&packets.to_be_bytes());
                6
            }
        }
    }
}

/// Writes the header of a packet for `session` into `out` (at least [`PACKET_HEADER`] long).
pub fn packet_header(out: &mut [u8], session: u32) {
    out[0] = PACKET;
    out[1..5].copy_from_slice(&session.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_junk_is_refused() {
        let all = [
            Message::Packet { session: 7 },
            Message::Up {
                session: 9,
                peer: PeerId(3),
                address: Ipv4Addr::new(10, 0, 60, 2),
                generation: 4,
                login: true,
            },
            Message::Down { session: 9 },
            Message::Refused {
                result: HandshakeResult::Certificate,
                peer: None,
                generation: 2,
            },
            Message::Refused {
                result: HandshakeResult::Timeout,
                peer: Some(PeerId(1)),
                generation: 2,
            },
            Message::Lost {
                reason: DropReason::TlsClientQueueFull,
                packets: 12,
            },
        ];
        for m in all {
            let mut b = [0u8; 22];
            let n = m.write(&mut b);
            assert_eq!(Message::parse(&b[..n]), Some(m));
        }
        for junk in [
            &[][..],
            &[1, 0, 0],
            &[2, 0, 0, 0, 0, 0],
            &[9, 0, 0, 0, 0],
            &[3, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(Message::parse(junk), None, "{junk:?}");
        }
    }
}
