//! Stateless cookies [RFC 7296 § 2.6]: under load the responder answers IKE_SA_INIT with
//! `COOKIE = version | HMAC-SHA-256(secret, Ni | IPi | SPIi)` and keeps no state until the
//! initiator repeats its request with the cookie. The secret is replaced periodically; cookies
//! of the previous secret stay valid for one more period.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::crypto::{Prf, PrfAlg, Random};

use super::ctx::after;

/// Length of our cookies: a version octet and a SHA-256 MAC.
pub(super) const COOKIE_LEN: usize = 33;

pub(super) struct CookieJar {
    version: u8,
    current: Prf,
    previous: Option<Prf>,
    rotate_at: Instant,
    lifetime: Duration,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A fresh secret. Should the system generator fail, the key is whatever part it filled:
/// nothing else of IKE works then either.
fn secret(rng: &mut dyn Random) -> Prf {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    let _ = rng.fill(&mut key[..]);
    Prf::new(PrfAlg::HmacSha256, &key[..])
}

fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl CookieJar {
    pub(super) fn new(rng: &mut dyn Random, now: Instant, lifetime: Duration) -> CookieJar {
        CookieJar {
            version: 0,
            current: secret(rng),
            previous: None,
            rotate_at: after(now, lifetime),
            lifetime,
        }
    }

    /// Replaces the secret if its time has come.
    pub(super) fn rotate(&mut self, rng: &mut dyn Random, now: Instant) {
        if now < self.rotate_at {
            return;
        }
        let next = secret(rng);
        self.previous = Some(std::mem::replace(&mut self.current, next));
        self.version = self.version.wrapping_add(1);
        self.rotate_at = after(now, self.lifetime);
    }

    pub(super) fn next_rotation(&self) -> Instant {
        self.rotate_at
    }

    fn mac(key: &Prf, version: u8, ni: &[u8], from: SocketAddr, spi_i: u64) -> [u8; COOKIE_LEN] {
        let m = key.compute(&[ni, &ip_octets(from.ip()), &spi_i.to_be_bytes()]);
        let mut out = [0u8; COOKIE_LEN];
        out[0] = version;
        out[1..].copy_from_slice(&m.as_ref()[..COOKIE_LEN - 1]);
        out
    }

    /// The cookie for an initiator.
    pub(super) fn issue(&self, ni: &[u8], from: SocketAddr, spi_i: u64) -> [u8; COOKIE_LEN] {
        Self::mac(&self.current, self.version, ni, from, spi_i)
    }

    /// Whether `cookie` is one we issued to this initiator under the current or the previous
    /// secret.
    pub(super) fn check(&self, cookie: &[u8], ni: &[u8], from: SocketAddr, spi_i: u64) -> bool {
        let Some(&version) = cookie.first() else {
            return false;
        };
        let key = if version == self.version {
            &self.current
        } else if version == self.version.wrapping_sub(1) {
            match &self.previous {
                Some(p) => p,
                None => return false,
            }
        } else {
            return false;
        };
        let want = Self::mac(key, version, ni, from, spi_i);
        cookie.len() == COOKIE_LEN && bool::from(want.ct_eq(cookie))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SystemRandom;

    #[test]
    fn cookies_bind_the_initiator_and_survive_one_rotation() {
        let mut rng = SystemRandom::new();
        let now = Instant::now();
        let life = Duration::from_secs(60);
        let mut jar = CookieJar::new(&mut rng, now, life);
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:500".parse().unwrap();
        let c = jar.issue(&[1; 32], a, 7);
        assert!(jar.check(&c, &[1; 32], a, 7));
        assert!(
            jar.check(&c, &[1; 32], "192.0.2.1:4500".parse().unwrap(), 7),
            "the port is not bound"
        );
        assert!(!jar.check(&c, &[1; 32], b, 7));
        assert!(!jar.check(&c, &[2; 32], a, 7));
        assert!(!jar.check(&c, &[1; 32], a, 8));
        assert!(!jar.check(&c[..32], &[1; 32], a, 7));
        jar.rotate(&mut rng, now + life);
        assert!(jar.check(&c, &[1; 32], a, 7));
        jar.rotate(&mut rng, now + life * 2);
        assert!(!jar.check(&c, &[1; 32], a, 7));
    }
}
