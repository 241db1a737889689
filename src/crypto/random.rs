//! Random bytes behind a small trait, so that code needing unpredictable values (CBC IVs, IKE
//! nonces and SPIs) takes them from the caller and tests can substitute a deterministic source.
//! Diffie-Hellman private keys come from [`SystemRandom`] only: ring generates them itself.

use ring::rand::SecureRandom;

use super::CryptoError;

/// A source of random bytes.
pub trait Random {
    /// Fills `out` entirely.
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError>;
}

/// The operating system's generator (`getrandom(2)` on Linux), through ring.
#[derive(Debug, Clone)]
pub struct SystemRandom(pub(super) ring::rand::SystemRandom);

impl SystemRandom {
    pub fn new() -> SystemRandom {
        SystemRandom(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        SystemRandom::new()
    }
}

impl Random for SystemRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        self.0.fill(out).map_err(|_| CryptoError::Random)
    }
}

/// A predictable source for tests: each byte is the next value of a wrapping counter.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct CountingRandom(pub u8);

#[cfg(test)]
impl Random for CountingRandom {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), CryptoError> {
        for b in out {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_random_fills_the_whole_buffer() {
        let mut rng = SystemRandom::new();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill(&mut a).unwrap();
        rng.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }

    #[test]
    fn counting_random_is_deterministic() {
        let mut rng = CountingRandom(254);
        let mut out = [0u8; 4];
        rng.fill(&mut out).unwrap();
        assert_eq!(out, [254, 255, 0, 1]);
    }
}
