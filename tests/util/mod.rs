//! Helpers shared by the in-memory pair harnesses.

#![allow(dead_code)]

use boringtun::noise::TunnResult;

/// A boringtun result without the borrow of its buffer.
pub enum Owned {
    Net(Vec<u8>),
    Inner(Vec<u8>),
    Done,
    Err(String),
}

pub fn owned(r: TunnResult<'_>) -> Owned {
    match r {
        TunnResult::WriteToNetwork(b) => Owned::Net(b.to_vec()),
        TunnResult::WriteToTunnelV4(b, _) | TunnResult::WriteToTunnelV6(b, _) => {
            Owned::Inner(b.to_vec())
        }
        TunnResult::Done => Owned::Done,
        TunnResult::Err(e) => Owned::Err(format!("{e:?}")),
    }
}
