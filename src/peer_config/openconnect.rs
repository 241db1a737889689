//! The command line a facility runs for a `tls` peer: the stock `openconnect` client
//! (`--protocol=anyconnect`), logging in with the facility's certificate, pinned to the
//! gateway's certificate so that no CA file is needed on the facility's side.

use base64::Engine as _;

use super::{gateway_host, header, PeerConfigError};
use crate::config::{AttachmentKind, Config, TlsAttachment, TlsPeer};

/// Renders the openconnect command line for peer `name`.
pub fn openconnect(config: &Config, name: &str) -> Result<String, PeerConfigError> {
    let found = config.tenants.iter().find_map(|t| {
        t.attachments.iter().find_map(|a| match &a.kind {
            AttachmentKind::Tls(tls) => tls
                .peers
                .iter()
                .find(|p| p.name == name)
                .map(|p| (t, a, tls, p)),
            _ => None,
        })
    });
    let Some((tenant, attachment, tls, peer)) = found else {
        return Err(PeerConfigError::UnknownPeer {
            file: config.source.display().to_string(),
            peer: name.into(),
        });
    };
    let host = gateway_host(config, &attachment.name, tls.listen)?;
    let url = match host {
        std::net::IpAddr::V6(a) => format!("https://[{a}]:{}/", tls.listen.port()),
        std::net::IpAddr::V4(a) => format!("https://{a}:{}/", tls.listen.port()),
    };
    let mut out = header(config, &peer.name, peer.facility, &tenant.name);
    out.push_str(&comments(tls, peer));
    let pin = pin(tls).map_or(String::new(), |p| format!(" \\\n  --servercert {p}"));
    out.push_str(&format!(
        "openconnect --protocol=anyconnect \\\n  --certificate {name}.crt --sslkey {name}.key{pin} \\\n  {url}\n",
    ));
    Ok(out)
}

fn comments(tls: &TlsAttachment, peer: &TlsPeer) -> String {
    format!(
        "#\n\
         # Files next to this command: {name}.crt, the facility certificate of facility {code}\n\
         # (PEM, issued by a CA of {ca}; `ixgw ca issue` makes one) and {name}.key, its key.\n\
         # The gateway's certificate is pinned (--servercert): no CA file is needed.\n\
         # The gateway hands the client an address of {pool} and routes into the tunnel\n\
         # only what the facility's policies reach; DTLS is not offered (CSTP over TLS only).\n\
         # Run as root (it creates the tun device), or see openconnect(8) for --script-tun.\n",
        name = peer.name,
        code = peer.facility,
        ca = tls.client_ca.join(", "),
        pool = tls.pool,
    )
}

/// openconnect's pin of the gateway's certificate: `pin-sha256:` and the base64 SHA-256 of
/// its SubjectPublicKeyInfo.
fn pin(tls: &TlsAttachment) -> Option<String> {
    let leaf = tls.credentials.certificates.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    Some(format!(
        "pin-sha256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    ))
}
