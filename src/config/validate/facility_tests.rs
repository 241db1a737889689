//! `trust:`, tenants' `trust` and `facilities:`: a registry that loads, and every rejection
//! with its key path and line (PKI made here with rcgen).

use std::path::PathBuf;

use super::tests::{edit, load, rejects, BASE};
use crate::config::{CrlPolicy, FacilityCertificate};
use crate::facility::testpki::{root, unix_now, Leaf};
use crate::ids::FacilityCode;

/// A directory of PEM files for one test.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "ixgw-facility-config-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = unix_now();
        let ix = root("ix-ca", now);
        let other = root("other-ca", now);
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
        write("ca.crt", ix.pem.as_bytes());
        write("ca.crl", &ix.fresh_crl(&[9]));
        write("other.crl", &other.fresh_crl(&[]));
        write(
            "a.crt",
            Leaf::facility("4212345674", now)
                .issue_pem(&ix, &[])
                .0
                .as_bytes(),
        );
        write(
            "garbage.crt",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// BASE with tenant alpha trusting `ix-ca`, and a registry: clinic-a's facility with a
    /// certificate file, clinic-b's without a certificate.
    fn config(&self) -> String {
        let text = edit(
            BASE,
            "  - name: alpha\n",
            "  - name: alpha\n    trust: [ix-ca]\n",
        );
        format!(
            "{text}trust:\n  - name: ix-ca\n    ca_file: {}\n    crl_files: [{}]\nfacilities:\n  - code: \"4212345674\"\n    name: clinic a\n    tenant: alpha\n    certificate: {}\n  - code: \"4240123457\"\n    name: clinic b\n    tenant: alpha\n    certificate: none\n",
            self.path("ca.crt"),
            self.path("ca.crl"),
            self.path("a.crt"),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_registry_loads() {
    let pki = Pki::new("loads");
    let c = load(&pki.config()).expect("validates");
    assert_eq!(c.trust.len(), 1);
    assert_eq!(c.trust[0].name, "ix-ca");
    assert_eq!(c.trust[0].crl_files.len(), 1);
    assert_eq!(c.trust[0].crl_expired, CrlPolicy::FailClosed);
    assert_eq!(c.tenants[0].trust, ["ix-ca"]);
    let f = c.facilities.as_ref().expect("a registry");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].code, FacilityCode::parse("4212345674").unwrap());
    assert!(matches!(f[0].certificate, FacilityCertificate::File { .. }));
    assert_eq!(f[1].certificate, FacilityCertificate::None);
    // (The example key files a checkout leaves readable by all are warned about too.)
    let warnings: Vec<String> = c
        .warnings
        .iter()
        .filter(|w| !w.message.contains("readable by every user"))
        .map(|w| w.to_string())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("facilities[1].certificate: warning: facility 4240123457 (clinic b) needs no certificate"),
        "{warnings:?}"
    );
    // fail_open is spelt out.
    let open = edit(
        &pki.config(),
        "    crl_files:",
        "    crl_expired: fail_open\n    crl_files:",
    );
    assert_eq!(
        load(&open).unwrap().trust[0].crl_expired,
        CrlPolicy::FailOpen
    );
}

#[test]
fn without_a_registry_check_warns_once() {
    let c = load(BASE).unwrap();
    assert_eq!(c.facilities, None);
    let registry: Vec<_> = c
        .warnings
        .iter()
        .filter(|w| w.key == "facilities")
        .collect();
    assert_eq!(registry.len(), 1, "{:?}", c.warnings);
    assert!(registry[0]
        .message
        .contains("facility certificates are not checked"));
}

#[test]
fn every_peer_needs_a_registered_facility() {
    let pki = Pki::new("unregistered");
    let text = edit(
        &pki.config(),
        "  - code: \"4240123457\"\n    name: clinic b\n    tenant: alpha\n    certificate: none\n",
        "",
    );
    rejects(
        &text,
        "tenants[0].attachments[0].peers[1].facility",
        "facility: \"4240123457\"",
        &["peer `clinic-b` has facility 4240123457, which is not in `facilities:`"],
    );
}

#[test]
fn registry_mistakes_are_named() {
    let pki = Pki::new("mistakes");
    let base = pki.config();
    // The facility is registered in the wrong tenant.
    let text = edit(
        &base,
        "    tenant: alpha\n    certificate: none",
        "    tenant: beta # wrong\n    certificate: none",
    );
    rejects(
        &text,
        "facilities[1].tenant",
        "beta # wrong",
        &["facility 4240123457 is registered in tenant `beta`, but peer `clinic-b` of tenant `alpha` carries it"],
    );
    let text = edit(
        &base,
        "    tenant: alpha\n    certificate: none",
        "    tenant: gamma\n    certificate: none",
    );
    rejects(
        &text,
        "facilities[1].tenant",
        "tenant: gamma",
        &["unknown tenant `gamma`"],
    );
    // A WireGuard peer presents no certificate.
    let text = edit(&base, "certificate: none", "certificate: presented");
    rejects(
        &text,
        "facilities[1].certificate",
        "certificate: presented",
        &["peer `clinic-b` (wireguard) presents none"],
    );
    // The same code twice.
    let text = edit(
        &base,
        "  - code: \"4240123457\"",
        "  - code: \"4212345674\" # dup",
    );
    rejects(
        &text,
        "facilities[1].code",
        "# dup",
        &["duplicate facility name `4212345674`"],
    );
    // A bad check digit in the registry.
    let text = edit(
        &base,
        "  - code: \"4240123457\"",
        "  - code: \"4240123450\"",
    );
    rejects(
        &text,
        "facilities[1].code",
        "code: \"4240123450\"",
        &["the code is 4240123457"],
    );
    // An unknown bundle on a tenant.
    let text = edit(&base, "trust: [ix-ca]", "trust: [hpki]");
    rejects(
        &text,
        "tenants[0].trust[0]",
        "trust: [hpki]",
        &["unknown trust bundle `hpki`"],
    );
    // A certificate file and a tenant that trusts no CA.
    let text = edit(&base, "    trust: [ix-ca]\n", "");
    rejects(
        &text,
        "facilities[0].certificate",
        "/a.crt",
        &["tenant `alpha` trusts no CA"],
    );
}

#[test]
fn pki_files_are_checked() {
    let pki = Pki::new("files");
    let base = pki.config();
    let text = edit(&base, &pki.path("a.crt"), &pki.path("garbage.crt"));
    rejects(
        &text,
        "facilities[0].certificate",
        "garbage.crt",
        &["certificate file", "does not parse"],
    );
    let text = edit(&base, &pki.path("a.crt"), &pki.path("missing.crt"));
    rejects(
        &text,
        "facilities[0].certificate",
        "missing.crt",
        &["cannot read certificate file"],
    );
    let text = edit(
        &base,
        &format!("ca_file: {}", pki.path("ca.crt")),
        &format!("ca_file: {}", pki.path("a.crt")),
    );
    rejects(
        &text,
        "trust[0].ca_file",
        "ca_file:",
        &["CA file", "is not a CA certificate"],
    );
    let text = edit(&base, &pki.path("ca.crl"), &pki.path("other.crl"));
    rejects(
        &text,
        "trust[0].crl_files[0]",
        "other.crl",
        &[
            "CRL file",
            "issued by CN=other-ca, which is not a certificate of this CA bundle",
        ],
    );
    let text = edit(&base, &pki.path("ca.crl"), &pki.path("ca.crt"));
    rejects(
        &text,
        "trust[0].crl_files[0]",
        "crl_files:",
        &["CRL file", "no X509 CRL"],
    );
    let text = edit(
        &base,
        "    crl_files:",
        "    crl_expired: maybe\n    crl_files:",
    );
    rejects(
        &text,
        "trust[0].crl_expired",
        "crl_expired: maybe",
        &["`maybe` is not one of fail_closed or fail_open"],
    );
    // A bundle without CRLs is allowed, and check says what that means.
    let text = edit(
        &base,
        &format!("    crl_files: [{}]\n", pki.path("ca.crl")),
        "",
    );
    let c = load(&text).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.key == "trust[0].name"
            && w.message
                .contains("revocation of its certificates is not checked")),
        "{:?}",
        c.warnings
    );
}
