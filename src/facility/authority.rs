//! Every facility's certificate state as the control path works it out: from the registry's
//! certificate file, or from the certificate its peer presented (IPsec, later TLS), judged
//! against the CA bundles its tenant trusts and their CRLs.
//!
//! The runtime owns one [`Authority`] per plan (facilities are numbered by the plan's
//! [`FacilityId`]s). It asks for [`Authority::evaluate`] when a CRL changed or a
//! [`Authority::next_recheck`] time came, and hands every [`Change`] to the data path, the IKE
//! thread (which deletes a refused facility's SAs), the logs and the audit trail.

use super::cert::FacilityCert;
use super::trust::{Ca, CrlError, CrlInfo};
use super::verify::{verify, Expect, Verdict};
use super::FacilityState;
use crate::ids::{FacilityCode, FacilityId};

/// Where a facility's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Not in the registry, or registered with `certificate: none`.
    NotRequired,
    /// The registry's file. A peer that presents a certificate (IPsec) must present one
    /// with the same public key.
    File(FacilityCert),
    /// The certificate its peer authenticates with.
    Presented,
}

/// One facility, as the registry and the plan describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilitySpec {
    pub code: FacilityCode,
    /// The registry's name ("" when it is not in the registry).
    pub name: String,
    pub tenant: String,
    pub source: CertSource,
    /// The CA bundles (indices into the authority's) its tenant trusts.
    pub trust: Vec<usize>,
    /// The WireGuard keys of its peers: its certificate must bind each.
    pub wireguard_keys: Vec<[u8; 32]>,
}

/// Where a tunnel's authentication hands the certificate a facility's peer presented (IKE
/// now, TLS later): `Ok` when it is the facility's valid certificate (the facility is then
/// judged by it), else the verdict that refuses it. Implemented by the runtime over the
/// running [`Authority`].
pub trait Presenter: Send + Sync {
    /// `peer` (its name) of `facility` authenticated with `chain`, leaf first, at `now`.
    fn present(
        &self,
        facility: FacilityCode,
        peer: &str,
        chain: &[&[u8]],
        now: u64,
    ) -> Result<(), Verdict>;
}

/// A facility whose state changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub facility: FacilityId,
    pub from: FacilityState,
    pub to: FacilityState,
}

impl Entry {
    /// Every certificate the facility may be judged by.
    fn certs(&self) -> impl Iterator<Item = &FacilityCert> {
        let file = match &self.spec.source {
            CertSource::File(f) => Some(f),
            _ => None,
        };
        file.into_iter()
            .chain(self.presented.iter().map(|(_, c, _)| c))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    spec: FacilitySpec,
    /// The certificate each of its peers (by name) last authenticated with successfully, and
    /// whether it is still good. A facility may have several routers, each with a
    /// certificate of its own.
    presented: Vec<(String, FacilityCert, bool)>,
    verdict: Verdict,
}

/// A peer whose presented certificate is refused now (revoked, expired, ...): its tunnel
/// must go, whatever its facility's other peers hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRefused {
    pub facility: FacilityId,
    pub peer: String,
    pub verdict: Verdict,
}

/// The facilities of one plan and the CA bundles they are judged against.
#[derive(Debug, Clone)]
pub struct Authority {
    cas: Vec<Ca>,
    entries: Vec<Entry>,
    by_code: std::collections::HashMap<FacilityCode, FacilityId>,
    /// What CRL loads since the last [`Authority::evaluate`] may have changed: the CAs whose
    /// every facility must be judged again, and the serials newly listed or no longer
    /// listed (only facilities whose certificates carry one are judged again).
    pending_cas: std::collections::HashSet<usize>,
    pending_serials: std::collections::HashSet<Vec<u8>>,
    /// The CAs a CRL was loaded for since the last evaluation (their refused facilities
    /// may be restored).
    touched_cas: std::collections::HashSet<usize>,
}

impl Authority {
    /// The facilities `specs` (indexed by [`FacilityId`]), judged at `now` against `cas`
    /// with the CRLs loaded so far.
    pub fn new(cas: Vec<Ca>, specs: Vec<FacilitySpec>, now: u64) -> Authority {
        let by_code = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.code, FacilityId(i as u32)))
            .collect();
        let mut a = Authority {
            cas,
            by_code,
            pending_cas: Default::default(),
            pending_serials: Default::default(),
            touched_cas: Default::default(),
            entries: specs
                .into_iter()
                .map(|spec| Entry {
                    spec,
                    presented: Vec::new(),
                    verdict: not_judged(),
                })
                .collect(),
        };
        for i in 0..a.entries.len() {
            a.entries[i].verdict = a.judge(i, now);
        }
        a
    }

    /// Takes over the certificates `previous` (the authority of the plan before a reload)
    /// holds as presented, for facilities whose code, tenant, trust and source are unchanged:
    /// their peers keep their SAs across the reload, and with them their standing. Judges
    /// them again at `now`; returns the peers whose carried certificate is refused now (the
    /// caller compares facility states itself).
    pub fn carry_presented(&mut self, previous: &Authority, now: u64) -> Vec<PeerRefused> {
        let mut refused = Vec::new();
        let by_code: std::collections::HashMap<FacilityCode, &Entry> = previous
            .entries
            .iter()
            .filter(|e| !e.presented.is_empty())
            .map(|e| (e.spec.code, e))
            .collect();
        for i in 0..self.entries.len() {
            let spec = &self.entries[i].spec;
            let Some(old) = by_code.get(&spec.code).filter(|e| {
                e.spec.tenant == spec.tenant
                    && e.spec.source == spec.source
                    && trust_names(previous, &e.spec.trust) == trust_names(self, &spec.trust)
            }) else {
                continue;
            };
            if !old.presented.is_empty() {
                self.entries[i].presented = old.presented.clone();
                refused.extend(self.rejudge_presented(i, now));
                self.entries[i].verdict = self.judge(i, now);
            }
        }
        refused
    }

    /// Keeps, for CA bundle `ca`'s CRL `slot`, `previous`'s CRL of its bundle `old_ca`, slot
    /// `old_slot` if that is newer ([`Ca::keep_newer`]); the caller then calls
    /// [`Authority::evaluate`].
    pub fn keep_newer_crl(
        &mut self,
        ca: usize,
        slot: usize,
        previous: &Authority,
        old_ca: usize,
        old_slot: usize,
    ) -> bool {
        match (self.cas.get_mut(ca), previous.cas.get(old_ca)) {
            (Some(c), Some(o)) => c.keep_newer(slot, o, old_slot),
            _ => false,
        }
    }

    /// Loads CRL bytes into slot `slot` of bundle `ca` (see [`Ca::load_crl`]); the caller
    /// then calls [`Authority::evaluate`].
    pub fn load_crl(&mut self, ca: usize, slot: usize, bytes: &[u8]) -> Result<CrlInfo, CrlError> {
        let Some(c) = self.cas.get_mut(ca) else {
            return Err(CrlError::Parse(format!("no CA bundle {ca}")));
        };
        let before = c.revoked_serials(slot);
        let first = c.crl_infos().nth(slot).flatten().is_none();
        let stale_before = c.earliest_next_update();
        let info = c.load_crl(slot, bytes)?;
        let after = c.revoked_serials(slot);
        let before: std::collections::HashSet<Vec<u8>> = before.into_iter().collect();
        let after: std::collections::HashSet<Vec<u8>> = after.into_iter().collect();
        let diff: Vec<Vec<u8>> = before.symmetric_difference(&after).cloned().collect();
        // A CRL that arrives where none was, that moves its CA's earliest nextUpdate earlier,
        // or that names a serial which is not a facility leaf issued by the CRL's issuer (an
        // intermediate revoked or restored: serials are only unique per issuer) can change
        // any facility of the CA.
        let leaves: std::collections::HashSet<(String, Vec<u8>)> = self
            .entries
            .iter()
            .flat_map(|e| e.certs().map(|c| (c.issuer.clone(), c.raw_serial())))
            .collect();
        let earlier = c
            .earliest_next_update()
            .is_some_and(|t| stale_before.is_none_or(|b| t < b));
        if first
            || earlier
            || diff
                .iter()
                .any(|d| !leaves.contains(&(info.issuer.clone(), d.clone())))
        {
            self.pending_cas.insert(ca);
        }
        self.touched_cas.insert(ca);
        self.pending_serials.extend(diff);
        Ok(info)
    }

    /// Judges every facility again at `now`: the facilities whose state changed, and the
    /// peers whose presented certificate is now refused (forgotten: they must authenticate
    /// again, and cannot with that certificate).
    pub fn evaluate(&mut self, now: u64) -> (Vec<Change>, Vec<PeerRefused>) {
        self.pending_cas.clear();
        self.pending_serials.clear();
        self.touched_cas.clear();
        let all = (0..self.entries.len()).collect();
        self.evaluate_some(all, now)
    }

    /// Judges again at `now` only what may have changed since the last evaluation: the
    /// facilities whose verdict has come to its recheck time, those of a CA whose CRL
    /// appeared or changed beyond facility leaves, those a CRL change names by serial, and
    /// those not valid now (whose standing a fresh CRL may restore). A revocation costs one
    /// path validation per facility it names, not one per facility of the IX.
    pub fn evaluate_changed(&mut self, now: u64) -> (Vec<Change>, Vec<PeerRefused>) {
        let cas = std::mem::take(&mut self.pending_cas);
        let serials = std::mem::take(&mut self.pending_serials);
        let touched = std::mem::take(&mut self.touched_cas);
        let some = (0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                let refused = e.verdict.state != FacilityState::Valid
                    && e.verdict.state != FacilityState::NotRequired
                    && e.verdict.state != FacilityState::NotPresented;
                e.verdict.recheck_at.is_some_and(|t| t <= now)
                    || (refused && e.spec.trust.iter().any(|t| touched.contains(t)))
                    || e.spec.trust.iter().any(|t| cas.contains(t))
                    || e.certs().any(|c| serials.contains(&c.raw_serial()))
            })
            .collect();
        self.evaluate_some(some, now)
    }

    /// Judges again each certificate facility `i`'s peers presented: the peers whose good
    /// certificate turned bad.
    fn rejudge_presented(&mut self, i: usize, now: u64) -> Vec<PeerRefused> {
        let mut refused = Vec::new();
        let mut presented = std::mem::take(&mut self.entries[i].presented);
        for (peer, cert, good) in &mut presented {
            let v = self.judge_cert(i, cert, now);
            let now_good = v.state == FacilityState::Valid;
            if *good && !now_good {
                refused.push(PeerRefused {
                    facility: FacilityId(i as u32),
                    peer: peer.clone(),
                    verdict: v,
                });
            }
            *good = now_good;
        }
        self.entries[i].presented = presented;
        refused
    }

    fn evaluate_some(&mut self, which: Vec<usize>, now: u64) -> (Vec<Change>, Vec<PeerRefused>) {
        let mut changes = Vec::new();
        let mut refused = Vec::new();
        for i in which {
            refused.extend(self.rejudge_presented(i, now));
            let verdict = self.judge(i, now);
            let from = self.entries[i].verdict.state;
            if from != verdict.state {
                changes.push(Change {
                    facility: FacilityId(i as u32),
                    from,
                    to: verdict.state,
                });
            }
            self.entries[i].verdict = verdict;
        }
        (changes, refused)
    }

    /// A peer of `facility` authenticated with `chain` (leaf first): is it the facility's
    /// valid certificate? If so it becomes the one the facility is judged by, and the change
    /// of state, if any, is returned; if not, the verdict that refuses it (the facility's
    /// state does not change: a stolen, revoked certificate does not cut off the facility's
    /// own peer).
    pub fn present(
        &mut self,
        facility: FacilityId,
        peer: &str,
        chain: &[&[u8]],
        now: u64,
    ) -> Result<Option<Change>, Verdict> {
        let i = facility.index();
        let Some(entry) = self.entries.get(i) else {
            return Err(refusal(
                FacilityState::UnknownCa,
                "not a facility of this plan",
            ));
        };
        if entry.spec.source == CertSource::NotRequired {
            return Ok(None);
        }
        let cert = FacilityCert::from_der_chain(chain)
            .map_err(|e| refusal(FacilityState::Invalid, &format!("its certificate: {e}")))?;
        let verdict = self.judge_cert(i, &cert, now);
        if verdict.state != FacilityState::Valid {
            return Err(verdict);
        }
        let entry = &mut self.entries[i];
        entry.presented.retain(|(p, _, _)| p != peer);
        entry.presented.push((peer.to_string(), cert, true));
        // The facility's verdict covers all its routers' certificates.
        let verdict = self.judge(i, now);
        let entry = &mut self.entries[i];
        let from = std::mem::replace(&mut entry.verdict, verdict).state;
        Ok((from != FacilityState::Valid).then_some(Change {
            facility,
            from,
            to: FacilityState::Valid,
        }))
    }

    /// The earliest time at which a verdict can change by time alone.
    pub fn next_recheck(&self) -> Option<u64> {
        self.entries
            .iter()
            .filter_map(|e| e.verdict.recheck_at)
            .min()
    }

    /// Every facility's state, by [`FacilityId`].
    pub fn states(&self) -> Vec<FacilityState> {
        self.entries.iter().map(|e| e.verdict.state).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn verdict(&self, facility: FacilityId) -> Option<&Verdict> {
        self.entries.get(facility.index()).map(|e| &e.verdict)
    }

    pub fn spec(&self, facility: FacilityId) -> Option<&FacilitySpec> {
        self.entries.get(facility.index()).map(|e| &e.spec)
    }

    /// The facility with `code`.
    pub fn find(&self, code: FacilityCode) -> Option<FacilityId> {
        self.by_code.get(&code).copied()
    }

    pub fn cas(&self) -> &[Ca] {
        &self.cas
    }

    fn judge(&self, i: usize, now: u64) -> Verdict {
        let e = &self.entries[i];
        if e.spec.source == CertSource::NotRequired {
            return Verdict {
                state: FacilityState::NotRequired,
                detail: "no certificate required".into(),
                ca: None,
                not_after: 0,
                recheck_at: None,
            };
        }
        // Judged by the certificates its peers presented, when they did: valid while one
        // of them is (a peer whose certificate is refused loses its own tunnel), and judged
        // again when any of them can change.
        let mut valid = None;
        let mut first_refusal = None;
        let mut recheck: Option<u64> = None;
        for (_, cert, _) in &e.presented {
            let v = self.judge_cert(i, cert, now);
            recheck = match (recheck, v.recheck_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if v.state == FacilityState::Valid {
                valid.get_or_insert(v);
            } else {
                first_refusal.get_or_insert(v);
            }
        }
        if let Some(v) = valid.or(first_refusal) {
            return Verdict {
                recheck_at: recheck,
                ..v
            };
        }
        match &e.spec.source {
            CertSource::File(file) => self.judge_cert(i, file, now),
            _ => refusal(
                FacilityState::NotPresented,
                "no peer of this facility has authenticated with its certificate yet",
            ),
        }
    }

    fn judge_cert(&self, i: usize, cert: &FacilityCert, now: u64) -> Verdict {
        let spec = &self.entries[i].spec;
        let pinned = match &spec.source {
            CertSource::File(file) => Some(file.spki.as_slice()),
            _ => None,
        };
        let expect = Expect {
            code: spec.code,
            wireguard_keys: &spec.wireguard_keys,
            pinned_spki: pinned,
        };
        let trusted: Vec<&Ca> = spec.trust.iter().filter_map(|&t| self.cas.get(t)).collect();
        let others: Vec<&Ca> = self
            .cas
            .iter()
            .enumerate()
            .filter(|(t, _)| !spec.trust.contains(t))
            .map(|(_, c)| c)
            .collect();
        verify(cert, &expect, &trusted, &others, now)
    }
}

fn trust_names<'a>(a: &'a Authority, trust: &[usize]) -> Vec<&'a str> {
    trust
        .iter()
        .filter_map(|&t| a.cas.get(t).map(|c| c.name.as_str()))
        .collect()
}

fn not_judged() -> Verdict {
    refusal(FacilityState::NotPresented, "not judged yet")
}

fn refusal(state: FacilityState, detail: &str) -> Verdict {
    Verdict {
        state,
        detail: detail.to_string(),
        ca: None,
        not_after: 0,
        recheck_at: None,
    }
}
