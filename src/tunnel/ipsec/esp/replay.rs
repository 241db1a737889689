//! The receiver's anti-replay window [RFC 4303 § 3.4.3] and the reconstruction of extended
//! sequence numbers from their low half [RFC 4303 Appendix A2.2].
//!
//! The window remembers the highest authenticated sequence number (`top`) and one bit for
//! each of the [`REPLAY_WINDOW`] numbers ending at it. The bits live in a ring of 64-bit
//! words indexed by `seq / 64`, with one word more than the window needs, so that moving
//! the window clears whole words and never shifts [RFC 6479 § 2]. Fixed size, no
//! allocation; checking is separate from accepting so that a packet moves the window only
//! once its integrity is verified.

use super::EspError;

/// Width of the window in packets: a packet up to `REPLAY_WINDOW - 1` numbers behind the
/// highest one received is still accepted once. RFC 4303 § 3.4.3 asks for at least 32 (64
/// by default); reordering on multi-queue paths at high rates needs far more.
pub const REPLAY_WINDOW: u64 = 1024;

const WORDS: usize = REPLAY_WINDOW as usize / 64 + 1;

/// Which sequence numbers were received, for one inbound SA.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    top: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing: the first valid number is 1.
    pub fn new() -> ReplayWindow {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest sequence number accepted so far (0 before the first).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full 64-bit sequence number of a packet that carries `seq_lo` when ESN is in use,
    /// guessed from the window [RFC 4303 Appendix A2.2]; `None` for a number that cannot be
    /// valid (it would lie beyond 2^64).
    pub fn esn_seq(&self, seq_lo: u32) -> Option<u64> {
        let w = REPLAY_WINDOW as u32;
        let top_lo = self.top as u32;
        let top_hi = (self.top >> 32) as u32;
        // Bl, the low half of the window's bottom.
        let bottom_lo = top_lo.wrapping_sub(w - 1);
        let seq_hi = if top_lo >= w - 1 {
            // Case A: the window lies within one 2^32 subspace; below its bottom means the
            // next subspace.
            if seq_lo >= bottom_lo {
                Some(top_hi)
            } else {
                top_hi.checked_add(1)
            }
        } else if seq_lo >= bottom_lo {
            // Case B: the window spans two subspaces and this is in the lower one. Before the
            // first subspace there is none: such a number lies ahead in subspace 0.
            Some(top_hi.saturating_sub(1))
        } else {
            Some(top_hi)
        };
        seq_hi.map(|hi| u64::from(hi) << 32 | u64::from(seq_lo))
    }

    /// Whether `seq` may still be accepted: not 0, not left of the window, not seen before.
    /// Changes nothing.
    pub fn check(&self, seq: u64) -> Result<(), EspError> {
        if seq == 0 {
            return Err(EspError::Replay);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= REPLAY_WINDOW {
            return Err(EspError::Replay);
        }
        let (word, bit) = position(seq);
        if self.bits[word] & bit != 0 {
            Err(EspError::Replay)
        } else {
            Ok(())
        }
    }

    /// Records `seq`, which passed [`Self::check`] and the integrity check, moving the
    /// window right if it is the new highest.
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            let (old_block, new_block) = (self.top / 64, seq / 64);
            if new_block - old_block >= WORDS as u64 {
                self.bits = [0; WORDS];
            } else {
                for block in old_block + 1..=new_block {
                    self.bits[(block % WORDS as u64) as usize] = 0;
                }
            }
            self.top = seq;
        }
        let (word, bit) = position(seq);
        self.bits[word] |= bit;
    }

    /// Sets the highest received number, as if it had just been accepted alone (tests and
    /// fuzzing start from windows far along).
    #[cfg(test)]
    pub(super) fn reset_to(&mut self, top: u64) {
        self.top = top;
        self.bits = [0; WORDS];
        let (word, bit) = position(top);
        self.bits[word] = bit;
    }
}

fn position(seq: u64) -> (usize, u64) {
    (((seq / 64) % WORDS as u64) as usize, 1 << (seq % 64))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const W: u64 = REPLAY_WINDOW;

    fn receive(w: &mut ReplayWindow, seq: u64) -> Result<(), EspError> {
        w.check(seq)?;
        w.accept(seq);
        Ok(())
    }

    #[test]
    fn first_packet_is_accepted_and_zero_never() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(0), Err(EspError::Replay));
        assert_eq!(receive(&mut w, 1), Ok(()));
        assert_eq!(receive(&mut w, 1), Err(EspError::Replay));
        assert_eq!(w.check(0), Err(EspError::Replay));
        assert_eq!(w.top(), 1);

        // The first packet may also be far ahead, e.g. after losses.
        let mut w = ReplayWindow::new();
        assert_eq!(receive(&mut w, 100_000), Ok(()));
        assert_eq!(receive(&mut w, 100_000 - W + 1), Ok(()));
        assert_eq!(w.check(100_000 - W), Err(EspError::Replay));
    }

    #[test]
    fn check_alone_does_not_move_the_window() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(5), Ok(()));
        assert_eq!(w.check(5), Ok(()));
        assert_eq!(w.top(), 0);
        w.accept(5);
        assert_eq!(w.check(5), Err(EspError::Replay));
    }

    #[test]
    fn window_minus_one_behind_is_accepted_once_and_window_behind_never() {
        let top = 5000;
        let mut w = ReplayWindow::new();
        receive(&mut w, top).unwrap();
        assert_eq!(receive(&mut w, top - (W - 1)), Ok(()));
        assert_eq!(receive(&mut w, top - (W - 1)), Err(EspError::Replay));
        assert_eq!(receive(&mut w, top - W), Err(EspError::Replay));
        assert_eq!(receive(&mut w, 1), Err(EspError::Replay));
        // Everything in between, once each.
        for s in top - (W - 2)..top {
            assert_eq!(receive(&mut w, s), Ok(()), "{s}");
        }
        for s in top - (W - 1)..=top {
            assert_eq!(w.check(s), Err(EspError::Replay), "{s}");
        }
    }

    #[test]
    fn jumps_larger_than_the_window_forget_everything_behind() {
        let mut w = ReplayWindow::new();
        for s in 1..=200 {
            receive(&mut w, s).unwrap();
        }
        let far = 200 + 10 * W;
        receive(&mut w, far).unwrap();
        assert_eq!(w.check(200), Err(EspError::Replay));
        // Numbers whose ring slots held old bits are free again inside the new window.
        for s in far - (W - 1)..far {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        // A jump of exactly the window, and one of one word more.
        for jump in [W, W + 64, W - 1, 64, 63, 1] {
            let mut w = ReplayWindow::new();
            receive(&mut w, 1000).unwrap();
            receive(&mut w, 1000 + jump).unwrap();
            assert_eq!(w.check(1000), Err(EspError::Replay));
            for s in (1000 + jump).saturating_sub(W - 1).max(1)..1000 + jump {
                if s != 1000 {
                    assert_eq!(w.check(s), Ok(()), "jump {jump} seq {s}");
                }
            }
        }
    }

    #[test]
    fn esn_reconstruction_follows_appendix_a() {
        let mut w = ReplayWindow::new();
        // Fresh window: small numbers are subspace 0; numbers just below 2^32 too (ahead).
        assert_eq!(w.esn_seq(1), Some(1));
        assert_eq!(w.esn_seq(u32::MAX), Some(u64::from(u32::MAX)));

        // Case A, far from a boundary.
        w.reset_to(0x0000_0005_8000_0000);
        assert_eq!(w.esn_seq(0x8000_0001), Some(0x0000_0005_8000_0001));
        assert_eq!(
            w.esn_seq(0x8000_0000 - 1023),
            Some(0x0000_0005_8000_0000 - 1023)
        );
        // Below the window's bottom: read as the next subspace.
        assert_eq!(
            w.esn_seq(0x8000_0000 - 1024),
            Some(0x0000_0006_8000_0000 - 1024)
        );

        // Case B: top just past a 2^32 boundary; the window reaches into the subspace below.
        w.reset_to(0x0000_0001_0000_0010);
        assert_eq!(w.esn_seq(0x20), Some(0x0000_0001_0000_0020));
        assert_eq!(w.esn_seq(0xffff_fff0), Some(0x0000_0000_ffff_fff0));
        assert_eq!(
            w.esn_seq(0x10u32.wrapping_sub(1023)),
            Some(0x0000_0001_0000_0010 - 1023)
        );

        // The last subspace has no successor.
        w.reset_to(u64::MAX - 5);
        assert_eq!(w.esn_seq(u32::MAX), Some(u64::MAX));
        assert_eq!(w.esn_seq(3), None);
    }

    #[test]
    fn esn_wraps_the_low_half_at_2_pow_32() {
        let mut w = ReplayWindow::new();
        let receive_lo = |w: &mut ReplayWindow, lo: u32| -> Result<u64, EspError> {
            let seq = w.esn_seq(lo).ok_or(EspError::Replay)?;
            receive(w, seq)?;
            Ok(seq)
        };
        w.reset_to(u64::from(u32::MAX) - 2);
        assert_eq!(
            receive_lo(&mut w, u32::MAX - 1),
            Ok(u64::from(u32::MAX) - 1)
        );
        assert_eq!(receive_lo(&mut w, u32::MAX), Ok(u64::from(u32::MAX)));
        // Low half 0 after the wrap is 2^32, a valid number (unlike 0 without ESN).
        assert_eq!(receive_lo(&mut w, 0), Ok(1 << 32));
        assert_eq!(receive_lo(&mut w, 1), Ok((1 << 32) + 1));
        // A late packet from before the wrap is still recognised as such.
        assert_eq!(
            receive_lo(&mut w, u32::MAX - 10),
            Ok(u64::from(u32::MAX) - 10)
        );
        assert_eq!(receive_lo(&mut w, u32::MAX), Err(EspError::Replay));
        assert_eq!(receive_lo(&mut w, 0), Err(EspError::Replay));
        assert_eq!(w.top(), (1 << 32) + 1);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Ahead(u64),
        Behind(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1..70u64).prop_map(Step::Ahead),
            1 => (1..5000u64).prop_map(Step::Ahead),
            4 => (0..1100u64).prop_map(Step::Behind),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The window against a model that remembers every number it accepted.
        #[test]
        fn matches_a_model_that_remembers_everything(
            steps in prop::collection::vec(step(), 1..400)
        ) {
            let mut w = ReplayWindow::new();
            let mut seen = BTreeSet::new();
            let mut top = 0u64;
            for s in steps {
                let seq = match s {
                    Step::Ahead(d) => top + d,
                    Step::Behind(d) => top.saturating_sub(d),
                };
                let expect_ok = seq != 0 && seq + W > top && !seen.contains(&seq);
                prop_assert_eq!(w.check(seq).is_ok(), expect_ok, "seq {} top {}", seq, top);
                if expect_ok {
                    w.accept(seq);
                    seen.insert(seq);
                    top = top.max(seq);
                }
                prop_assert_eq!(w.top(), top);
            }
        }
    }
}
