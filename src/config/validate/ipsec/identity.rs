//! IKE identities in strongSwan's syntax [strongSwan `identification_create_from_string`].
//!
//! Explicit: `fqdn:NAME`, `asn1dn:DN`, `ipv4:ADDRESS`, `keyid:HEX` (also `keyid:#HEX`).
//! Inferred, in this order: text with `=` is a DN; an IPv4 address is ID_IPV4_ADDR; `@#HEX`
//! is a key ID; `@NAME` and any other text an FQDN. Forms ixgw does not support (e-mail
//! addresses, IPv6, subnets, wildcards) are named as such rather than misread.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::super::Problem;
use crate::config::IkeIdentity;

/// Why text is not an identity ixgw accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::config::validate) enum IdentityError {
    Malformed(String),
    Unsupported(&'static str),
}

impl IdentityError {
    pub(in crate::config::validate) fn problem(self, value: &str) -> Problem {
        match self {
            IdentityError::Malformed(reason) => Problem::Identity {
                value: value.to_string(),
                reason,
            },
            IdentityError::Unsupported(kind) => Problem::UnsupportedIdentity {
                value: value.to_string(),
                kind,
            },
        }
    }
}

/// DN attribute types strongSwan knows by name, in the spelling it prints [RFC 4519 § 2,
/// RFC 5280 § 4.1.2.4]; matched without regard to case.
const DN_ATTRIBUTES: &[&str] = &[
    "C",
    "ST",
    "L",
    "O",
    "OU",
    "CN",
    "SN",
    "serialNumber",
    "E",
    "emailAddress",
    "DC",
    "UID",
    "T",
    "D",
    "N",
    "G",
    "I",
    "ID",
    "dnQualifier",
    "pseudonym",
    "postalAddress",
    "postalCode",
    "street",
    "UN",
    "unstructuredName",
    "UA",
    "unstructuredAddress",
    "EN",
    "employeeNumber",
    "TCGID",
];

pub(in crate::config::validate) fn parse_identity(s: &str) -> Result<IkeIdentity, IdentityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(IdentityError::Malformed("it is empty".into()));
    }
    if let Some((prefix, rest)) = s.split_once(':') {
        match prefix.to_ascii_lowercase().as_str() {
            "fqdn" => return fqdn(rest.trim()),
            "asn1dn" => return dn(rest.trim()),
            "ipv4" => {
                return rest.trim().parse().map(IkeIdentity::Ipv4).map_err(|_| {
                    IdentityError::Malformed("the text after `ipv4:` is not an IPv4 address".into())
                })
            }
            "keyid" => {
                let hex = rest.trim();
                return key_id(hex.strip_prefix('#').unwrap_or(hex));
            }
            "ipv6" | "ipv6net" | "ipv6range" => {
                return Err(IdentityError::Unsupported("an IPv6 identity"))
            }
            "ipv4net" | "ipv4range" => {
                return Err(IdentityError::Unsupported(
                    "an IPv4 subnet or range identity",
                ))
            }
            "email" | "rfc822" | "userfqdn" => {
                return Err(IdentityError::Unsupported(
                    "an e-mail address identity (ID_RFC822_ADDR)",
                ))
            }
            "dns" | "asn1gn" | "xmppaddr" => {
                return Err(IdentityError::Unsupported("a general-name identity"))
            }
            _ => {}
        }
    }
    if s.contains('=') {
        return dn(s);
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(IkeIdentity::Ipv4(a));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Err(IdentityError::Unsupported("an IPv6 identity"));
    }
    if let Some(hex) = s.strip_prefix("@#") {
        return key_id(hex);
    }
    if s.starts_with("@@") || (!s.starts_with('@') && s.contains('@')) {
        return Err(IdentityError::Unsupported(
            "an e-mail address identity (ID_RFC822_ADDR)",
        ));
    }
    if s.starts_with('%') {
        return Err(IdentityError::Unsupported(
            "a wildcard identity (every peer needs its own)",
        ));
    }
    fqdn(s.strip_prefix('@').unwrap_or(s))
}

/// A DNS name: dot-separated labels of 1 to 63 letters, digits and hyphens, not starting or
/// ending with a hyphen, 253 characters at most [RFC 1035 § 2.3.1, RFC 1123 § 2.1].
fn fqdn(name: &str) -> Result<IkeIdentity, IdentityError> {
    let bad = |reason: String| Err(IdentityError::Malformed(reason));
    if name.is_empty() {
        return bad("the name is empty".into());
    }
    if name.len() > 253 {
        return bad(format!(
            "an FQDN has at most 253 characters, this one {}",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("an FQDN has no empty labels (no leading, trailing or double dots)".into());
        }
        if label.len() > 63 {
            return bad(format!("the label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return bad(format!(
                "`{c}` is not allowed in an FQDN (letters, digits, `-` and `.`)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad(format!("the label `{label}` starts or ends with `-`"));
        }
    }
    Ok(IkeIdentity::Fqdn(name.to_string()))
}

/// A distinguished name as `KEY=value` RDNs separated by `,` or `/` (a leading `/` is
/// allowed, as OpenSSL prints them). Kept as `KEY=value, KEY=value` with the attribute types
/// spelled as strongSwan prints them.
fn dn(text: &str) -> Result<IkeIdentity, IdentityError> {
    let bad = |reason: String| Err(IdentityError::Malformed(reason));
    let body = text.strip_prefix('/').unwrap_or(text);
    let mut rdns = Vec::new();
    for part in body.split([',', '/']) {
        let part = part.trim();
        if part.is_empty() {
            return bad("a distinguished name has no empty RDNs (doubled `,` or `/`)".into());
        }
        let Some((key, value)) = part.split_once('=') else {
            return bad(format!("the RDN `{part}` is not KEY=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            return bad(format!("the RDN `{part}` has no value"));
        }
        let is_oid = !key.is_empty()
            && key.split('.').count() >= 2
            && key
                .split('.')
                .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
        let key = match DN_ATTRIBUTES.iter().find(|k| k.eq_ignore_ascii_case(key)) {
            Some(known) => *known,
            None if is_oid => key,
            None => {
                return bad(format!(
                    "`{key}` is not a DN attribute type (C, ST, L, O, OU, CN, SN, E, DC, UID, ... or an OID like 2.5.4.3)"
                ))
            }
        };
        rdns.push(format!("{key}={value}"));
    }
    Ok(IkeIdentity::Dn(rdns.join(", ")))
}

fn key_id(hex: &str) -> Result<IkeIdentity, IdentityError> {
    decode_hex(hex.trim())
        .filter(|bytes| !bytes.is_empty())
        .map(IkeIdentity::KeyId)
        .ok_or_else(|| {
            IdentityError::Malformed(
                "a key ID is an even number of hex digits (keyid:0a1b2c or @#0a1b2c)".into(),
            )
        })
}

/// Hex digits, two per byte, upper or lower case.
pub(in crate::config::validate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> IkeIdentity {
        parse_identity(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn inferred_forms_follow_strongswan() {
        assert_eq!(
            ok("gw.ix.example"),
            IkeIdentity::Fqdn("gw.ix.example".into())
        );
        assert_eq!(
            ok("@gw.ix.example"),
            IkeIdentity::Fqdn("gw.ix.example".into())
        );
        assert_eq!(
            ok("192.0.2.1"),
            IkeIdentity::Ipv4(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(ok("@#0A1b"), IkeIdentity::KeyId(vec![0x0a, 0x1b]));
        assert_eq!(
            ok("C=JP, O=IX, CN=gw.ix.example"),
            IkeIdentity::Dn("C=JP, O=IX, CN=gw.ix.example".into())
        );
        assert_eq!(
            ok("/c=JP/o=IX/cn=gw"),
            IkeIdentity::Dn("C=JP, O=IX, CN=gw".into())
        );
        assert_eq!(
            ok("2.5.4.3=gw, O=IX"),
            IkeIdentity::Dn("2.5.4.3=gw, O=IX".into())
        );
    }

    #[test]
    fn explicit_prefixes_decide_the_type() {
        assert_eq!(ok("fqdn:gw"), IkeIdentity::Fqdn("gw".into()));
        assert_eq!(ok("asn1dn:CN=gw"), IkeIdentity::Dn("CN=gw".into()));
        assert_eq!(
            ok("ipv4:10.1.2.3"),
            IkeIdentity::Ipv4(Ipv4Addr::new(10, 1, 2, 3))
        );
        assert_eq!(ok("keyid:00ff"), IkeIdentity::KeyId(vec![0, 0xff]));
        assert_eq!(ok("keyid:#00ff"), IkeIdentity::KeyId(vec![0, 0xff]));
        assert_eq!(ok("FQDN:gw"), IkeIdentity::Fqdn("gw".into()));
    }

    #[test]
    fn identities_print_as_strongswan_reads_them() {
        for s in [
            "gw.ix.example",
            "C=JP, O=IX, CN=gw",
            "192.0.2.1",
            "keyid:#00ff",
        ] {
            assert_eq!(ok(s).to_string(), s);
            assert_eq!(ok(&ok(s).to_string()), ok(s));
        }
    }

    #[test]
    fn malformed_and_unsupported_forms_are_told_apart() {
        for s in [
            "",
            "gw..ix",
            "gw.ix.",
            "-gw.ix",
            "gw_1.ix",
            "fqdn:",
            "ipv4:300.1.1.1",
            "keyid:abc",
            "@#zz",
            "CN=",
            "C=JP,,CN=gw",
            "XX=1",
        ] {
            assert!(
                matches!(parse_identity(s), Err(IdentityError::Malformed(_))),
                "{s}: {:?}",
                parse_identity(s)
            );
        }
        for s in [
            "alice@ix.example",
            "@@alice@ix.example",
            "email:alice@ix.example",
            "2001:db8::1",
            "ipv6:2001:db8::1",
            "%any",
            "ipv4net:10.0.0.0/8",
        ] {
            assert!(
                matches!(parse_identity(s), Err(IdentityError::Unsupported(_))),
                "{s}: {:?}",
                parse_identity(s)
            );
        }
        assert!(parse_identity(&"a".repeat(254)).is_err());
    }

    proptest::proptest! {
        /// Any text is an identity or an error, never a panic, and an identity reads back as
        /// itself from what it prints.
        #[test]
        fn any_text_parses_or_is_refused(s in "\\PC{0,40}|[@#0-9a-fA-F:=,/. ]{0,40}") {
            if let Ok(id) = parse_identity(&s) {
                proptest::prop_assert_eq!(parse_identity(&id.to_string()), Ok(id));
            }
        }
    }
}
