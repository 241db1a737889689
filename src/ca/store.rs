//! A CA in a directory: the file layer over [`super::cert`] and [`super::crl`].
//!
//! Files: `ca.crt` (PEM), `ca.key` (PKCS#8 PEM, mode 0600), `crl.pem`, `revoked.txt` (a line
//! `SERIAL_HEX RFC3339_TIME REASON` per revoked certificate), `crl_number` (the number of the
//! CRL in `crl.pem`), for an intermediate `chain.pem` (it, then its parent), and `.lock`,
//! which `revoke` and `crl` hold (flock) while they change the list and the CRL.
//!
//! Every file is written to a temporary file in the same directory, synced, then renamed over
//! the target (or hard-linked, where nothing may be overwritten), and the directory synced: a
//! daemon watching `crl.pem` sees the old CRL or the new one, never half of one. Keys are
//! created 0600 from the start.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rustix::fs::FlockOperation;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::cert::{self, Authority, CaRequest, LeafRequest, LoadError, Serial, SignError};
use super::crl::{self, LineError, Reason, Revoked};
use super::{add, rfc3339, InputError};
use crate::crypto::Random;
use crate::ids::FacilityCode;

pub const CERT: &str = "ca.crt";
pub const KEY: &str = "ca.key";
pub const CRL: &str = "crl.pem";
pub const REVOKED: &str = "revoked.txt";
pub const CRL_NUMBER: &str = "crl_number";
pub const CHAIN: &str = "chain.pem";
const LOCK: &str = ".lock";

/// Mode of private keys.
pub const KEY_MODE: u32 = 0o600;
/// Mode of everything else.
pub const PUBLIC_MODE: u32 = 0o644;

/// A file of a CA directory (or a file given to it) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Io(io::Error),
    #[error("already exists; refusing to overwrite it")]
    Exists,
    #[error("{0}")]
    Load(LoadError),
    #[error("{0}")]
    Sign(SignError),
    #[error("{0}")]
    Line(LineError),
    #[error("not a CRL number (a decimal integer)")]
    CrlNumber,
    #[error("no PEM CERTIFICATE block that parses as X.509")]
    NoCertificate,
    #[error("was not issued by the CA in {}", .0.display())]
    NotIssued(PathBuf),
    #[error("is the CA's own certificate")]
    OwnCertificate,
    #[error("serial {serial} was already revoked at {time}")]
    AlreadyRevoked { serial: Serial, time: String },
}

fn at(path: &Path) -> impl FnOnce(Problem) -> StoreError + '_ {
    move |problem| StoreError {
        path: path.to_owned(),
        problem,
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |e| {
        let problem = match e.kind() {
            io::ErrorKind::AlreadyExists => Problem::Exists,
            _ => Problem::Io(e),
        };
        at(path)(problem)
    }
}

fn read(path: &Path) -> Result<String, StoreError> {
    fs::read_to_string(path).map_err(io_at(path))
}

/// The CA of `dir`: `ca.crt` and `ca.key`.
pub fn load(dir: &Path) -> Result<Authority, StoreError> {
    let (cert, key) = (dir.join(CERT), dir.join(KEY));
    let cert_pem = read(&cert)?;
    let key_pem = zeroize::Zeroizing::new(read(&key)?);
    Authority::load(&cert_pem, &key_pem).map_err(|e| {
        let path = match e {
            LoadError::Key(_) | LoadError::KeyMismatch => &key,
            _ => &cert,
        };
        at(path)(Problem::Load(e))
    })
}

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    pub dir: PathBuf,
    pub parent: Option<PathBuf>,
    pub serial: Serial,
    pub not_after: SystemTime,
    pub files: Vec<PathBuf>,
}

impl fmt::Display for Initialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.parent {
            Some(p) => write!(f, "intermediate CA (signed by {})", p.display())?,
            None => f.write_str("root CA")?,
        }
        write!(
            f,
            " serial {} notAfter {}:",
            self.serial,
            rfc3339(self.not_after)
        )?;
        self.files
            .iter()
            .try_for_each(|p| write!(f, " {}", p.display()))
    }
}

/// Makes a CA in `dir` (created if missing, 0700): self-signed, or an intermediate signed by
/// the CA in `parent`; an empty CRL valid for `crl_validity`. Refuses if any of its files
/// exists.
pub fn init(
    dir: &Path,
    req: &CaRequest,
    parent: Option<&Path>,
    crl_validity: Duration,
    now: SystemTime,
    rng: &mut impl Random,
) -> Result<Initialized, StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))?;
    for name in [CERT, KEY, CRL, REVOKED, CRL_NUMBER, CHAIN] {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            return Err(at(&path)(Problem::Exists));
        }
    }
    let parent_ca = parent.map(load).transpose()?;
    let cert_path = dir.join(CERT);
    let issued = match cert::new_ca(req, parent_ca.as_ref(), rng) {
        Err(e @ SignError::ParentIsIntermediate) => {
            let parent = parent.unwrap_or(dir).join(CERT);
            return Err(at(&parent)(Problem::Sign(e)));
        }
        r => r.map_err(|e| at(&cert_path)(Problem::Sign(e)))?,
    };
    let ca = Authority::load(&issued.cert_pem, &issued.key_pem)
        .map_err(|e| at(&cert_path)(Problem::Load(e)))?;
    let next_update = add(now, crl_validity).map_err(|e| input_at(dir.join(CRL), e))?;
    let crl_pem = crl::sign(&ca, &[], 1, now, next_update)
        .map_err(|e| at(&dir.join(CRL))(Problem::Sign(e)))?;

    create(&dir.join(KEY), issued.key_pem.as_bytes(), KEY_MODE)?;
    create(&cert_path, issued.cert_pem.as_bytes(), PUBLIC_MODE)?;
    let mut files = vec![cert_path, dir.join(KEY)];
    if let Some(parent) = &parent_ca {
        let chain = format!("{}{}", issued.cert_pem, pem_text(parent.cert_pem()));
        create(&dir.join(CHAIN), chain.as_bytes(), PUBLIC_MODE)?;
        files.push(dir.join(CHAIN));
    }
    create(&dir.join(REVOKED), b"", PUBLIC_MODE)?;
    create(&dir.join(CRL_NUMBER), b"1\n", PUBLIC_MODE)?;
    create(&dir.join(CRL), crl_pem.as_bytes(), PUBLIC_MODE)?;
    files.push(dir.join(CRL));
    Ok(Initialized {
        dir: dir.to_owned(),
        parent: parent.map(Path::to_owned),
        serial: issued.serial,
        not_after: issued.not_after,
        files,
    })
}

/// What `issue` made.
#[derive(Debug)]
pub struct IssuedFiles {
    pub facility: FacilityCode,
    pub serial: Serial,
    pub not_after: SystemTime,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl fmt::Display for IssuedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "facility {} serial {} notAfter {}: {} {}",
            self.facility,
            self.serial,
            rfc3339(self.not_after),
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Issues a facility certificate from the CA in `dir` into `PREFIX.crt` (the certificate,
/// then the CA's when the CA is an intermediate) and `PREFIX.key` (0600). Refuses to
/// overwrite either.
pub fn issue(
    dir: &Path,
    req: &LeafRequest,
    prefix: &Path,
    rng: &mut impl Random,
) -> Result<IssuedFiles, StoreError> {
    let (cert_path, key_path) = (suffixed(prefix, ".crt"), suffixed(prefix, ".key"));
    for path in [&cert_path, &key_path] {
        if path.symlink_metadata().is_ok() {
            return Err(at(path)(Problem::Exists));
        }
    }
    let ca = load(dir)?;
    let issued = cert::issue(&ca, req, rng).map_err(|e| at(&cert_path)(Problem::Sign(e)))?;
    let mut pem = issued.cert_pem.clone();
    if ca.is_intermediate() {
        pem.push_str(&pem_text(ca.cert_pem()));
    }
    create(&key_path, issued.key_pem.as_bytes(), KEY_MODE)?;
    create(&cert_path, pem.as_bytes(), PUBLIC_MODE)?;
    Ok(IssuedFiles {
        facility: req.facility,
        serial: issued.serial,
        not_after: issued.not_after,
        cert: cert_path,
        key: key_path,
    })
}

/// What `crl` or `revoke` signed.
#[derive(Debug)]
pub struct CrlSigned {
    pub path: PathBuf,
    pub number: u64,
    pub revoked: usize,
    pub this_update: SystemTime,
    pub next_update: SystemTime,
}

impl fmt::Display for CrlSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: CRL number {}, {} revoked, thisUpdate {}, nextUpdate {}",
            self.path.display(),
            self.number,
            self.revoked,
            rfc3339(self.this_update),
            rfc3339(self.next_update)
        )
    }
}

/// What `revoke` did.
#[derive(Debug)]
pub struct RevokedCert {
    pub serial: Serial,
    pub reason: Reason,
    pub cert: PathBuf,
    pub crl: CrlSigned,
}

impl fmt::Display for RevokedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revoked serial {} ({}) of {}; {}",
            self.serial,
            self.reason.name(),
            self.cert.display(),
            self.crl
        )
    }
}

/// Revokes the certificate in `cert_file` (its first CERTIFICATE block), which the CA in
/// `dir` must have issued, at `now`: adds it to `revoked.txt` and signs a new CRL valid for
/// `crl_validity`.
pub fn revoke(
    dir: &Path,
    cert_file: &Path,
    reason: Reason,
    crl_validity: Duration,
    now: SystemTime,
) -> Result<RevokedCert, StoreError> {
    let _lock = lock(dir)?;
    let ca = load(dir)?;
    let text = read(cert_file)?;
    let der = CertificateDer::from_pem_slice(text.as_bytes())
        .map_err(|_| at(cert_file)(Problem::NoCertificate))?;
    let (_, x509) = X509Certificate::from_der(der.as_ref())
        .map_err(|_| at(cert_file)(Problem::NoCertificate))?;
    if der.as_ref() == ca.cert_der() {
        return Err(at(cert_file)(Problem::OwnCertificate));
    }
    if !ca.issued(der.as_ref()) {
        return Err(at(cert_file)(Problem::NotIssued(dir.to_owned())));
    }
    let serial = Serial::from_be_bytes(x509.raw_serial());
    let revoked_path = dir.join(REVOKED);
    let mut list = crl::parse_revoked(&read(&revoked_path)?)
        .map_err(|e| at(&revoked_path)(Problem::Line(e)))?;
    if let Some(r) = list.iter().find(|r| r.serial == serial) {
        return Err(at(cert_file)(Problem::AlreadyRevoked {
            serial,
            time: rfc3339(r.time),
        }));
    }
    list.push(Revoked {
        serial: serial.clone(),
        time: now,
        reason,
    });
    replace(
        &revoked_path,
        crl::format_revoked(&list).as_bytes(),
        PUBLIC_MODE,
    )?;
    let crl = sign_next(dir, &ca, &list, now, crl_validity)?;
    Ok(RevokedCert {
        serial,
        reason,
        cert: cert_file.to_owned(),
        crl,
    })
}

/// Signs the CA's CRL again with the next CRL number: thisUpdate `this_update`, nextUpdate
/// `crl_validity` later.
pub fn crl(
    dir: &Path,
    this_update: SystemTime,
    crl_validity: Duration,
) -> Result<CrlSigned, StoreError> {
    let _lock = lock(dir)?;
    let ca = load(dir)?;
    let revoked_path = dir.join(REVOKED);
    let list = crl::parse_revoked(&read(&revoked_path)?)
        .map_err(|e| at(&revoked_path)(Problem::Line(e)))?;
    sign_next(dir, &ca, &list, this_update, crl_validity)
}

/// The CRL number is stored before the CRL is written, so that a failure between the two
/// skips a number rather than reuses one [RFC 5280 § 5.2.3].
fn sign_next(
    dir: &Path,
    ca: &Authority,
    list: &[Revoked],
    this_update: SystemTime,
    crl_validity: Duration,
) -> Result<CrlSigned, StoreError> {
    let (number_path, crl_path) = (dir.join(CRL_NUMBER), dir.join(CRL));
    let number = read(&number_path)?
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| at(&number_path)(Problem::CrlNumber))?;
    let next_update = add(this_update, crl_validity).map_err(|e| input_at(crl_path.clone(), e))?;
    let pem = crl::sign(ca, list, number, this_update, next_update)
        .map_err(|e| at(&crl_path)(Problem::Sign(e)))?;
    replace(&number_path, format!("{number}\n").as_bytes(), PUBLIC_MODE)?;
    replace(&crl_path, pem.as_bytes(), PUBLIC_MODE)?;
    Ok(CrlSigned {
        path: crl_path,
        number,
        revoked: list.len(),
        this_update,
        next_update,
    })
}

fn input_at(path: PathBuf, e: InputError) -> StoreError {
    StoreError {
        path,
        problem: Problem::Sign(SignError::Input(e)),
    }
}

/// `prefix` with `suffix` appended to its last component (`a/b` → `a/b.crt`).
fn suffixed(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// A PEM file's text ending in exactly one newline, to be concatenated.
fn pem_text(text: &str) -> String {
    format!("{}\n", text.trim_end())
}

/// Holds `dir/.lock` exclusively until dropped.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_at(&path))?;
    rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(|e| io_at(&path)(e.into()))?;
    Ok(file)
}

fn create(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    write_atomic(path, contents, mode, false).map_err(io_at(path))
}

fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    write_atomic(path, contents, mode, true).map_err(io_at(path))
}

/// Writes `contents` to `path` through a temporary file of mode `mode` in the same directory:
/// renamed over `path` if `overwrite`, else hard-linked to it, which fails with
/// [`io::ErrorKind::AlreadyExists`] if `path` exists. A reader of `path` sees the old contents
/// or the new, never part of them; no temporary file is left behind, whatever happens.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            fs::rename(&tmp, path)?;
        } else {
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)?;
        }
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
