//! Reassembly of IKE fragments [RFC 7383 § 2.6]: each fragment is verified and decrypted on its
//! own, then its content is kept until every fragment of the message is in.
//!
//! Bounded: one message per direction at a time, at most `max_fragments` fragments and
//! `max_bytes` octets, and it is dropped when the deadline passes. Fragments of another
//! message ID replace the buffer (a newer message supersedes an older, unfinished one).

use std::time::Instant;

use crate::tunnel::ipsec::ike::message::{Fragment, PayloadType};

/// Why a fragment was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FragmentError {
    /// Beyond the bounds.
    TooLarge,
    /// Another total than the fragments already in, or a first fragment without a first
    /// payload type.
    Inconsistent,
}

#[derive(Debug)]
pub(super) struct Reassembly {
    message_id: u32,
    total: u16,
    first_inner: PayloadType,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
    pub(super) deadline: Instant,
}

/// The bounds of one message.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub max_fragments: u16,
    pub max_bytes: usize,
}

impl Reassembly {
    /// Adds the decrypted content of fragment `frag` of message `message_id` to `slot`;
    /// returns the whole inner chain and its first payload type once every fragment is in.
    pub(super) fn add(
        slot: &mut Option<Reassembly>,
        bounds: Bounds,
        deadline: Instant,
        message_id: u32,
        frag: Fragment,
        first_inner: PayloadType,
        content: Vec<u8>,
    ) -> Result<Option<(PayloadType, Vec<u8>)>, FragmentError> {
        if frag.total > bounds.max_fragments || frag.number == 0 || frag.number > frag.total {
            return Err(FragmentError::TooLarge);
        }
        if (frag.number == 1) == (first_inner == PayloadType::NONE) {
            return Err(FragmentError::Inconsistent);
        }
        let fresh = match slot {
            Some(r) if r.message_id == message_id => {
                if r.total != frag.total {
                    return Err(FragmentError::Inconsistent);
                }
                false
            }
            _ => true,
        };
        if fresh {
            *slot = Some(Reassembly {
                message_id,
                total: frag.total,
                first_inner: PayloadType::NONE,
                parts: vec![None; usize::from(frag.total)],
                bytes: 0,
                deadline,
            });
        }
        let Some(r) = slot.as_mut() else {
            return Err(FragmentError::Inconsistent);
        };
        let i = usize::from(frag.number - 1);
        if r.parts.get(i).is_some_and(Option::is_some) {
            return Ok(None);
        }
        if r.bytes + content.len() > bounds.max_bytes {
            *slot = None;
            return Err(FragmentError::TooLarge);
        }
        r.bytes += content.len();
        if frag.number == 1 {
            r.first_inner = first_inner;
        }
        if let Some(p) = r.parts.get_mut(i) {
            *p = Some(content);
        }
        if r.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let done = slot.take().map(|r| {
            let mut chain = Vec::with_capacity(r.bytes);
            for p in r.parts.into_iter().flatten() {
                chain.extend_from_slice(&p);
            }
            (r.first_inner, chain)
        });
        Ok(done)
    }

    #[cfg(test)]
    pub(super) fn message_id(&self) -> u32 {
        self.message_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        max_fragments: 4,
        max_bytes: 100,
    };

    fn f(number: u16, total: u16) -> Fragment {
        Fragment { number, total }
    }

    #[test]
    fn reassembles_in_any_order_and_ignores_duplicates() {
        let now = Instant::now();
        let mut slot = None;
        let add = |slot: &mut Option<Reassembly>, n, first, c: &[u8]| {
            Reassembly::add(slot, B, now, 7, f(n, 3), first, c.to_vec())
        };
        assert_eq!(add(&mut slot, 3, PayloadType::NONE, b"ef"), Ok(None));
        assert_eq!(add(&mut slot, 1, PayloadType::IDI, b"ab"), Ok(None));
        assert_eq!(add(&mut slot, 1, PayloadType::IDI, b"ab"), Ok(None));
        assert_eq!(
            add(&mut slot, 2, PayloadType::NONE, b"cd"),
            Ok(Some((PayloadType::IDI, b"abcdef".to_vec())))
        );
        assert!(slot.is_none());
    }

    #[test]
    fn stays_within_bounds() {
        let now = Instant::now();
        let mut slot = None;
        assert_eq!(
            Reassembly::add(&mut slot, B, now, 1, f(1, 5), PayloadType::SA, vec![]),
            Err(FragmentError::TooLarge)
        );
        assert_eq!(
            Reassembly::add(&mut slot, B, now, 1, f(1, 2), PayloadType::SA, vec![0; 60]),
            Ok(None)
        );
        assert_eq!(
            Reassembly::add(
                &mut slot,
                B,
                now,
                1,
                f(2, 2),
                PayloadType::NONE,
                vec![0; 60]
            ),
            Err(FragmentError::TooLarge)
        );
        assert!(slot.is_none());
        assert_eq!(
            Reassembly::add(&mut slot, B, now, 1, f(2, 2), PayloadType::SA, vec![]),
            Err(FragmentError::Inconsistent)
        );
        assert_eq!(
            Reassembly::add(&mut slot, B, now, 1, f(1, 2), PayloadType::SA, vec![1]),
            Ok(None)
        );
        assert_eq!(
            Reassembly::add(&mut slot, B, now, 1, f(2, 3), PayloadType::NONE, vec![1]),
            Err(FragmentError::Inconsistent)
        );
        // A newer message replaces the unfinished one.
        assert_eq!(
            Reassembly::add(&mut slot, B, now, 2, f(2, 2), PayloadType::NONE, vec![1]),
            Ok(None)
        );
        assert_eq!(slot.as_ref().map(Reassembly::message_id), Some(2));
    }
}
