//! A Distinguished Name written as text (`C=JP, O=Kyushu IX, CN=gw.kyushu-ix.example`, RDNs
//! separated by `,` or `/`) as the DER an ID_DER_ASN1_DN payload carries. Encoded as
//! strongSwan's `pki --dn` and its identities do: one attribute per RDN, in the order written,
//! PrintableString where the value allows it, else UTF8String; e-mail addresses and domain
//! components as IA5String. Two sides that write the same text send the same octets, and a
//! DN written as in a certificate matches its subject.

use crate::tunnel::ipsec::ike::der::push_len;

/// Attribute types by their usual abbreviations (case-insensitive) [RFC 4519, RFC 2985].
const ATTRIBUTES: &[(&str, &[u8], StringKind)] = &[
    ("C", &[0x55, 0x04, 0x06], StringKind::Printable),
    ("ST", &[0x55, 0x04, 0x08], StringKind::Directory),
    ("S", &[0x55, 0x04, 0x08], StringKind::Directory),
    ("L", &[0x55, 0x04, 0x07], StringKind::Directory),
    ("O", &[0x55, 0x04, 0x0a], StringKind::Directory),
    ("OU", &[0x55, 0x04, 0x0b], StringKind::Directory),
    ("CN", &[0x55, 0x04, 0x03], StringKind::Directory),
    ("SN", &[0x55, 0x04, 0x05], StringKind::Printable),
    ("serialNumber", &[0x55, 0x04, 0x05], StringKind::Printable),
    (
        "E",
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        StringKind::Ia5,
    ),
    (
        "emailAddress",
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        StringKind::Ia5,
    ),
    (
        "DC",
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        StringKind::Ia5,
    ),
];

#[derive(Clone, Copy)]
enum StringKind {
    Printable,
    /// PrintableString if the value allows it, else UTF8String.
    Directory,
    Ia5,
}

const PRINTABLE_STRING: u8 = 0x13;
const UTF8_STRING: u8 = 0x0c;
const IA5_STRING: u8 = 0x16;

fn printable(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
}

/// The DER of `text`, or `None` if an RDN is not `KEY=value` with a known key and a value the
/// key's string type can hold.
pub fn dn_from_text(text: &str) -> Option<Vec<u8>> {
    let mut rdns = Vec::new();
    for rdn in text
        .split([',', '/'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let (key, value) = rdn.split_once('=')?;
        let (key, value) = (key.trim(), value.trim());
        let &(_, oid, kind) = ATTRIBUTES
            .iter()
            .find(|(name, ..)| name.eq_ignore_ascii_case(key))?;
        let tag = match kind {
            StringKind::Printable if printable(value) => PRINTABLE_STRING,
            StringKind::Printable => return None,
            StringKind::Directory if printable(value) => PRINTABLE_STRING,
            StringKind::Directory => UTF8_STRING,
            StringKind::Ia5 if value.is_ascii() => IA5_STRING,
            StringKind::Ia5 => return None,
        };
        let mut atv = vec![0x06];
        push_len(&mut atv, oid.len());
        atv.extend_from_slice(oid);
        atv.push(tag);
        push_len(&mut atv, value.len());
        atv.extend_from_slice(value.as_bytes());
        let mut seq = vec![0x30];
        push_len(&mut seq, atv.len());
        seq.extend_from_slice(&atv);
        let mut set = vec![0x31];
        push_len(&mut set, seq.len());
        set.extend_from_slice(&seq);
        rdns.extend_from_slice(&set);
    }
    if rdns.is_empty() {
        return None;
    }
    let mut out = vec![0x30];
    push_len(&mut out, rdns.len());
    out.extend_from_slice(&rdns);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subject of the strongSwan capture's CA, made by `pki --dn "C=CH, O=Lab, CN=Lab Root
    /// CA"`: the same text gives the same octets.
    #[test]
    fn encodes_as_strongswans_pki_does() {
        let pem = include_str!("../../../../../tests/vectors/ipsec-ca.crt");
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        // SEQUENCE (4-byte header) { SEQUENCE (4-byte header) tbs { [0] version, serial,
        // signature algorithm, issuer ... } }: the issuer of a self-signed CA is its subject.
        let subject = &der[35..35 + 51];
        assert_eq!(subject[0], 0x30);
        assert_eq!(
            dn_from_text("C=CH, O=Lab, CN=Lab Root CA").as_deref(),
            Some(subject)
        );
        assert_eq!(
            dn_from_text("C=CH/O=Lab/CN=Lab Root CA").as_deref(),
            Some(subject)
        );
    }

    #[test]
    fn non_printable_values_are_utf8_and_bad_rdns_refused() {
        let dn = dn_from_text("C=JP, O=長崎病院, CN=vpn.example").unwrap();
        assert!(dn
            .windows(2)
            .any(|w| w[0] == UTF8_STRING && usize::from(w[1]) == "長崎病院".len()));
        assert_eq!(dn_from_text("C=日本"), None, "a country is printable");
        assert_eq!(dn_from_text("XX=1"), None);
        assert_eq!(dn_from_text("CN"), None);
        assert_eq!(dn_from_text(""), None);
    }
}
