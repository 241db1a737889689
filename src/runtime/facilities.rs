//! The facility registry at run time: one [`Authority`] per plan, the CRL files it watches,
//! and what it tells the data path.
//!
//! * The worker reads every facility's state from a [`FacilityStates`] snapshot swapped in
//!   atomically ([`Facilities::states`]), before each batch and each control message; a
//!   `Control::Facilities` message wakes it when a state changed. A snapshot is for one plan
//!   generation: the worker applies only its own plan's.
//! * The IKE thread reads the same snapshot after every turn and deletes the SAs of a
//!   facility whose certificate is refused (`ike.rs`); a peer that authenticates presents its
//!   certificate here first ([`Presenter`]), so a facility is valid before its first SA
//!   reaches the worker.
//! * A task polls the CRL files (size, mtime, inode) every [`POLL`] and judges every facility
//!   again when one changed or when a validity bound passed ([`Authority::next_recheck`]):
//!   a revocation takes effect within a second.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::events::Events;
use super::Control;
use crate::config::{Config, FacilityCertificate};
use crate::dataplane::{PeerPlanKind, Plan};
use crate::facility::{
    format_unix, Authority, Ca, CertSource, Change, FacilityCert, FacilitySpec, FacilityState,
    Presenter, Verdict,
};
use crate::ids::{FacilityCode, FacilityId};

/// How often the CRL files are looked at.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// Every facility's state, for the plan of `generation`, by [`FacilityId`], and the peers
/// (by name) whose own presented certificate is refused: the IKE thread deletes their SAs
/// even while another peer keeps the facility valid.
#[derive(Debug, Default)]
pub(crate) struct FacilityStates {
    pub generation: u64,
    pub states: Vec<FacilityState>,
    pub refused_peers: Vec<String>,
}

/// A CRL file and what it looked like when last read.
#[derive(Debug, Clone)]
pub(crate) struct CrlFile {
    ca: usize,
    slot: usize,
    path: PathBuf,
    stamp: Option<Stamp>,
    /// It could not be read at the last look (logged once).
    missing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        inode: m.ino(),
    })
}

/// What [`Facilities::switch`] replaced: generation, registry, CRL files.
pub(crate) type Replaced = (u64, Authority, Vec<CrlFile>);

struct Inner {
    generation: u64,
    authority: Authority,
    crls: Vec<CrlFile>,
    /// Peers whose presented certificate was refused, until they present a good one.
    refused_peers: Vec<String>,
}

/// The running registry, shared by the runtime, its CRL task, the IKE thread (as the
/// [`Presenter`] of its engines) and the metrics collector.
pub(crate) struct Facilities {
    inner: Mutex<Inner>,
    published: Arc<ArcSwap<FacilityStates>>,
    /// Wakes the workers (weak: the registry must not keep their channels open).
    workers: Mutex<Vec<mpsc::WeakSender<Control>>>,
    /// Where certificate states are recorded (the audit trail), if anywhere.
    audit: Option<Arc<Events>>,
}

/// A registry for `plan`, with the CRL files read now (one that cannot be read or used
/// leaves its slot empty, and the CA's facilities `revocation_unknown`: logged).
fn build(config: &Config, plan: &Plan, now: u64, log: bool) -> (Authority, Vec<CrlFile>) {
    let mut cas = Vec::with_capacity(config.trust.len());
    let mut crls = Vec::new();
    for (i, t) in config.trust.iter().enumerate() {
        match Ca::new(&t.name, &t.bundle, t.crl_expired, t.crl_files.len()) {
            Ok(ca) => cas.push(ca),
            Err(e) => {
                // Validation read the same bytes: only a bug gets here. Nothing chains to
                // the empty stand-in: its facilities are refused.
                tracing::error!(ca = t.name, "CA bundle {}: {e}", t.ca_file.display());
                cas.push(Ca::empty(&t.name, t.crl_expired));
            }
        }
        for (slot, path) in t.crl_files.iter().enumerate() {
            crls.push(CrlFile {
                ca: i,
                slot,
                path: path.clone(),
                stamp: None,
                missing: false,
            });
        }
    }
    let registry: std::collections::HashMap<FacilityCode, &crate::config::Facility> = config
        .facilities
        .iter()
        .flatten()
        .map(|f| (f.code, f))
        .collect();
    let specs = plan
        .facilities
        .iter()
        .enumerate()
        .map(|(i, &code)| {
            spec(
                config,
                plan,
                FacilityId(i as u32),
                registry.get(&code).copied(),
                code,
            )
        })
        .collect();
    let mut authority = Authority::new(cas, specs, now);
    for f in &mut crls {
        load_crl(&mut authority, f, log);
    }
    authority.evaluate(now);
    (authority, crls)
}

/// What the registry says of facility `id` (`code`) of `plan`.
fn spec(
    config: &Config,
    plan: &Plan,
    id: FacilityId,
    entry: Option<&crate::config::Facility>,
    code: FacilityCode,
) -> FacilitySpec {
    let peers = plan
        .facility_peers
        .get(id.index())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let tenant = entry.map(|f| f.tenant.clone()).unwrap_or_else(|| {
        peers
            .first()
            .map(|p| {
                plan.tenants[plan.peers[p.index()].tenant.index()]
                    .name
                    .clone()
            })
            .unwrap_or_default()
    });
    let trust = config
        .tenants
        .iter()
        .find(|t| t.name == tenant)
        .map(|t| {
            t.trust
                .iter()
                .filter_map(|name| config.trust.iter().position(|b| &b.name == name))
                .collect()
        })
        .unwrap_or_default();
    let source = match entry.map(|f| &f.certificate) {
        None | Some(FacilityCertificate::None) => CertSource::NotRequired,
        Some(FacilityCertificate::Presented) => CertSource::Presented,
        Some(FacilityCertificate::File { path, pem }) => match FacilityCert::from_file_bytes(pem) {
            Ok(cert) => CertSource::File(cert),
            Err(e) => {
                // Validation parsed the same bytes: only a bug gets here. Fail closed.
                tracing::error!(facility = %code, "certificate file {}: {e}", path.display());
                CertSource::Presented
            }
        },
    };
    let wireguard_keys = peers
        .iter()
        .map(|p| &plan.peers[p.index()])
        .filter_map(|p| match &p.kind {
            PeerPlanKind::WireGuard(wg) => Some(wg.public_key),
            PeerPlanKind::Ipsec(_) | PeerPlanKind::Tls(_) => None,
        })
        .collect();
    FacilitySpec {
        code,
        name: entry.map(|f| f.name.clone()).unwrap_or_default(),
        tenant,
        source,
        trust,
        wireguard_keys,
    }
}

/// Reads `f` if it changed since it was last read, into the authority. Whether it loaded
/// something new.
fn load_crl(authority: &mut Authority, f: &mut CrlFile, log: bool) -> bool {
    let now_stamp = stamp(&f.path);
    if now_stamp.is_some() && now_stamp == f.stamp {
        return false;
    }
    let bytes = now_stamp.map(|_| std::fs::read(&f.path));
    apply_crl(authority, f, now_stamp, bytes, log)
}

/// The file the CRL task looked at: what it looked like and what it read.
type Looked = (Option<Stamp>, Option<std::io::Result<Vec<u8>>>);

/// Loads what was read of `f` (its stamp then; `None`: the file was gone).
fn apply_crl(
    authority: &mut Authority,
    f: &mut CrlFile,
    now_stamp: Option<Stamp>,
    bytes: Option<std::io::Result<Vec<u8>>>,
    log: bool,
) -> bool {
    let ca = authority
        .cas()
        .get(f.ca)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let file = f.path.display().to_string();
    let Some(s) = now_stamp else {
        if !std::mem::replace(&mut f.missing, true) {
            tracing::error!(
                ca,
                file,
                "CRL file is gone; the CRL loaded before stays in force"
            );
        }
        f.stamp = None;
        return false;
    };
    f.missing = false;
    f.stamp = Some(s);
    let Some(read) = bytes else {
        return false;
    };
    match read {
        Ok(bytes) => match authority.load_crl(f.ca, f.slot, &bytes) {
            Ok(info) => {
                if log {
                    tracing::info!(
                        ca,
                        file,
                        number = info.number.as_deref().unwrap_or("-"),
                        revoked = info.revoked,
                        next_update = %format_unix(info.next_update),
                        "CRL loaded"
                    );
                }
                true
            }
            Err(e) => {
                tracing::error!(
                    ca,
                    file,
                    "CRL not used, the one loaded before stays in force: {e}"
                );
                false
            }
        },
        Err(e) => {
            tracing::error!(
                ca,
                file,
                "CRL file cannot be read, the CRL loaded before stays in force: {e}"
            );
            false
        }
    }
}

impl Facilities {
    /// The registry of the first plan.
    pub(crate) fn new(
        config: &Config,
        plan: &Plan,
        now: u64,
        audit: Option<Arc<Events>>,
    ) -> Arc<Facilities> {
        let (authority, crls) = build(config, plan, now, true);
        let published = Arc::new(ArcSwap::from_pointee(FacilityStates {
            generation: plan.generation,
            states: authority.states(),
            refused_peers: Vec::new(),
        }));
        log_states(&authority, None, audit.as_deref());
        Arc::new(Facilities {
            inner: Mutex::new(Inner {
                generation: plan.generation,
                authority,
                crls,
                refused_peers: Vec::new(),
            }),
            published,
            workers: Mutex::new(Vec::new()),
            audit,
        })
    }

    /// Where the worker and the IKE thread read the states.
    pub(crate) fn states(&self) -> Arc<ArcSwap<FacilityStates>> {
        Arc::clone(&self.published)
    }

    pub(crate) fn set_workers(&self, controls: Vec<mpsc::WeakSender<Control>>) {
        *self.workers.lock().unwrap_or_else(|e| e.into_inner()) = controls;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches to `plan`'s registry (built from `config`), keeping the certificates peers
    /// presented for facilities that did not change, and publishes its states (the worker
    /// applies them when it switches to the plan). Returns the registry it replaced, for
    /// [`Facilities::restore`] should the reload fail.
    pub(crate) fn switch(&self, config: &Config, plan: &Plan, now: u64) -> Replaced {
        let (mut authority, crls) = build(config, plan, now, true);
        let mut inner = self.lock();
        // A file older than the CRL in force (same CA name, same path) does not replace it.
        let mut kept = false;
        for f in &crls {
            let name = authority.cas().get(f.ca).map(|c| c.name.clone());
            let old = inner.crls.iter().find(|o| {
                o.path == f.path
                    && inner.authority.cas().get(o.ca).map(|c| &c.name) == name.as_ref()
            });
            if let Some(o) = old {
                kept |= authority.keep_newer_crl(f.ca, f.slot, &inner.authority, o.ca, o.slot);
            }
        }
        if kept {
            tracing::warn!("a CRL file is older than the CRL in force: the newer one stays");
            authority.evaluate(now);
        }
        let refused = authority.carry_presented(&inner.authority, now);
        note_refused(&mut inner.refused_peers, &refused);
        log_states(&authority, Some(&inner.authority), self.audit.as_deref());
        let old_generation = std::mem::replace(&mut inner.generation, plan.generation);
        let old = std::mem::replace(&mut inner.authority, authority);
        let old_crls = std::mem::replace(&mut inner.crls, crls);
        self.publish(&inner);
        (old_generation, old, old_crls)
    }

    /// Puts back what [`Facilities::switch`] replaced (the reload failed).
    pub(crate) fn restore(&self, previous: Replaced) {
        let mut inner = self.lock();
        let (generation, mut authority, crls) = previous;
        // What peers presented meanwhile counts for the old registry too.
        let refused = authority.carry_presented(&inner.authority, super::ike::unix_now());
        note_refused(&mut inner.refused_peers, &refused);
        log_states(&authority, Some(&inner.authority), self.audit.as_deref());
        (inner.generation, inner.authority, inner.crls) = (generation, authority, crls);
        self.publish(&inner);
    }

    /// Looks at the CRL files and the clock: judges every facility again if a CRL changed
    /// or a validity bound passed. Whether a state changed.
    pub(crate) fn poll(&self, now: u64) -> bool {
        // The files are looked at and read without the lock: IKE authentications, which
        // need it, wait for the judgement only.
        let files: Vec<(PathBuf, Option<Stamp>)> = self
            .lock()
            .crls
            .iter()
            .map(|f| (f.path.clone(), f.stamp))
            .collect();
        let looked: Vec<Option<Looked>> = files
            .iter()
            .map(|(path, was)| {
                let now_stamp = stamp(path);
                if now_stamp.is_some() && now_stamp == *was {
                    return None;
                }
                Some((now_stamp, now_stamp.map(|_| std::fs::read(path))))
            })
            .collect();
        let mut inner = self.lock();
        let Inner {
            authority,
            crls,
            refused_peers,
            ..
        } = &mut *inner;
        let mut loaded = false;
        for ((f, (path, _)), looked) in crls.iter_mut().zip(&files).zip(looked) {
            // A reload may have replaced the list meanwhile: what was read is for this path.
            if f.path != *path {
                continue;
            }
            if let Some((now_stamp, bytes)) = looked {
                loaded |= apply_crl(authority, f, now_stamp, bytes, true);
            }
        }
        if !loaded && authority.next_recheck().is_none_or(|t| now < t) {
            return false;
        }
        let (changes, refused) = authority.evaluate_changed(now);
        if changes.is_empty() && refused.is_empty() {
            return false;
        }
        log_changes(authority, &changes, self.audit.as_deref());
        for r in &refused {
            tracing::warn!(
                facility = authority.spec(r.facility).map(|s| s.code.to_string()).unwrap_or_default(),
                peer = r.peer,
                state = %r.verdict.state,
                "the certificate this peer authenticated with is refused: its tunnel goes: {}",
                r.verdict.detail
            );
        }
        note_refused(refused_peers, &refused);
        self.publish(&inner);
        true
    }

    fn publish(&self, inner: &Inner) {
        self.published.store(Arc::new(FacilityStates {
            generation: inner.generation,
            states: inner.authority.states(),
            refused_peers: inner.refused_peers.clone(),
        }));
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for control in workers.iter().filter_map(mpsc::WeakSender::upgrade) {
            // A full queue is fine: a worker reads the states before every batch anyway.
            let _ = control.try_send(Control::Facilities);
        }
    }

    /// Each CRL file: its CA's name, its path, and what it holds (`None` before it loaded).
    pub(crate) fn crls(&self) -> Vec<(String, String, Option<crate::facility::CrlInfo>)> {
        let inner = self.lock();
        inner
            .crls
            .iter()
            .map(|f| {
                let ca = inner.authority.cas().get(f.ca);
                (
                    ca.map(|c| c.name.clone()).unwrap_or_default(),
                    f.path.display().to_string(),
                    ca.and_then(|c| c.crl_infos().nth(f.slot).flatten().cloned()),
                )
            })
            .collect()
    }

    /// Runs `f` over the registry (the metrics collector, `ixgw check`).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Authority) -> T) -> T {
        f(&self.lock().authority)
    }
}

impl Presenter for Facilities {
    fn present(
        &self,
        facility: FacilityCode,
        peer: &str,
        chain: &[&[u8]],
        now: u64,
    ) -> Result<(), Verdict> {
        let mut inner = self.lock();
        let Some(id) = inner.authority.find(facility) else {
            return Ok(());
        };
        match inner.authority.present(id, peer, chain, now) {
            Ok(change) => {
                let was_refused = inner.refused_peers.iter().any(|p| p == peer);
                inner.refused_peers.retain(|p| p != peer);
                if let Some(c) = &change {
                    log_changes(
                        &inner.authority,
                        std::slice::from_ref(c),
                        self.audit.as_deref(),
                    );
                }
                if change.is_some() || was_refused {
                    self.publish(&inner);
                }
                Ok(())
            }
            Err(verdict) => {
                let spec = inner.authority.spec(id);
                tracing::warn!(
                    facility = %facility,
                    name = spec.map_or("", |s| s.name.as_str()),
                    tenant = spec.map_or("", |s| s.tenant.as_str()),
                    state = %verdict.state,
                    "a peer of the facility authenticated with a certificate that is refused: {}",
                    verdict.detail
                );
                Err(verdict)
            }
        }
    }
}

/// Adds the peers of `refused` to `list` (once each): the IKE thread deletes their SAs.
fn note_refused(list: &mut Vec<String>, refused: &[crate::facility::PeerRefused]) {
    for r in refused {
        if !list.contains(&r.peer) {
            list.push(r.peer.clone());
        }
    }
}

/// Logs each facility's state when a registry is built (`previous`: the registry it
/// replaces; only what differs from it is logged, and refused states always).
fn log_states(authority: &Authority, previous: Option<&Authority>, audit: Option<&Events>) {
    for i in 0..authority.len() {
        let id = FacilityId(i as u32);
        let (Some(spec), Some(v)) = (authority.spec(id), authority.verdict(id)) else {
            continue;
        };
        let before = previous.and_then(|p| p.find(spec.code).and_then(|f| p.verdict(f)));
        if before.is_some_and(|b| b.state == v.state) {
            if !v.state.allows_traffic() {
                log_one(spec, v, before.map(|b| b.state));
            }
            continue;
        }
        log_one(spec, v, before.map(|b| b.state));
        if let Some(a) = audit {
            a.certificate(spec, v, before.map(|b| b.state));
        }
    }
}

fn log_changes(authority: &Authority, changes: &[Change], audit: Option<&Events>) {
    for c in changes {
        if let (Some(spec), Some(v)) = (authority.spec(c.facility), authority.verdict(c.facility)) {
            log_one(spec, v, Some(c.from));
            if let Some(a) = audit {
                a.certificate(spec, v, Some(c.from));
            }
        }
    }
}

fn log_one(spec: &FacilitySpec, v: &Verdict, from: Option<FacilityState>) {
    let from = from.map_or("-", FacilityState::name);
    match v.state {
        FacilityState::NotRequired => {}
        FacilityState::Valid => tracing::info!(
            facility = %spec.code, name = spec.name, tenant = spec.tenant, from, state = %v.state,
            "facility certificate: {}", v.detail
        ),
        FacilityState::NotPresented => tracing::info!(
            facility = %spec.code, name = spec.name, tenant = spec.tenant, from, state = %v.state,
            "facility certificate: {}", v.detail
        ),
        _ => tracing::warn!(
            facility = %spec.code, name = spec.name, tenant = spec.tenant, from, state = %v.state,
            "facility certificate refused, its traffic stops: {}", v.detail
        ),
    }
}

/// Polls the CRL files and the clock every [`POLL`] until the task is aborted; wakes the IKE
/// thread when a state changed (`wake`).
pub(crate) async fn watch(facilities: Arc<Facilities>, wake: impl Fn() + Send + 'static) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let f = Arc::clone(&facilities);
        let changed = tokio::task::spawn_blocking(move || f.poll(super::ike::unix_now()))
            .await
            .unwrap_or(false);
        if changed {
            wake();
        }
    }
}

/// One facility's standing, as `ixgw check` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityReport {
    pub code: FacilityCode,
    pub name: String,
    pub tenant: String,
    pub state: FacilityState,
    pub detail: String,
}

/// Every facility of `config` judged now, with the CRL files as they are on disk: what the
/// daemon would start with.
pub fn facility_report(config: &Config, now: u64) -> Vec<FacilityReport> {
    let plan = Plan::compile(config, 1);
    let (authority, _) = build(config, &plan, now, false);
    (0..authority.len())
        .filter_map(|i| {
            let id = FacilityId(i as u32);
            let (spec, v) = (authority.spec(id)?, authority.verdict(id)?);
            Some(FacilityReport {
                code: spec.code,
                name: spec.name.clone(),
                tenant: spec.tenant.clone(),
                state: v.state,
                detail: v.detail.clone(),
            })
        })
        .collect()
}

/// `ixgw facility verify`: a certificate file read and, with a configuration, judged as the
/// daemon would judge it for the facility it names (that facility's tenant's CAs, their CRLs
/// as they are on disk, the WireGuard keys of its peers, the registry's pin). The report, and
/// whether the certificate is valid for its facility.
pub fn verify_certificate(
    cert_file: &[u8],
    config: Option<&Config>,
    now: u64,
) -> Result<(String, bool), String> {
    use std::fmt::Write as _;
    let cert = FacilityCert::from_file_bytes(cert_file).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let _ = writeln!(out, "subject:      {}", cert.subject);
    let _ = writeln!(out, "issuer:       {}", cert.issuer);
    let _ = writeln!(out, "serial:       {}", cert.serial);
    let _ = writeln!(
        out,
        "validity:     {} .. {}",
        format_unix(cert.not_before),
        format_unix(cert.not_after)
    );
    let codes: Vec<String> = cert
        .codes
        .iter()
        .map(|c| match FacilityCode::parse(c) {
            Ok(_) => c.clone(),
            Err(e) => format!("{c} (not a facility code: {e})"),
        })
        .collect();
    let _ = writeln!(
        out,
        "facility:     {}",
        if codes.is_empty() {
            "none named (subject serialNumber or SAN URI urn:ixgw:facility:CODE)".to_string()
        } else {
            codes.join(", ")
        }
    );
    for k in &cert.wireguard_keys {
        let _ = writeln!(
            out,
            "wireguard:    {}",
            crate::tunnel::wireguard::keys::encode(k)
        );
    }
    let _ = writeln!(out, "chain:        {} (leaf)", cert.subject);
    for der in cert.intermediates() {
        if let Ok(c) = FacilityCert::from_der_chain(&[der.as_ref()]) {
            let _ = writeln!(out, "              {} (issued by {})", c.subject, c.issuer);
        }
    }
    let Some(config) = config else {
        let _ = writeln!(
            out,
            "verdict:      not judged (give --config: the tenant's CAs, CRLs and the binding come from it)"
        );
        return Ok((out, false));
    };
    let plan = Plan::compile(config, 1);
    let (mut authority, _) = build(config, &plan, now, false);
    let code = match cert.codes.as_slice() {
        [one] => FacilityCode::parse(one).ok(),
        _ => None,
    };
    let Some(id) = code.and_then(|c| authority.find(c)) else {
        let _ = writeln!(
            out,
            "verdict:      binding_mismatch: the certificate names no facility of {} (one valid code, carried by a peer)",
            config.source.display()
        );
        return Ok((out, false));
    };
    let spec = authority.spec(id).cloned();
    let ders: Vec<&[u8]> = std::iter::once(cert.leaf().as_ref())
        .chain(cert.intermediates().iter().map(|d| d.as_ref()))
        .collect();
    let verdict = match authority.present(id, "ixgw facility verify", &ders, now) {
        Ok(_) => authority.verdict(id).cloned(),
        Err(v) => Some(v),
    };
    let (Some(spec), Some(v)) = (spec, verdict) else {
        return Err("the facility vanished from the registry".into());
    };
    if spec.source == CertSource::NotRequired {
        let _ = writeln!(
            out,
            "registry:     facility {} needs no certificate (not in facilities:, or certificate: none)",
            spec.code
        );
    } else {
        let _ = writeln!(
            out,
            "registry:     facility {} ({}), tenant {}",
            spec.code, spec.name, spec.tenant
        );
    }
    for k in &spec.wireguard_keys {
        let bound = cert.wireguard_keys.contains(k);
        let _ = writeln!(
            out,
            "binding:      WireGuard key {} {}",
            crate::tunnel::wireguard::keys::encode(k),
            if bound { "bound" } else { "NOT bound" }
        );
    }
    for (ca, file, info) in crl_view(&authority, config) {
        match info {
            Some(i) => {
                let _ = writeln!(
                    out,
                    "crl:          {ca} {file}: number {}, {} revoked, next update {}",
                    i.number.as_deref().unwrap_or("-"),
                    i.revoked,
                    format_unix(i.next_update)
                );
            }
            None => {
                let _ = writeln!(out, "crl:          {ca} {file}: not loaded");
            }
        }
    }
    let valid = v.state == FacilityState::Valid;
    let _ = writeln!(out, "verdict:      {}: {}", v.state, v.detail);
    Ok((out, valid))
}

/// The CRL files of the CAs `config` defines, with what `authority` loaded from each.
fn crl_view(
    authority: &Authority,
    config: &Config,
) -> Vec<(String, String, Option<crate::facility::CrlInfo>)> {
    let mut out = Vec::new();
    for (i, t) in config.trust.iter().enumerate() {
        let infos: Vec<_> = authority
            .cas()
            .get(i)
            .map(|c| c.crl_infos().map(|x| x.cloned()).collect())
            .unwrap_or_default();
        for (slot, path) in t.crl_files.iter().enumerate() {
            out.push((
                t.name.clone(),
                path.display().to_string(),
                infos.get(slot).cloned().flatten(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facility::testpki::{b64, root, unix_now, Leaf, DAY, WG_KEY};

    /// A temp dir with a lab CA, its CRL, a facility certificate binding [`WG_KEY`] and a
    /// configuration whose one WireGuard peer (that key) is that facility.
    struct Lab {
        dir: std::path::PathBuf,
        ca: crate::facility::testpki::TestCa,
        now: u64,
    }

    impl Lab {
        fn new(name: &str) -> Lab {
            let dir =
                std::env::temp_dir().join(format!("ixgw-facilities-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let now = unix_now();
            let ca = root("lab", now);
            std::fs::write(dir.join("ca.crt"), &ca.pem).unwrap();
            std::fs::write(
                dir.join("crl.pem"),
                ca.crl_numbered(1, &[], now - 60, now + DAY),
            )
            .unwrap();
            let (cert, _) = Leaf::facility("4212345674", now).issue_pem(&ca, &[]);
            std::fs::write(dir.join("a.crt"), cert).unwrap();
            std::fs::write(dir.join("gw.key"), format!("{}\n", b64(&[0x11; 32]))).unwrap();
            std::fs::write(
                dir.join("ixgw.yaml"),
                format!(
                    r#"ix:
  name: t
  exchange_space: 100.64.0.0/10
trust:
  - name: lab
    ca_file: ca.crt
    crl_files: [crl.pem]
facilities:
  - {{ code: "4212345674", name: clinic a, tenant: a, certificate: a.crt }}
tenants:
  - name: a
    trust: [lab]
    networks:
      - {{ internal: 10.0.0.0/16, exchange: 100.64.0.0/16 }}
    attachments:
      - name: a-wg
        type: wireguard
        listen: 127.0.0.1:0
        private_key_file: gw.key
        peers:
          - name: clinic-a
            facility: "4212345674"
            public_key: "{key}"
            allowed_ips: [10.0.1.0/24]
"#,
                    key = b64(&WG_KEY)
                ),
            )
            .unwrap();
            Lab { dir, ca, now }
        }

        fn config(&self) -> Config {
            Config::load(&self.dir.join("ixgw.yaml")).unwrap()
        }

        fn revoke(&self, number: u64) {
            let tmp = self.dir.join("crl.tmp");
            std::fs::write(
                &tmp,
                self.ca
                    .crl_numbered(number, &[1], self.now - 30, self.now + DAY),
            )
            .unwrap();
            std::fs::rename(&tmp, self.dir.join("crl.pem")).unwrap();
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn a_crl_file_change_is_published_for_the_running_plan() {
        let lab = Lab::new("poll");
        let config = lab.config();
        let plan = Plan::compile(&config, 1);
        let f = Facilities::new(&config, &plan, lab.now, None);
        let states = f.states();
        assert_eq!(states.load().generation, 1);
        assert_eq!(states.load().states, [FacilityState::Valid]);
        assert!(!f.poll(lab.now), "nothing changed");
        lab.revoke(2);
        assert!(f.poll(lab.now), "the CRL file changed");
        assert_eq!(states.load().states, [FacilityState::Revoked]);
        let crls = f.crls();
        assert_eq!(crls[0].2.as_ref().map(|i| i.revoked), Some(1));

        // A reload publishes the new plan's states (the CRL read again), a failed one puts
        // the old plan's back.
        let plan2 = Plan::compile(&config, 2);
        let previous = f.switch(&config, &plan2, lab.now);
        assert_eq!(states.load().generation, 2);
        assert_eq!(states.load().states, [FacilityState::Revoked]);
        f.restore(previous);
        assert_eq!(states.load().generation, 1);
        // An older CRL file does not un-revoke.
        let tmp = lab.dir.join("crl.tmp");
        std::fs::write(
            &tmp,
            lab.ca.crl_numbered(1, &[], lab.now - 30, lab.now + DAY),
        )
        .unwrap();
        std::fs::rename(&tmp, lab.dir.join("crl.pem")).unwrap();
        assert!(!f.poll(lab.now));
        assert_eq!(states.load().states, [FacilityState::Revoked]);
        // What check reports.
        let report = facility_report(&config, lab.now);
        assert_eq!(
            report[0].state,
            FacilityState::Valid,
            "the older file, read afresh"
        );
    }
}
