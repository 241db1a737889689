//! The files an IPsec attachment reads at check time: pre-shared keys (text, `0x` hex or `0s`
//! base64, as strongSwan writes secrets), and PEM certificates, CA certificates and private
//! keys, kept as DER. Certificates are parsed as X.509 by webpki. Messages name the file and
//! what is wrong, never a secret's content.

use base64::Engine;
use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::CertificateDer;

use super::identity::decode_hex;
use super::*;
use crate::config::{GatewayCredentials, KeyFormat, PrivateKey, Secret};

/// The shortest pre-shared key ixgw takes, in bytes.
const PSK_MIN: usize = 16;

impl Validator {
    /// `certificate_file` and `private_key_file` of attachment `ak`: both or neither.
    pub(in crate::config::validate) fn gateway_credentials(
        &self,
        ak: &str,
        certificate_file: &Option<String>,
        private_key_file: &Option<String>,
    ) -> Result<Option<GatewayCredentials>, ConfigError> {
        let (cert, key) = match (certificate_file, private_key_file) {
            (None, None) => return Ok(None),
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => {
                return Err(self.err(
                    &format!("{ak}.certificate_file"),
                    Problem::CredentialPair {
                        given: "certificate_file",
                        missing: "private_key_file",
                    },
                ))
            }
            (None, Some(_)) => {
                return Err(self.err(
                    &format!("{ak}.private_key_file"),
                    Problem::CredentialPair {
                        given: "private_key_file",
                        missing: "certificate_file",
                    },
                ))
            }
        };
        let ck = format!("{ak}.certificate_file");
        let (certificate_file, bytes) = self.read_file(&ck, cert, "certificate", PEM_FILE_LIMIT)?;
        let file = certificate_file.display().to_string();
        let certificates = certificates(&bytes).map_err(|reason| {
            self.err(
                &ck,
                Problem::CertificateFile {
                    file: file.clone(),
                    reason,
                },
            )
        })?;
        let kk = format!("{ak}.private_key_file");
        let (private_key_file, bytes) = self.read_file(&kk, key, "private key", PEM_FILE_LIMIT)?;
        let file = private_key_file.display().to_string();
        let private_key = private_key(&bytes)
            .map_err(|reason| self.err(&kk, Problem::PrivateKeyFile { file, reason }))?;
        Ok(Some(GatewayCredentials {
            certificate_file,
            certificates,
            private_key_file,
            private_key,
        }))
    }

    /// A peer's `ca_file`: one or more CA certificates.
    pub(super) fn ca_file(
        &self,
        key: &str,
        s: &str,
    ) -> Result<(PathBuf, Vec<CertificateDer<'static>>), ConfigError> {
        let (path, bytes) = self.read_file(key, s, "CA", PEM_FILE_LIMIT)?;
        let cas = ca_certificates(&bytes).map_err(|reason| {
            self.err(
                key,
                Problem::CaFile {
                    file: path.display().to_string(),
                    reason,
                },
            )
        })?;
        Ok((path, cas))
    }

    /// A peer's `psk_file`: one line, the secret as text, `0x` hex or `0s` base64.
    pub(super) fn psk_file(&self, key: &str, s: &str) -> Result<(PathBuf, Secret), ConfigError> {
        let (path, bytes) = self.read_file(key, s, "pre-shared key", KEY_FILE_LIMIT)?;
        let file = path.display().to_string();
        let malformed = |reason| {
            self.err(
                key,
                Problem::PskFile {
                    file: file.clone(),
                    reason,
                },
            )
        };
        if bytes.len() as u64 > KEY_FILE_LIMIT {
            return Err(malformed("the file is too large"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed("not text"))?;
        let psk = psk_bytes(text).map_err(malformed)?;
        if psk.len() < PSK_MIN {
            return Err(self.err(
                key,
                Problem::PskTooShort {
                    file: file.clone(),
                    len: psk.len(),
                    min: PSK_MIN,
                },
            ));
        }
        Ok((path, psk))
    }
}

/// The secret of a pre-shared key file's text: one line, without the whitespace around it.
pub(super) fn psk_bytes(text: &str) -> Result<Secret, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the file is empty");
    }
    if text.contains(['\n', '\r']) {
        return Err("more than one line");
    }
    let bytes = if let Some(hex) = text.strip_prefix("0x") {
        decode_hex(hex.trim()).ok_or("not hex digits after 0x")?
    } else if let Some(b64) = text.strip_prefix("0s") {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "not base64 after 0s")?
    } else {
        text.as_bytes().to_vec()
    };
    Ok(Secret::new(bytes))
}

/// The PEM blocks of a file, each with its DER. Blocks with labels the parser does not know
/// are skipped. The parser's own messages are not passed on: they may quote the file.
fn sections(bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            match e {
                pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line",
                pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
                pem::Error::Base64Decode(_) => "a PEM block is not valid base64",
                pem::Error::SectionTooLarge => "a PEM block is too large",
                _ => "not a PEM file",
            }
            .to_string()
        })
}

fn too_large(bytes: &[u8]) -> Option<String> {
    (bytes.len() as u64 > PEM_FILE_LIMIT)
        .then(|| format!("the file is larger than {PEM_FILE_LIMIT} bytes"))
}

fn is_private_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey
    )
}

/// The certificates of a certificate file, in order; each must parse as X.509. A private key
/// in the file is refused: certificate files are often readable by more users than keys.
fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    certificate_blocks(
        bytes,
        "it holds a private key: keep the key in private_key_file only",
        |cert| webpki::EndEntityCert::try_from(cert).map(drop),
    )
}

/// The CA certificates of a CA file; each must parse as a trust anchor.
fn ca_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    certificate_blocks(
        bytes,
        "it holds a private key, which a CA file never needs",
        |cert| webpki::anchor_from_trusted_cert(cert).map(drop),
    )
}

/// The CERTIFICATE blocks of a PEM file, each accepted by `parse`; a private key block is
/// refused with `key_found`.
fn certificate_blocks(
    bytes: &[u8],
    key_found: &str,
    parse: impl Fn(&CertificateDer<'static>) -> Result<(), webpki::Error>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    if let Some(reason) = too_large(bytes) {
        return Err(reason);
    }
    let mut out = Vec::new();
    for (kind, der) in sections(bytes)? {
        if is_private_key(kind) {
            return Err(key_found.into());
        }
        if kind != SectionKind::Certificate {
            continue;
        }
        let cert = CertificateDer::from(der);
        parse(&cert).map_err(|e| {
            format!(
                "CERTIFICATE block {} is not an X.509 certificate ({e})",
                out.len() + 1
            )
        })?;
        out.push(cert);
    }
    if out.is_empty() {
        return Err("it holds no CERTIFICATE block".into());
    }
    Ok(out)
}

/// The one private key of a key file: PKCS#8, SEC1 or PKCS#1, unencrypted.
fn private_key(bytes: &[u8]) -> Result<PrivateKey, String> {
    if let Some(reason) = too_large(bytes) {
        return Err(reason);
    }
    let encrypted = |marker: &[u8]| bytes.windows(marker.len()).any(|w| w == marker);
    if encrypted(b"ENCRYPTED PRIVATE KEY") || encrypted(b"Proc-Type: 4,ENCRYPTED") {
        return Err(
            "the key is encrypted; ixgw reads unencrypted keys (`openssl pkey -in FILE -out NEW` writes one)"
                .into(),
        );
    }
    let mut keys = Vec::new();
    for (kind, der) in sections(bytes)? {
        let format = match kind {
            SectionKind::PrivateKey => KeyFormat::Pkcs8,
            SectionKind::EcPrivateKey => KeyFormat::Sec1,
            SectionKind::RsaPrivateKey => KeyFormat::Pkcs1,
            _ => continue,
        };
        keys.push(PrivateKey {
            format,
            der: Secret::new(der),
        });
    }
    let key = match keys.len() {
        0 => return Err("it holds no PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block".into()),
        1 => keys.remove(0),
        n => return Err(format!("it holds {n} private keys; give exactly one")),
    };
    if !is_der_sequence(key.der.expose()) {
        return Err("the key block is not a DER structure".into());
    }
    Ok(key)
}

/// Whether `der` is exactly one DER SEQUENCE (every private key format is one).
fn is_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, body) = match *first {
        n @ 0..=0x7f => (usize::from(n), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            if rest.len() < n {
                return false;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        }
        _ => return false,
    };
    body.len() == len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_text_hex_and_base64_as_strongswan_writes_them() {
        let psk = |t: &str| psk_bytes(t).map(|s| s.expose().to_vec());
        assert_eq!(
            psk("correct horse battery\n").unwrap(),
            b"correct horse battery"
        );
        assert_eq!(psk("0x00ff10\n").unwrap(), [0, 0xff, 0x10]);
        assert_eq!(psk("0sAP8Q").unwrap(), [0, 0xff, 0x10]);
        assert_eq!(psk("0xzz"), Err("not hex digits after 0x"));
        assert_eq!(psk("0s!!"), Err("not base64 after 0s"));
        assert_eq!(psk("\n"), Err("the file is empty"));
        assert_eq!(psk("a\nb\n"), Err("more than one line"));
    }

    #[test]
    fn der_sequences_are_checked_by_their_length() {
        assert!(is_der_sequence(&[0x30, 0x02, 0x05, 0x00]));
        assert!(!is_der_sequence(&[0x30, 0x03, 0x05, 0x00]));
        assert!(!is_der_sequence(&[0x04, 0x02, 0x05, 0x00]));
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert!(is_der_sequence(&long));
        assert!(!is_der_sequence(&[]));
    }
}
