//! Whether a peer's identity (IDi or IDr) is one its certificate vouches for.
//!
//! strongSwan's rule (`has_subject` of its X.509 certificates, `matches` of its
//! identities), which we follow where it matters for interoperation:
//! * ID_DER_ASN1_DN: the subject, or a directoryName subject alternative name, compared as
//!   [`der::names_match`] does (strongSwan's `compare_dn`).
//! * ID_FQDN: a dNSName, ID_RFC822_ADDR: an rfc822Name; equal ignoring ASCII case.
//!   Never the subject's commonName: strongSwan does not look there either.
//! * ID_IPV4_ADDR, ID_IPV6_ADDR: an iPAddress of the same octets.
//!
//! Wildcards are not honoured on either side. strongSwan treats a `*` in the identity it
//! matches against (its configured remote ID) as a wildcard; here the identity is the one
//! the peer sent, which must name the certificate exactly. A `*` in a certificate's name is
//! an ordinary character, as in strongSwan. ID_KEY_ID (which strongSwan matches against the
//! certificate's hash, subjectKeyIdentifier or key fingerprint) and the other types are
//! refused.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::tunnel::ipsec::ike::der;
use crate::tunnel::ipsec::ike::message::{Id, IdType};

/// Whether `cert` names the identity `id`.
pub(super) fn matches(cert: &X509Certificate<'_>, id: &Id<'_>) -> bool {
    let want = id.data;
    if want.is_empty() {
        return false;
    }
    // strongSwan refuses string identities with a NUL in them (`equals_strcasecmp`).
    let text = |name: &str| !want.contains(&0) && name.as_bytes().eq_ignore_ascii_case(want);
    let names = || {
        cert.subject_alternative_name()
            .ok()
            .flatten()
            .into_iter()
            .flat_map(|ext| ext.value.general_names.iter())
    };
    match id.id_type {
        IdType::DER_ASN1_DN => {
            der::names_match(cert.subject().as_raw(), want)
                || names().any(|n| match n {
                    GeneralName::DirectoryName(dn) => der::names_match(dn.as_raw(), want),
                    _ => false,
                })
        }
        IdType::FQDN => names().any(|n| match n {
            GeneralName::DNSName(name) => text(name),
            _ => false,
        }),
        IdType::RFC822_ADDR => names().any(|n| match n {
            GeneralName::RFC822Name(name) => text(name),
            _ => false,
        }),
        IdType::IPV4_ADDR | IdType::IPV6_ADDR => {
            let len = if id.id_type == IdType::IPV4_ADDR {
                4
            } else {
                16
            };
            want.len() == len
                && names().any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == want))
        }
        _ => false,
    }
}
