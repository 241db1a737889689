//! The cryptographic part of ESP, shared by both directions: what the IV, ICV and alignment
//! of a transform are, and sealing / opening a whole packet laid out as
//! SPI ‖ seq ‖ IV ‖ payload ‖ padding ‖ pad length ‖ next header ‖ ICV.
//!
//! * GCM: nonce = salt ‖ IV, AAD = SPI ‖ seq, or SPI ‖ seq_hi ‖ seq_lo with ESN
//!   [RFC 4106 § 4, § 5]; the tag is the ICV.
//! * CBC + HMAC: encrypt, then the ICV over SPI ‖ seq ‖ IV ‖ ciphertext, followed by seq_hi
//!   with ESN though seq_hi is not sent [RFC 4303 § 2.2.1, § 3.3.2]. The ICV is checked
//!   before anything is decrypted.

use crate::crypto::{AesCbc, AesGcm, CryptoError, Integ};

use super::{EspError, SaConfig, SaConfigError, HEADER_LEN};

const SALT_LEN: usize = 4;

// Inline for the same reason as the AES key schedules: one per SA, read per packet.
#[allow(clippy::large_enum_variant)]
pub(super) enum Transform {
    Gcm { aead: AesGcm, salt: [u8; SALT_LEN] },
    Cbc { cipher: AesCbc, integ: Integ },
}

impl Transform {
    pub(super) fn new(cfg: &SaConfig<'_>) -> Result<Transform, SaConfigError> {
        let encr = cfg.encr;
        if cfg.encr_key.len() != encr.keymat_len() {
            return Err(SaConfigError::EncrKeyLength {
                encr,
                expected: encr.keymat_len(),
                got: cfg.encr_key.len(),
            });
        }
        let (key, salt) = cfg.encr_key.split_at(encr.key_len());
        let key_error = |_: CryptoError| SaConfigError::EncrKeyLength {
            encr,
            expected: encr.keymat_len(),
            got: cfg.encr_key.len(),
        };
        match (encr.is_aead(), cfg.integ) {
            (true, None) => Ok(Transform::Gcm {
                aead: AesGcm::new(key).map_err(key_error)?,
                salt: salt
                    .try_into()
                    .map_err(|_| key_error(CryptoError::KeyLength))?,
            }),
            (false, Some((alg, integ_key))) => Ok(Transform::Cbc {
                cipher: AesCbc::new(key).map_err(key_error)?,
                integ: Integ::new(alg, integ_key).map_err(|_| SaConfigError::IntegKeyLength {
                    integ: alg,
                    expected: alg.key_len(),
                    got: integ_key.len(),
                })?,
            }),
            (true, Some(_)) => Err(SaConfigError::IntegrityNotAllowed(encr)),
            (false, None) => Err(SaConfigError::IntegrityRequired(encr)),
        }
    }

    pub(super) fn iv_len(&self) -> usize {
        match self {
            Transform::Gcm { .. } => 8,
            Transform::Cbc { .. } => AesCbc::IV_LEN,
        }
    }

    pub(super) fn icv_len(&self) -> usize {
        match self {
            Transform::Gcm { .. } => AesGcm::TAG_LEN,
            Transform::Cbc { integ, .. } => integ.icv_len(),
        }
    }

    /// Length of SPI, sequence number and IV: where the payload starts.
    pub(super) fn header_len(&self) -> usize {
        HEADER_LEN + self.iv_len()
    }

    /// What payload ‖ padding ‖ pad length ‖ next header is padded to: the cipher block for
    /// CBC, 4 bytes for GCM (the 32-bit alignment every ESP packet needs [RFC 4303 § 2.4]).
    pub(super) fn align(&self) -> usize {
        match self {
            Transform::Gcm { .. } => 4,
            Transform::Cbc { .. } => AesCbc::BLOCK_LEN,
        }
    }

    /// What a received ciphertext length must be a multiple of: CBC decrypts whole blocks;
    /// GCM is a stream mode, and the tag covers the length, so any length is accepted.
    pub(super) fn cipher_align(&self) -> usize {
        match self {
            Transform::Gcm { .. } => 1,
            Transform::Cbc { .. } => AesCbc::BLOCK_LEN,
        }
    }

    /// Encrypts and authenticates `packet` in place. Header and IV are written, the plaintext
    /// (payload and trailer) follows them, and the last `icv_len` bytes receive the ICV.
    pub(super) fn seal(&self, packet: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (hdr, icv) = (self.header_len(), self.icv_len());
        if packet.len() < hdr + icv {
            return Err(EspError::BufferTooSmall);
        }
        match self {
            Transform::Gcm { aead, salt } => {
                let nonce = gcm_nonce(salt, packet);
                let aad = Aad::new(packet, seq_hi);
                aead.seal_in_place(&nonce, aad.as_ref(), &mut packet[hdr..])
                    .map_err(|_| EspError::BufferTooSmall)
            }
            Transform::Cbc { cipher, integ } => {
                let end = packet.len() - icv;
                let iv = cbc_iv(packet);
                cipher
                    .encrypt_in_place(&iv, &mut packet[hdr..end])
                    .map_err(|_| EspError::Malformed)?;
                let (authenticated, icv_out) = packet.split_at_mut(end);
                let hi = seq_hi.map(u32::to_be_bytes);
                integ
                    .sign(&[authenticated, hi.as_ref().map_or(&[], |h| h)], icv_out)
                    .map_err(|_| EspError::BufferTooSmall)
            }
        }
    }

    /// Verifies and decrypts `packet` in place; the plaintext is left between the IV and the
    /// ICV. The caller has checked that the packet is longer than header and ICV.
    pub(super) fn open(&self, packet: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (hdr, icv) = (self.header_len(), self.icv_len());
        if packet.len() < hdr + icv {
            return Err(EspError::Malformed);
        }
        match self {
            Transform::Gcm { aead, salt } => {
                let nonce = gcm_nonce(salt, packet);
                let aad = Aad::new(packet, seq_hi);
                aead.open_in_place(&nonce, aad.as_ref(), &mut packet[hdr..])
                    .map(|_| ())
                    .map_err(|e| match e {
                        CryptoError::Authentication => EspError::Integrity,
                        _ => EspError::Malformed,
                    })
            }
            Transform::Cbc { cipher, integ } => {
                let end = packet.len() - icv;
                let (authenticated, received) = packet.split_at_mut(end);
                let hi = seq_hi.map(u32::to_be_bytes);
                integ
                    .verify(&[authenticated, hi.as_ref().map_or(&[], |h| h)], received)
                    .map_err(|_| EspError::Integrity)?;
                let iv = cbc_iv(authenticated);
                cipher
                    .decrypt_in_place(&iv, &mut authenticated[hdr..])
                    .map_err(|_| EspError::Malformed)
            }
        }
    }
}

fn gcm_nonce(salt: &[u8; SALT_LEN], packet: &[u8]) -> [u8; AesGcm::NONCE_LEN] {
    let mut nonce = [0u8; AesGcm::NONCE_LEN];
    nonce[..SALT_LEN].copy_from_slice(salt);
    nonce[SALT_LEN..].copy_from_slice(&packet[HEADER_LEN..HEADER_LEN + 8]);
    nonce
}

fn cbc_iv(packet: &[u8]) -> [u8; AesCbc::IV_LEN] {
    let mut iv = [0u8; AesCbc::IV_LEN];
    iv.copy_from_slice(&packet[HEADER_LEN..HEADER_LEN + AesCbc::IV_LEN]);
    iv
}

/// The GCM additional data: SPI ‖ seq_lo, or SPI ‖ seq_hi ‖ seq_lo [RFC 4106 § 5].
struct Aad {
    buf: [u8; 12],
    len: usize,
}

impl Aad {
    fn new(packet: &[u8], seq_hi: Option<u32>) -> Aad {
        let mut buf = [0u8; 12];
        buf[..4].copy_from_slice(&packet[..4]);
        let len = match seq_hi {
            None => {
                buf[4..8].copy_from_slice(&packet[4..8]);
                8
            }
            Some(hi) => {
                buf[4..8].copy_from_slice(&hi.to_be_bytes());
                buf[8..12].copy_from_slice(&packet[4..8]);
                12
            }
        };
        Aad { buf, len }
    }
}

impl AsRef<[u8]> for Aad {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
