use super::*;
use crate::config::Dataplane;
use crate::wire::tcp::{FLAG_ACK, FLAG_PSH, FLAG_SYN};
use proptest::prelude::*;
use std::collections::HashMap;

/// How tests open a flow: TCP with a SYN, anything else as a datagram.
fn start_of(t: &Tuple) -> Start {
    if t.protocol == 6 {
        Start::Syn
    } else {
        Start::Datagram
    }
}

/// What an ordinary packet of `t`'s protocol says: TCP data, or a datagram.
fn data(t: &Tuple) -> Signal {
    if t.protocol == 6 {
        Signal::Tcp(FLAG_ACK | FLAG_PSH)
    } else {
        Signal::Datagram
    }
}

impl FlowTable {
    /// Inserts as the flow's first packet would: TCP flows start with a SYN.
    fn ins(&mut self, flow: Flow, now: Instant) -> Result<Option<Owner>, Refused> {
        self.insert(flow, start_of(&flow.opener), now)
    }

    /// Looks up with an ordinary packet: TCP data, or a datagram.
    fn look(&mut self, t: &Tuple, now: Instant, generation: u64) -> Lookup {
        self.lookup(t, data(t), now, generation)
    }

    fn contains(&self, t: &Tuple) -> bool {
        let key = Key::of(t);
        self.find(&key, self.hasher.hash_one(key)).is_some()
    }

    /// Checks every structural invariant; panics with a description otherwise.
    fn check_invariants(&self) {
        assert!(self.len <= self.capacity);
        assert!(self.slots.len() <= self.capacity);
        assert!(self.index.len() >= 2 * self.capacity);
        let occupied: Vec<(usize, u32)> = (0..self.index.len())
            .filter(|&p| self.index[p] != NIL)
            .map(|p| (p, self.index[p]))
            .collect();
        assert_eq!(occupied.len(), self.len, "index entries");
        for &(pos, slot) in &occupied {
            let key = self.slots[slot as usize].key;
            assert_eq!(self.hasher.hash_one(key), self.slots[slot as usize].hash);
            let hash = self.slots[slot as usize].hash;
            assert_eq!(
                self.find(&key, hash),
                Some((pos, slot)),
                "probe reaches {key:?}"
            );
        }
        let mut listed = 0;
        for (class, list) in self.lru.iter().enumerate() {
            let (mut prev, mut cur) = (NIL, list.head);
            while cur != NIL {
                let s = &self.slots[cur as usize];
                assert_eq!(s.class as usize, class);
                assert_eq!(s.class, s.state.class(s.key.protocol));
                assert_eq!(s.prev, prev);
                if prev != NIL {
                    assert!(self.slots[prev as usize].last_seen <= s.last_seen);
                }
                assert!(
                    occupied.iter().any(|&(_, o)| o == cur),
                    "listed but not indexed"
                );
                listed += 1;
                (prev, cur) = (cur, s.next);
            }
            assert_eq!(list.tail, prev);
        }
        assert_eq!(listed, self.len, "LRU lists");
        let (mut free, mut cur) = (0, self.free);
        while cur != NIL {
            free += 1;
            cur = self.slots[cur as usize].next;
        }
        assert_eq!(free + self.len, self.slots.len(), "free list");
        let mut tenants = vec![0u32; self.tenant_flows.len()];
        let mut facilities = vec![0u32; self.facility_flows.len()];
        for &(_, slot) in &occupied {
            let owner = self.slots[slot as usize].flow.owner;
            if let Some(n) = tenants.get_mut(owner.tenant.index()) {
                *n += 1;
            }
            if let Some(n) = owner.facility.and_then(|f| facilities.get_mut(f.index())) {
                *n += 1;
            }
        }
        assert_eq!(tenants, self.tenant_flows, "flows per tenant");
        assert_eq!(facilities, self.facility_flows, "flows per facility");
        // Owner lists: exactly the transient entries of counted tenants, each in its list, in
        // the order of its class list.
        assert_eq!(
            self.owner_lru.len(),
            self.tenant_flows.len() * Class::TRANSIENT.len()
        );
        let mut in_lists = 0;
        for (list, l) in self.owner_lru.iter().enumerate() {
            let (mut prev, mut cur) = (NIL, l.head);
            while cur != NIL {
                let s = &self.slots[cur as usize];
                assert_eq!(s.olist as usize, list);
                assert_eq!(s.oprev, prev);
                let i = s.class.transient_index().expect("only transient entries");
                assert_eq!(
                    s.flow.owner.tenant.index() * Class::TRANSIENT.len() + i,
                    list
                );
                if prev != NIL {
                    assert!(self.slots[prev as usize].last_seen <= s.last_seen);
                }
                in_lists += 1;
                (prev, cur) = (cur, s.onext);
            }
            assert_eq!(l.tail, prev);
        }
        let expected = occupied
            .iter()
            .filter(|&&(_, slot)| {
                let s = &self.slots[slot as usize];
                s.class.transient() && s.flow.owner.tenant.index() < self.tenant_flows.len()
            })
            .count();
        assert_eq!(
            in_lists, expected,
            "owner lists hold every counted transient entry"
        );
    }
}

const TIMEOUTS: Timeouts = Timeouts {
    tcp: Duration::from_secs(100),
    udp: Duration::from_secs(10),
    icmp: Duration::from_secs(5),
    other: Duration::from_secs(20),
    unreplied: Duration::from_secs(3),
    tcp_transient: Duration::from_secs(3),
    tcp_half_closed: Duration::from_secs(7),
};

fn tuple(src: u8, src_port: u16, dst: u8, dst_port: u16, protocol: u8) -> Tuple {
    Tuple {
        src: Ipv4Addr::new(100, 64, 0, src),
        src_port,
        dst: Ipv4Addr::new(100, 65, 0, dst),
        dst_port,
        protocol,
    }
}

fn reverse(t: Tuple) -> Tuple {
    Tuple {
        src: t.dst,
        src_port: t.dst_port,
        dst: t.src,
        dst_port: t.src_port,
        protocol: t.protocol,
    }
}

fn flow(opener: Tuple, rule: u16, generation: u64) -> Flow {
    Flow {
        opener,
        facility: Some(FacilityCode::parse("4212345674").unwrap()),
        owner: OWNER,
        rule: RuleId(rule),
        generation,
    }
}

const OWNER: Owner = Owner {
    tenant: TenantId(0),
    facility: None,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The responder of `opener`'s flow answers at `now` (a TCP flow completes its handshake):
/// the flow becomes a live conversation.
fn answer(table: &mut FlowTable, opener: Tuple, now: Instant) {
    let first = if opener.protocol == 6 {
        Signal::Tcp(FLAG_SYN | FLAG_ACK)
    } else {
        Signal::Datagram
    };
    assert!(
        matches!(
            table.lookup(&reverse(opener), first, now, 0),
            Lookup::Hit { reply: true, .. }
        ),
        "{opener:?} answered"
    );
    if opener.protocol == 6 {
        table.lookup(&opener, Signal::Tcp(FLAG_ACK), now, 0);
        assert_eq!(table.state(&opener), Some(State::Established));
    }
}

#[test]
fn reply_finds_the_request() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(8, TIMEOUTS);
    let req = tuple(1, 40000, 2, 443, 6);
    let f = flow(req, 3, 7);
    table.ins(f, t0).unwrap();
    assert_eq!(
        table.look(&req, t0, 7),
        Lookup::Hit {
            flow: f,
            reply: false
        }
    );
    assert_eq!(
        table.look(&reverse(req), t0, 7),
        Lookup::Hit {
            flow: f,
            reply: true
        }
    );
    let mut other = req;
    other.src_port = 40001;
    assert_eq!(table.look(&other, t0, 7), Lookup::Miss);
    other = req;
    other.protocol = 17;
    assert_eq!(table.look(&other, t0, 7), Lookup::Miss);
    assert_eq!(table.len(), 1);
    table.check_invariants();
}

#[test]
fn each_protocol_has_its_own_idle_timeout() {
    for (protocol, timeout) in [(6, 100), (17, 10), (1, 5), (47, 20)] {
        let t0 = Instant::now();
        let mut table = FlowTable::new(4, TIMEOUTS);
        let t = tuple(1, 7, 2, 7, protocol);
        table.ins(flow(t, 0, 0), t0).unwrap();
        answer(&mut table, t, t0);
        let at = t0 + secs(timeout);
        assert!(
            matches!(table.look(&t, at, 0), Lookup::Hit { .. }),
            "{protocol}: idle exactly its timeout is alive"
        );
        let at = at + secs(timeout);
        assert!(
            matches!(table.look(&t, at, 0), Lookup::Hit { .. }),
            "{protocol}: the hit refreshed it"
        );
        let late = at + secs(timeout) + Duration::from_millis(1);
        assert_eq!(table.look(&t, late, 0), Lookup::Miss, "{protocol}");
        assert!(table.is_empty(), "{protocol}: the dead entry is gone");
        table.check_invariants();
    }
}

#[test]
fn insert_into_full_table_evicts_an_expired_entry() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, TIMEOUTS);
    let (a, b, c) = (
        tuple(1, 1, 2, 1, 17),
        tuple(1, 2, 2, 2, 17),
        tuple(1, 3, 2, 3, 17),
    );
    table.ins(flow(a, 0, 0), t0).unwrap();
    answer(&mut table, a, t0);
    table.ins(flow(b, 0, 0), t0 + secs(1)).unwrap();
    answer(&mut table, b, t0 + secs(1));
    assert_eq!(table.ins(flow(c, 0, 0), t0 + secs(10)), Err(Refused::Full));
    table.ins(flow(c, 0, 0), t0 + secs(11)).unwrap();
    assert_eq!(table.len(), 2);
    assert!(!table.contains(&a), "the oldest, expired entry was evicted");
    assert!(matches!(
        table.look(&b, t0 + secs(11), 0),
        Lookup::Hit { .. }
    ));
    assert!(matches!(
        table.look(&c, t0 + secs(11), 0),
        Lookup::Hit { .. }
    ));
    table.check_invariants();
}

#[test]
fn eviction_prefers_the_earliest_deadline_across_classes() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, TIMEOUTS);
    let (udp, icmp) = (tuple(1, 1, 2, 1, 17), tuple(1, 0, 2, 0, 1));
    table.ins(flow(udp, 0, 0), t0).unwrap();
    answer(&mut table, udp, t0);
    table.ins(flow(icmp, 0, 0), t0 + secs(1)).unwrap();
    answer(&mut table, icmp, t0 + secs(1));
    table
        .ins(flow(tuple(3, 3, 3, 3, 6), 0, 0), t0 + secs(30))
        .unwrap();
    assert!(table.contains(&udp), "udp died at +10, icmp at +6");
    assert!(!table.contains(&icmp));
}

#[test]
fn hits_move_entries_to_the_back_of_the_lru() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(3, TIMEOUTS);
    let ts: Vec<Tuple> = (1..=3).map(|i| tuple(i, 1, 2, 1, 17)).collect();
    for t in &ts {
        table.ins(flow(*t, 0, 0), t0).unwrap();
        answer(&mut table, *t, t0);
    }
    assert!(matches!(
        table.look(&ts[0], t0 + secs(5), 0),
        Lookup::Hit { .. }
    ));
    assert_eq!(table.expire(t0 + secs(12), 10), 2);
    assert_eq!(table.len(), 1);
    assert!(table.contains(&ts[0]));
    table.check_invariants();
}

#[test]
fn full_of_live_flows() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, TIMEOUTS);
    let (a, b) = (tuple(1, 1, 2, 1, 6), tuple(1, 2, 2, 2, 6));
    for t in [a, b] {
        table.ins(flow(t, 0, 0), t0).unwrap();
        answer(&mut table, t, t0);
    }
    assert_eq!(
        table.ins(flow(tuple(9, 9, 9, 9, 6), 0, 0), t0),
        Err(Refused::Full)
    );
    assert_eq!(table.len(), 2);
    assert!(table.contains(&a) && table.contains(&b));
    assert_eq!(
        table.ins(flow(reverse(a), 1, 0), t0),
        Ok(None),
        "re-admission"
    );
    assert_eq!(table.len(), 2);
    assert_eq!(
        FlowTable::new(0, TIMEOUTS).ins(flow(a, 0, 0), t0),
        Err(Refused::Full)
    );
}

#[test]
fn stale_generation_and_readmission() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(4, TIMEOUTS);
    let req = tuple(1, 5000, 2, 104, 6);
    table.ins(flow(req, 1, 4), t0).unwrap();
    let Lookup::Stale { flow: old, reply } = table.look(&reverse(req), t0, 5) else {
        panic!("generation 4 < 5 must be stale");
    };
    assert!(reply);
    assert_eq!(old.opener, req);
    table
        .ins(
            Flow {
                generation: 5,
                ..old
            },
            t0,
        )
        .unwrap();
    assert_eq!(
        table.look(&reverse(req), t0, 5),
        Lookup::Hit {
            flow: Flow {
                generation: 5,
                ..old
            },
            reply: true
        },
        "orientation kept when the caller passes it back"
    );
    assert_eq!(table.len(), 1);
}

/// A facility's state change makes its own flows stale and leaves every other facility's (and
/// facility-less flows) as they were; a reload makes them all stale.
#[test]
fn a_facility_generation_stales_only_that_facilitys_flows() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(8, TIMEOUTS);
    let owner = |f: Option<u32>| Owner {
        tenant: TenantId(0),
        facility: f.map(FacilityId),
    };
    let mut facilities = vec![0u32, 0];
    let current = |plan: u64, facilities: &[u32], o: &Owner| Generations { plan, facilities }.of(o);
    let flows: Vec<(Tuple, Owner)> = [Some(0), Some(1), None]
        .into_iter()
        .enumerate()
        .map(|(i, f)| (tuple(1, 5000 + i as u16, 2, 104, 17), owner(f)))
        .collect();
    for (t, o) in &flows {
        let generation = current(7, &facilities, o);
        table
            .ins(
                Flow {
                    owner: *o,
                    ..flow(*t, 1, generation)
                },
                t0,
            )
            .unwrap();
    }
    facilities[1] += 1;
    let stale = |table: &mut FlowTable, plan: u64, facilities: &[u32]| -> Vec<bool> {
        flows
            .iter()
            .map(|(t, _)| {
                let g = Generations { plan, facilities };
                matches!(table.lookup(t, data(t), t0, g), Lookup::Stale { .. })
            })
            .collect()
    };
    assert_eq!(stale(&mut table, 7, &facilities), [false, true, false]);
    assert_eq!(stale(&mut table, 8, &facilities), [true, true, true]);
}

#[test]
fn readmission_replaces_the_verdict_as_given() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(4, TIMEOUTS);
    let req = tuple(1, 5000, 2, 104, 6);
    table.ins(flow(req, 1, 4), t0).unwrap();
    let replacement = Flow {
        facility: None,
        ..flow(reverse(req), 2, 6)
    };
    table.ins(replacement, t0).unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(
        table.look(&req, t0, 6),
        Lookup::Hit {
            flow: replacement,
            reply: true
        }
    );
}

#[test]
fn remove_len_and_capacity() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(5, TIMEOUTS);
    assert_eq!(
        (table.len(), table.capacity(), table.is_empty()),
        (0, 5, true)
    );
    let ts: Vec<Tuple> = (1..=4).map(|i| tuple(i, i.into(), 2, 80, 6)).collect();
    for (i, t) in ts.iter().enumerate() {
        table.ins(flow(*t, 0, 0), t0).unwrap();
        assert_eq!(table.len(), i + 1);
    }
    table.remove(&reverse(ts[1]));
    table.remove(&reverse(ts[1]));
    assert_eq!(table.len(), 3);
    assert_eq!(table.look(&ts[1], t0, 0), Lookup::Miss);
    for t in [ts[0], ts[2], ts[3]] {
        assert!(matches!(table.look(&t, t0, 0), Lookup::Hit { .. }));
    }
    assert!(!table.is_empty());
    table.check_invariants();
}

#[test]
fn expire_respects_its_budget_and_spares_live_entries() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(8, TIMEOUTS);
    for i in 1..=3 {
        for protocol in [1, 17] {
            table
                .ins(flow(tuple(i, 1, 1, 1, protocol), 0, 0), t0)
                .unwrap();
            answer(&mut table, tuple(i, 1, 1, 1, protocol), t0);
        }
    }
    table.ins(flow(tuple(1, 1, 1, 1, 6), 0, 0), t0).unwrap();
    answer(&mut table, tuple(1, 1, 1, 1, 6), t0);
    assert_eq!(
        table.expire(t0 + secs(5), 10),
        0,
        "nothing idle too long yet"
    );
    let now = t0 + secs(11);
    assert_eq!(table.expire(now, 2), 2);
    assert_eq!(table.len(), 5);
    assert_eq!(table.expire(now, 0), 0);
    assert_eq!(table.expire(now, 10), 4);
    assert_eq!(table.len(), 1, "the TCP flow lives 100 s");
    assert_eq!(table.expire(now, 10), 0);
    table.check_invariants();
}

#[test]
fn time_running_backwards_does_not_revive_or_corrupt() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, TIMEOUTS);
    let (a, b) = (tuple(1, 1, 2, 1, 17), tuple(1, 2, 2, 2, 17));
    table.ins(flow(a, 0, 0), t0 + secs(20)).unwrap();
    answer(&mut table, a, t0 + secs(20));
    table.ins(flow(b, 0, 0), t0).unwrap();
    answer(&mut table, b, t0);
    table.check_invariants();
    assert!(matches!(
        table.look(&a, t0 + secs(30), 0),
        Lookup::Hit { .. }
    ));
    assert_eq!(table.look(&b, t0 + secs(40), 0), Lookup::Miss);
}

#[test]
fn churn_keeps_the_index_consistent() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(1000, TIMEOUTS);
    let t = |i: u16| tuple((i % 251) as u8, i, 7, 443, 6);
    for round in 0..4u16 {
        for i in 0..1000 {
            table.ins(flow(t(i), round, 0), t0).unwrap();
        }
        for i in (round..1000).step_by(3) {
            table.remove(&t(i));
        }
        for i in 0..1000 {
            let hit = matches!(table.look(&t(i), t0, 0), Lookup::Hit { .. });
            assert_eq!(
                hit,
                i < round || (i - round) % 3 != 0,
                "round {round} flow {i}"
            );
        }
        table.check_invariants();
    }
}

#[test]
fn a_new_flow_is_unreplied_until_the_responder_speaks() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(4, TIMEOUTS);
    let t = tuple(1, 40000, 2, 443, 6);
    table.ins(flow(t, 0, 0), t0).unwrap();
    assert!(matches!(
        table.look(&t, t0 + secs(3), 0),
        Lookup::Hit { reply: false, .. }
    ));
    assert_eq!(
        table.look(&t, t0 + secs(7), 0),
        Lookup::Miss,
        "the opener's own packets do not make it replied"
    );
    table.ins(flow(t, 0, 0), t0 + secs(7)).unwrap();
    answer(&mut table, t, t0 + secs(8));
    assert!(matches!(
        table.look(&t, t0 + secs(50), 0),
        Lookup::Hit { .. }
    ));
    table.check_invariants();
}

#[test]
fn an_unreplied_flow_dies_after_30_s_while_a_replied_tcp_flow_lives_on() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(4, Timeouts::from(&Dataplane::default()));
    let (silent, answered) = (tuple(1, 40000, 2, 443, 6), tuple(1, 40001, 2, 443, 6));
    table.ins(flow(silent, 0, 0), t0).unwrap();
    table.ins(flow(answered, 0, 0), t0).unwrap();
    answer(&mut table, answered, t0);
    let later = t0 + UNREPLIED_TIMEOUT + Duration::from_millis(1);
    assert_eq!(table.look(&silent, later, 0), Lookup::Miss);
    assert!(matches!(
        table.look(&answered, later, 0),
        Lookup::Hit { .. }
    ));
    let much_later = later + secs(7000);
    assert!(matches!(
        table.look(&reverse(answered), much_later, 0),
        Lookup::Hit { reply: true, .. }
    ));
    assert_eq!(table.len(), 1);
    table.check_invariants();
}

#[test]
fn a_flooding_opener_cannot_push_out_replied_flows() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(8, TIMEOUTS);
    let established = tuple(9, 5000, 2, 443, 6);
    table.ins(flow(established, 0, 0), t0).unwrap();
    answer(&mut table, established, t0);
    let flood = |port: u16| tuple(1, port, 2, 443, 6);
    for port in 1..=200 {
        let evicted = (port > 7).then_some(OWNER);
        assert_eq!(
            table.ins(flow(flood(port), 0, 0), t0),
            Ok(evicted),
            "{port}"
        );
        assert_eq!(table.len(), table.capacity().min(port as usize + 1));
    }
    assert!(matches!(
        table.look(&established, t0, 0),
        Lookup::Hit { .. }
    ));
    for port in 1..=193 {
        assert!(
            !table.contains(&flood(port)),
            "{port}: older ones dropped early"
        );
    }
    for port in 194..=200 {
        assert!(table.contains(&flood(port)), "{port}: newest kept");
    }
    let newcomer = tuple(3, 6000, 2, 80, 17);
    table.ins(flow(newcomer, 0, 0), t0).unwrap();
    assert!(table.contains(&newcomer) && !table.contains(&flood(194)));
    answer(&mut table, newcomer, t0);
    table.check_invariants();
}

#[test]
fn early_drop_waits_for_dead_entries_and_stops_at_replied_ones() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(3, TIMEOUTS);
    let (dead, replied, fresh) = (
        tuple(1, 1, 2, 1, 17),
        tuple(1, 2, 2, 2, 6),
        tuple(1, 3, 2, 3, 6),
    );
    table.ins(flow(dead, 0, 0), t0).unwrap();
    answer(&mut table, dead, t0);
    table.ins(flow(replied, 0, 0), t0 + secs(8)).unwrap();
    answer(&mut table, replied, t0 + secs(8));
    table.ins(flow(fresh, 0, 0), t0 + secs(11)).unwrap();
    table
        .ins(flow(tuple(5, 5, 5, 5, 1), 0, 0), t0 + secs(11))
        .unwrap();
    assert!(
        !table.contains(&dead) && table.contains(&fresh),
        "a dead replied entry goes before a live unreplied one"
    );
    assert_eq!(
        table.ins(flow(replied, 0, 0), t0 + secs(11)),
        Ok(None),
        "re-admission keeps it replied"
    );
    answer(&mut table, tuple(5, 5, 5, 5, 1), t0 + secs(11));
    table
        .ins(flow(tuple(6, 6, 6, 6, 6), 0, 0), t0 + secs(11))
        .unwrap();
    assert!(!table.contains(&fresh));
    answer(&mut table, tuple(6, 6, 6, 6, 6), t0 + secs(11));
    assert_eq!(
        table.ins(flow(tuple(7, 7, 7, 7, 6), 0, 0), t0 + secs(11)),
        Err(Refused::Full),
        "all live and replied"
    );
    assert!(matches!(
        table.look(&replied, t0 + secs(60), 0),
        Lookup::Hit { .. }
    ));
    table.check_invariants();
}

#[test]
fn set_timeouts_takes_effect_in_place() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(4, TIMEOUTS);
    let (udp, tcp, silent) = (
        tuple(1, 1, 2, 1, 17),
        tuple(1, 2, 2, 2, 6),
        tuple(1, 3, 2, 3, 17),
    );
    for t in [udp, tcp] {
        table.ins(flow(t, 0, 0), t0).unwrap();
        answer(&mut table, t, t0);
    }
    table.ins(flow(silent, 0, 0), t0).unwrap();
    table.set_timeouts(Timeouts {
        udp: secs(4),
        unreplied: secs(60),
        ..TIMEOUTS
    });
    assert_eq!(table.expire(t0 + secs(5), 10), 1);
    assert!(!table.contains(&udp));
    assert!(matches!(
        table.look(&silent, t0 + secs(50), 0),
        Lookup::Hit { reply: false, .. }
    ));
    table.set_timeouts(Timeouts {
        tcp: secs(5),
        ..TIMEOUTS
    });
    assert_eq!(table.look(&tcp, t0 + secs(50), 0), Lookup::Miss);
    table.set_timeouts(TIMEOUTS);
    assert!(matches!(
        table.look(&silent, t0 + secs(52), 0),
        Lookup::Hit { .. }
    ));
    assert_eq!(table.len(), 1);
    table.check_invariants();
}

#[test]
fn resize_up_keeps_live_entries_their_times_and_order() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(5, TIMEOUTS);
    let gone = tuple(4, 4, 4, 4, 6);
    table.ins(flow(gone, 0, 0), t0).unwrap();
    let ts: Vec<Tuple> = (1..=3).map(|i| tuple(i, 1, 2, 1, 17)).collect();
    for (i, t) in ts.iter().enumerate() {
        table.ins(flow(*t, 0, 0), t0 + secs(i as u64)).unwrap();
        answer(&mut table, *t, t0 + secs(i as u64));
    }
    let silent = tuple(5, 5, 5, 5, 6);
    table.ins(flow(silent, 0, 0), t0 + secs(4)).unwrap();
    assert_eq!(table.len(), 5);
    assert_eq!(table.resize(16), 0, "no live entry dropped");
    assert_eq!((table.len(), table.capacity()), (4, 16));
    assert!(
        !table.contains(&gone),
        "unreplied since +0, dead at +4: not moved"
    );
    table.check_invariants();
    assert!(matches!(
        table.look(&silent, t0 + secs(7), 0),
        Lookup::Hit { reply: false, .. }
    ));
    assert!(matches!(
        table.look(&ts[2], t0 + secs(7), 0),
        Lookup::Hit { reply: false, .. }
    ));
    assert_eq!(table.expire(t0 + secs(11), 10), 2);
    assert!(!table.contains(&ts[0]), "last seen at +0, still");
    assert!(!table.contains(&silent), "still unreplied");
    assert!(table.contains(&ts[1]) && table.contains(&ts[2]));
    for i in 10..24 {
        table
            .ins(flow(tuple(i, 1, 2, 1, 1), 0, 0), t0 + secs(11))
            .unwrap();
    }
    assert_eq!(table.len(), 16);
    table.check_invariants();
}

#[test]
fn resize_down_drops_unreplied_first_then_the_oldest() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(8, TIMEOUTS);
    let replied: Vec<Tuple> = [(1, 6), (2, 17), (3, 6), (4, 1)]
        .iter()
        .map(|&(i, p)| tuple(i, 1, 2, 1, p))
        .collect();
    for (i, t) in replied.iter().enumerate() {
        table.ins(flow(*t, 0, 0), t0 + secs(i as u64)).unwrap();
        answer(&mut table, *t, t0 + secs(i as u64));
    }
    let (u1, u2) = (tuple(8, 1, 2, 1, 6), tuple(9, 1, 2, 1, 6));
    table.ins(flow(u1, 0, 0), t0 + secs(3)).unwrap();
    table.ins(flow(u2, 0, 0), t0 + secs(4)).unwrap();
    assert_eq!(
        table.look(&replied[0], t0 + secs(4), 0),
        Lookup::Hit {
            flow: flow(replied[0], 0, 0),
            reply: false,
        }
    );
    assert_eq!(table.resize(5), 1);
    assert!(!table.contains(&u1) && table.contains(&u2));
    assert_eq!(table.resize(3), 2);
    assert!(!table.contains(&u2));
    assert!(
        !table.contains(&replied[1]),
        "oldest replied, across classes"
    );
    assert!(table.contains(&replied[0]), "refreshed at +4");
    assert_eq!((table.len(), table.capacity()), (3, 3));
    table.check_invariants();
    assert_eq!(table.resize(1), 2);
    assert!(table.contains(&replied[0]));
    assert_eq!(table.resize(0), 1);
    assert!(table.is_empty());
    assert_eq!(table.ins(flow(u1, 0, 0), t0 + secs(4)), Err(Refused::Full));
    assert_eq!(table.resize(2), 0);
    table.ins(flow(u1, 0, 0), t0 + secs(4)).unwrap();
    table.check_invariants();
}

#[test]
fn resize_keeps_the_replied_state() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(2, TIMEOUTS);
    let (a, b) = (tuple(1, 1, 2, 1, 6), tuple(1, 2, 2, 2, 6));
    table.ins(flow(a, 0, 0), t0).unwrap();
    answer(&mut table, a, t0);
    table.ins(flow(b, 0, 0), t0).unwrap();
    assert_eq!(table.resize(2), 0);
    table.ins(flow(tuple(3, 3, 3, 3, 6), 0, 0), t0).unwrap();
    assert!(
        table.contains(&a) && !table.contains(&b),
        "b was the unreplied one"
    );
    assert!(matches!(
        table.look(&a, t0 + secs(50), 0),
        Lookup::Hit { .. }
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        t: Tuple,
        start: Start,
        owner: Owner,
        generation: u64,
        rule: u16,
    },
    Lookup {
        t: Tuple,
        signal: Signal,
        generation: u64,
    },
    Peek {
        t: Tuple,
        generation: u64,
    },
    Remove {
        t: Tuple,
    },
    Expire {
        budget: usize,
    },
    Advance {
        secs: u64,
    },
    Rewind {
        secs: u64,
    },
    Resize {
        capacity: usize,
    },
    SetTimeouts {
        timeouts: Timeouts,
    },
    SetQuotas {
        quotas: Quotas,
    },
    /// A reload: tenants and facilities are renumbered modulo the new counts, facilities
    /// beyond the new count are dropped, and flows of rule 2 lose their owner.
    Reown {
        tenants: usize,
        facilities: usize,
    },
}

fn small_tuple() -> impl Strategy<Value = Tuple> {
    let end = prop::sample::select(vec![(1u8, 1000u16), (2, 1000), (2, 2000), (3, 1000)]);
    let protocol = prop_oneof![3 => prop::sample::select(vec![1u8, 6, 17]), 1 => Just(47)];
    (end.clone(), end, protocol).prop_map(|((s, sp), (d, dp), protocol)| Tuple {
        src: Ipv4Addr::new(100, 64, 0, s),
        src_port: sp,
        dst: Ipv4Addr::new(100, 64, 0, d),
        dst_port: dp,
        protocol,
    })
}

fn tcp_flags() -> impl Strategy<Value = u8> {
    use crate::wire::tcp::{FLAG_FIN, FLAG_RST};
    prop::sample::select(vec![
        FLAG_SYN,
        FLAG_SYN | FLAG_ACK,
        FLAG_ACK,
        FLAG_ACK | FLAG_PSH,
        FLAG_FIN | FLAG_ACK,
        FLAG_RST,
        FLAG_RST | FLAG_ACK,
    ])
}

/// A packet of `t`: a TCP segment with one of the usual flag sets, an echo reply or not.
fn signal_for(t: Tuple) -> BoxedStrategy<Signal> {
    match t.protocol {
        6 => tcp_flags().prop_map(Signal::Tcp).boxed(),
        1 => prop_oneof![Just(Signal::Datagram), Just(Signal::EchoReply)].boxed(),
        _ => Just(Signal::Datagram).boxed(),
    }
}

fn owner() -> impl Strategy<Value = Owner> {
    (0u16..3, prop::option::of(0u32..3)).prop_map(|(t, f)| Owner {
        tenant: TenantId(t),
        facility: f.map(FacilityId),
    })
}

fn timeouts() -> impl Strategy<Value = Timeouts> {
    prop::array::uniform7(1u64..15).prop_map(|[tcp, udp, icmp, other, unreplied, tr, hc]| {
        Timeouts {
            tcp: secs(tcp),
            udp: secs(udp),
            icmp: secs(icmp),
            other: secs(other),
            unreplied: secs(unreplied),
            tcp_transient: secs(tr),
            tcp_half_closed: secs(hc),
        }
    })
}

fn quotas() -> impl Strategy<Value = Quotas> {
    let q = prop_oneof![3 => 0usize..5, 1 => Just(usize::MAX)];
    (q.clone(), q).prop_map(|(per_tenant, per_facility)| Quotas {
        per_tenant,
        per_facility,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let generation = || prop_oneof![3 => Just(0u64), 1 => 1u64..3];
    prop_oneof![
        5 => (small_tuple(), owner(), generation(), 0u16..3, any::<bool>())
            .prop_map(|(t, owner, generation, rule, pickup)| {
                let start = match (t.protocol, pickup) {
                    (6, false) => Start::Syn,
                    (6, true) => Start::Pickup,
                    _ => Start::Datagram,
                };
                Op::Insert { t, start, owner, generation, rule }
            }),
        7 => (small_tuple(), generation())
            .prop_flat_map(|(t, generation)| {
                signal_for(t).prop_map(move |signal| Op::Lookup { t, signal, generation })
            }),
        1 => (small_tuple(), generation()).prop_map(|(t, generation)| Op::Peek { t, generation }),
        1 => small_tuple().prop_map(|t| Op::Remove { t }),
        1 => (0usize..4).prop_map(|budget| Op::Expire { budget }),
        3 => (0u64..4).prop_map(|secs| Op::Advance { secs }),
        1 => (1u64..3).prop_map(|secs| Op::Rewind { secs }),
        1 => (0usize..8).prop_map(|capacity| Op::Resize { capacity }),
        1 => timeouts().prop_map(|timeouts| Op::SetTimeouts { timeouts }),
        1 => quotas().prop_map(|quotas| Op::SetQuotas { quotas }),
        1 => (1usize..4, 0usize..4)
            .prop_map(|(tenants, facilities)| Op::Reown { tenants, facilities }),
    ]
}

const SMALL: Timeouts = Timeouts {
    tcp: Duration::from_secs(12),
    udp: Duration::from_secs(6),
    icmp: Duration::from_secs(2),
    other: Duration::from_secs(4),
    unreplied: Duration::from_secs(3),
    tcp_transient: Duration::from_secs(2),
    tcp_half_closed: Duration::from_secs(5),
};

/// The naive model: a map from the direction-free flow name to the flow, its state, its
/// last-seen time and when it was last touched (a global counter), with the table's rules
/// written the plain way: time never runs backwards, dead entries go earliest deadline first,
/// transient ones are evicted before anything live, quotas count what each owner holds.
type Name = (Ipv4Addr, u16, Ipv4Addr, u16, u8);

#[derive(Debug, Clone, Copy)]
struct Entry {
    flow: Flow,
    state: State,
    last_seen: Instant,
    touched: u64,
}

struct Model {
    flows: HashMap<Name, Entry>,
    /// The latest time passed to the table, as in [`FlowTable`].
    clock: Option<Instant>,
    timeouts: Timeouts,
    capacity: usize,
    quotas: Quotas,
    /// Owners below these indices are counted.
    tenants: usize,
    facilities: usize,
    touches: u64,
}

impl Model {
    fn name(t: &Tuple) -> Name {
        let (a, b) = ((t.src, t.src_port), (t.dst, t.dst_port));
        let ((x, xp), (y, yp)) = if a < b { (a, b) } else { (b, a) };
        (x, xp, y, yp, t.protocol)
    }

    fn tuple(name: Name) -> Tuple {
        let (src, src_port, dst, dst_port, protocol) = name;
        Tuple {
            src,
            src_port,
            dst,
            dst_port,
            protocol,
        }
    }

    fn class(e: &Entry) -> Class {
        e.state.class(e.flow.opener.protocol)
    }

    fn deadline(&self, e: &Entry) -> Instant {
        e.last_seen + self.timeouts.by_class()[Self::class(e) as usize]
    }

    fn dead(&self, e: &Entry) -> bool {
        self.clock.is_some_and(|c| c > self.deadline(e))
    }

    /// The entry `rank` orders first among those `pick` accepts.
    fn first<K: Ord>(
        &self,
        pick: impl Fn(&Entry) -> bool,
        rank: impl Fn(&Entry) -> K,
    ) -> Option<Name> {
        self.flows
            .iter()
            .filter(|(_, e)| pick(e))
            .min_by_key(|(_, e)| rank(e))
            .map(|(n, _)| *n)
    }

    /// Removes the dead entry with the earliest deadline.
    fn expire_one(&mut self) -> bool {
        let victim = self.first(
            |e| self.dead(e),
            |e| (self.deadline(e), Self::class(e) as usize, e.touched),
        );
        victim.is_some_and(|n| self.flows.remove(&n).is_some())
    }

    fn held(&self, owner: Owner) -> (usize, usize) {
        let tenant = self
            .flows
            .values()
            .filter(|e| e.flow.owner.tenant == owner.tenant)
            .count();
        let facility = self
            .flows
            .values()
            .filter(|e| owner.facility.is_some() && e.flow.owner.facility == owner.facility)
            .count();
        (tenant, facility)
    }

    fn over_quota(&self, owner: Owner) -> Option<Refused> {
        let (tenant, facility) = self.held(owner);
        if owner.tenant.index() < self.tenants && tenant >= self.quotas.per_tenant {
            return Some(Refused::TenantQuota);
        }
        match owner.facility {
            Some(f) if f.index() < self.facilities && facility >= self.quotas.per_facility => {
                Some(Refused::FacilityQuota)
            }
            _ => None,
        }
    }

    /// The entry a full table gives up: a transient one of the counted tenant holding the
    /// most flows (lowest index on ties), closest to its deadline; else any transient one.
    fn transient_victim(&self) -> Option<Name> {
        let rank = |e: &Entry| (self.deadline(e), Self::class(e) as usize, e.touched);
        let transient_of = |t: usize| {
            move |e: &Entry| e.flow.owner.tenant.index() == t && Self::class(e).transient()
        };
        let heaviest = (0..self.tenants)
            .filter(|&t| self.flows.values().any(transient_of(t)))
            .min_by_key(|&t| {
                let owner = Owner {
                    tenant: TenantId(t as u16),
                    facility: None,
                };
                (std::cmp::Reverse(self.held(owner).0), t)
            });
        match heaviest {
            Some(t) => self.first(transient_of(t), rank),
            None => self.first(|e| Self::class(e).transient(), rank),
        }
    }

    fn store(&mut self, name: Name, flow: Flow, state: State) {
        self.touches += 1;
        let e = Entry {
            flow,
            state,
            last_seen: self.clock.unwrap(),
            touched: self.touches,
        };
        self.flows.insert(name, e);
    }

    fn insert(&mut self, flow: Flow, start: Start) -> Result<Option<Owner>, Refused> {
        let name = Model::name(&flow.opener);
        if let Some(e) = self.flows.get(&name).copied() {
            self.store(name, flow, e.state);
            return Ok(None);
        }
        if self.over_quota(flow.owner).is_some() {
            for _ in 0..QUOTA_EXPIRE_BUDGET {
                self.expire_one();
            }
            if let Some(refused) = self.over_quota(flow.owner) {
                return Err(refused);
            }
        }
        let mut evicted = None;
        if self.flows.len() >= self.capacity && !self.expire_one() {
            let victim = self.transient_victim().ok_or(Refused::Full)?;
            evicted = self.flows.remove(&victim).map(|e| e.flow.owner);
        }
        self.store(name, flow, State::initial(start));
        Ok(evicted)
    }

    fn lookup(&mut self, t: &Tuple, signal: Option<Signal>, generation: u64) -> Lookup {
        let name = Model::name(t);
        match self.flows.get(&name).copied() {
            Some(e) if !self.dead(&e) => {
                let f = e.flow;
                let reply = *t != f.opener;
                if let Some(signal) = signal {
                    self.store(name, f, e.state.next(reply, signal));
                }
                if f.generation == generation {
                    Lookup::Hit { flow: f, reply }
                } else {
                    Lookup::Stale { flow: f, reply }
                }
            }
            Some(_) => {
                self.flows.remove(&name);
                Lookup::Miss
            }
            None => Lookup::Miss,
        }
    }

    /// The names a resize to `capacity` keeps: transient entries go first, earliest deadline
    /// first, then the least recently seen others.
    fn resize(&mut self, capacity: usize) -> usize {
        let (clock, timeouts) = (self.clock, self.timeouts.by_class());
        self.flows.retain(|_, e| {
            clock.is_none_or(|c| c <= e.last_seen + timeouts[Self::class(e) as usize])
        });
        let mut order: Vec<(Name, Entry)> = self.flows.iter().map(|(n, e)| (*n, *e)).collect();
        order.sort_by_key(|(_, e)| {
            let transient = Self::class(e).transient();
            let at = if transient {
                self.deadline(e)
            } else {
                e.last_seen
            };
            (!transient, at, Self::class(e) as usize, e.touched)
        });
        let excess = order.len().saturating_sub(capacity);
        for (n, _) in &order[..excess] {
            self.flows.remove(n);
        }
        self.capacity = capacity;
        excess
    }

    /// The owner a reload gives `f`.
    fn reowned(f: &Flow, tenants: usize, facilities: usize) -> Option<Owner> {
        (f.rule != RuleId(2)).then(|| Owner {
            tenant: TenantId((f.owner.tenant.index() % tenants) as u16),
            facility: f.owner.facility.filter(|x| x.index() < facilities),
        })
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn flow_table_agrees_with_a_naive_model(
        capacity in prop_oneof![1 => Just(0usize), 8 => 1usize..7],
        quotas in quotas(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let t0 = Instant::now();
        let mut table = FlowTable::new(capacity, SMALL);
        table.set_quotas(quotas);
        table.reown(3, 3, |f| Some(f.owner));
        let mut slab = table.slots.capacity();
        let mut model = Model {
            flows: HashMap::new(),
            clock: None,
            timeouts: SMALL,
            capacity,
            quotas,
            tenants: 3,
            facilities: 3,
            touches: 0,
        };
        let mut now = t0;
        for op in &ops {
            if matches!(
                op,
                Op::Insert { .. } | Op::Lookup { .. } | Op::Peek { .. } | Op::Expire { .. }
            ) {
                model.clock = Some(model.clock.map_or(now, |c| c.max(now)));
            }
            match *op {
                Op::Insert { t, start, owner, generation, rule } => {
                    let f = Flow { owner, ..flow(t, rule, generation) };
                    let expected = model.insert(f, start);
                    prop_assert_eq!(table.insert(f, start, now), expected, "{:?}", op);
                }
                Op::Lookup { t, signal, generation } => {
                    let expected = model.lookup(&t, Some(signal), generation);
                    prop_assert_eq!(table.lookup(&t, signal, now, generation), expected, "{:?}", op);
                }
                Op::Peek { t, generation } => {
                    let expected = model.lookup(&t, None, generation);
                    prop_assert_eq!(table.peek(&t, now, generation), expected, "{:?}", op);
                }
                Op::Remove { t } => {
                    model.flows.remove(&Model::name(&t));
                    table.remove(&t);
                }
                Op::Expire { budget } => {
                    let mut expected = 0;
                    while expected < budget && model.expire_one() {
                        expected += 1;
                    }
                    prop_assert_eq!(table.expire(now, budget), expected);
                }
                Op::Advance { secs: s } => now += secs(s),
                Op::Rewind { secs: s } => now = (now - secs(s)).max(t0),
                Op::SetTimeouts { timeouts } => {
                    model.timeouts = timeouts;
                    table.set_timeouts(timeouts);
                }
                Op::SetQuotas { quotas } => {
                    model.quotas = quotas;
                    table.set_quotas(quotas);
                }
                Op::Resize { capacity } => {
                    let expected = model.resize(capacity);
                    prop_assert_eq!(table.resize(capacity), expected, "{:?}", op);
                    prop_assert_eq!(table.capacity(), capacity);
                    slab = table.slots.capacity();
                }
                Op::Reown { tenants, facilities } => {
                    let orphans: Vec<Name> = model
                        .flows
                        .iter()
                        .filter(|(_, e)| Model::reowned(&e.flow, tenants, facilities).is_none())
                        .map(|(n, _)| *n)
                        .collect();
                    for n in &orphans {
                        model.flows.remove(n);
                    }
                    for e in model.flows.values_mut() {
                        e.flow.owner = Model::reowned(&e.flow, tenants, facilities).unwrap();
                    }
                    (model.tenants, model.facilities) = (tenants, facilities);
                    let removed =
                        table.reown(tenants, facilities, |f| Model::reowned(f, tenants, facilities));
                    prop_assert_eq!(removed, orphans.len());
                }
            }
            // The table holds exactly what the model holds, in the same states.
            prop_assert_eq!(table.len(), model.flows.len(), "after {:?}", op);
            for (name, e) in &model.flows {
                let t = Model::tuple(*name);
                prop_assert_eq!(table.state(&t), Some(e.state), "{:?} after {:?}", name, op);
            }
            for t in 0..model.tenants {
                let owner = Owner { tenant: TenantId(t as u16), facility: None };
                prop_assert_eq!(table.tenant_flows(owner.tenant), model.held(owner).0);
            }
            prop_assert!(table.len() <= model.capacity);
            prop_assert_eq!(table.slots.capacity(), slab, "the slab never reallocates");
            table.check_invariants();
        }
    }
}

#[test]
fn peek_neither_refreshes_nor_advances() {
    let t0 = Instant::now();
    let mut table = FlowTable::new(4, TIMEOUTS);
    let opener = tuple(2, 1000, 3, 104, 6);
    table.ins(flow(opener, 0, 1), t0).unwrap();
    assert!(matches!(
        table.peek(&reverse(opener), t0 + secs(2), 1),
        Lookup::Hit { reply: true, .. }
    ));
    assert_eq!(table.state(&opener), Some(State::SynSent));
    // Not refreshed: the half-open flow dies 3 s after its SYN.
    assert_eq!(table.look(&opener, t0 + secs(4), 1), Lookup::Miss);
}

/// Tables with the real timeouts, and owners to count.
fn real_table(capacity: usize, quotas: Quotas) -> FlowTable {
    let mut table = FlowTable::new(capacity, Timeouts::from(&Dataplane::default()));
    table.set_quotas(quotas);
    table.reown(8, 8, |f| Some(f.owner));
    table
}

fn owned(opener: Tuple, tenant: u16, facility: Option<u32>) -> Flow {
    Flow {
        owner: Owner {
            tenant: TenantId(tenant),
            facility: facility.map(FacilityId),
        },
        ..flow(opener, 0, 0)
    }
}

fn tcp_seg(table: &mut FlowTable, t: Tuple, flags: u8, now: Instant) -> Lookup {
    table.lookup(&t, Signal::Tcp(flags), now, 0)
}

#[test]
fn a_rst_answered_attempt_is_transient_and_goes_before_conversations() {
    use crate::wire::tcp::FLAG_RST;
    let t0 = Instant::now();
    let mut table = real_table(3, Quotas::UNLIMITED);
    let (a, b) = (tuple(1, 1, 2, 80, 6), tuple(1, 2, 2, 80, 6));
    for t in [a, b] {
        table.ins(flow(t, 0, 0), t0).unwrap();
        answer(&mut table, t, t0);
    }
    let refused = tuple(1, 3, 2, 22, 6);
    table.ins(flow(refused, 0, 0), t0).unwrap();
    tcp_seg(&mut table, reverse(refused), FLAG_RST | FLAG_ACK, t0);
    assert_eq!(table.state(&refused), Some(State::Reset));

    let newcomer = tuple(1, 4, 2, 80, 6);
    assert_eq!(table.ins(flow(newcomer, 0, 0), t0), Ok(Some(OWNER)));
    assert!(!table.contains(&refused), "the refused attempt made room");
    assert!(table.contains(&a) && table.contains(&b));
    answer(&mut table, newcomer, t0);
    assert_eq!(
        table.ins(flow(tuple(1, 5, 2, 80, 6), 0, 0), t0),
        Err(Refused::Full),
        "three established conversations are never evicted"
    );
    table.check_invariants();
}

#[test]
fn a_full_table_takes_room_from_the_tenant_holding_the_most() {
    let t0 = Instant::now();
    let mut table = real_table(4, Quotas::UNLIMITED);
    // Tenant 1's handshake is older, closer to its deadline, than tenant 0's three attempts.
    let handshake = tuple(2, 1, 9, 443, 6);
    table.ins(owned(handshake, 1, Some(1)), t0).unwrap();
    let flood: Vec<Tuple> = (1..=3).map(|p| tuple(1, p, 9, 80, 6)).collect();
    for t in &flood {
        table.ins(owned(*t, 0, Some(0)), t0 + secs(1)).unwrap();
    }
    let newcomer = owned(tuple(3, 1, 9, 443, 6), 2, None);
    let evicted = table.ins(newcomer, t0 + secs(2)).unwrap();
    assert_eq!(evicted.map(|o| o.tenant), Some(TenantId(0)));
    assert!(
        !table.contains(&flood[0]),
        "the heaviest tenant's oldest attempt"
    );
    assert!(
        table.contains(&handshake),
        "another tenant's handshake in progress survives"
    );
    // Now tenants 0 and 1 hold 2 and 1: tenant 0 again.
    table
        .ins(owned(tuple(3, 2, 9, 443, 6), 2, None), t0 + secs(2))
        .unwrap();
    assert!(!table.contains(&flood[1]) && table.contains(&handshake));
    // A tie (tenant 0: 1, tenant 1: 1, tenant 2: 2 but all established) goes to the lowest index.
    for p in 1..=2 {
        answer(&mut table, tuple(3, p, 9, 443, 6), t0 + secs(2));
    }
    table
        .ins(owned(tuple(3, 3, 9, 443, 6), 3, None), t0 + secs(2))
        .unwrap();
    assert!(!table.contains(&flood[2]) && table.contains(&handshake));
    table.check_invariants();
}

#[test]
fn a_fin_to_a_silent_address_holds_no_slot() {
    use crate::wire::tcp::FLAG_FIN;
    let t0 = Instant::now();
    let mut table = real_table(2, Quotas::UNLIMITED);
    for p in 1..=2 {
        let t = tuple(1, p, 2, 80, 6);
        table.insert(flow(t, 0, 0), Start::Pickup, t0).unwrap();
        tcp_seg(&mut table, t, FLAG_FIN | FLAG_ACK, t0);
        assert_eq!(table.state(&t), Some(State::Closed));
    }
    assert_eq!(
        table.ins(owned(tuple(5, 5, 6, 443, 6), 1, None), t0),
        Ok(Some(OWNER)),
        "another tenant's SYN evicts an unanswered FIN"
    );
}

#[test]
fn half_open_and_closed_flows_live_seconds_not_hours() {
    use crate::wire::tcp::{FLAG_FIN, FLAG_RST};
    let t0 = Instant::now();
    let mut table = real_table(8, Quotas::UNLIMITED);
    let half_open = tuple(1, 1, 2, 80, 6);
    let rst = tuple(1, 2, 2, 80, 6);
    let fin = tuple(1, 3, 2, 80, 6);
    let established = tuple(1, 4, 2, 80, 6);
    for t in [half_open, rst, fin, established] {
        table.ins(flow(t, 0, 0), t0).unwrap();
    }
    tcp_seg(&mut table, reverse(rst), FLAG_RST | FLAG_ACK, t0);
    for t in [fin, established] {
        answer(&mut table, t, t0);
    }
    tcp_seg(&mut table, fin, FLAG_FIN | FLAG_ACK, t0);
    assert_eq!(table.state(&fin), Some(State::FinFromOpener));
    tcp_seg(&mut table, reverse(fin), FLAG_FIN | FLAG_ACK, t0);
    assert_eq!(table.state(&fin), Some(State::Closed));

    let later = t0 + TCP_TRANSIENT_TIMEOUT + Duration::from_millis(1);
    assert_eq!(table.expire(later, 10), 3);
    assert_eq!(table.len(), 1);
    assert_eq!(table.state(&established), Some(State::Established));
    assert!(matches!(
        table.look(&established, t0 + secs(7000), 0),
        Lookup::Hit { .. }
    ));
}

#[test]
fn a_half_closed_flow_lives_a_minute_and_is_not_evicted() {
    use crate::wire::tcp::FLAG_FIN;
    let t0 = Instant::now();
    let mut table = real_table(1, Quotas::UNLIMITED);
    let t = tuple(1, 1, 2, 80, 6);
    table.ins(flow(t, 0, 0), t0).unwrap();
    answer(&mut table, t, t0);
    tcp_seg(&mut table, t, FLAG_FIN | FLAG_ACK, t0);
    assert_eq!(
        table.ins(flow(tuple(1, 2, 2, 80, 6), 0, 0), t0),
        Err(Refused::Full)
    );
    let alive = t0 + TCP_HALF_CLOSED_TIMEOUT;
    assert!(matches!(
        tcp_seg(&mut table, reverse(t), FLAG_ACK | FLAG_PSH, alive),
        Lookup::Hit { reply: true, .. }
    ));
    let gone = alive + TCP_HALF_CLOSED_TIMEOUT + Duration::from_millis(1);
    assert_eq!(tcp_seg(&mut table, t, FLAG_ACK, gone), Lookup::Miss);
}

#[test]
fn a_picked_up_connection_is_established_by_its_answer() {
    let t0 = Instant::now();
    let mut table = real_table(4, Quotas::UNLIMITED);
    let t = tuple(1, 1, 2, 80, 6);
    table.insert(flow(t, 0, 0), Start::Pickup, t0).unwrap();
    assert_eq!(table.state(&t), Some(State::PickedUp));
    tcp_seg(&mut table, reverse(t), FLAG_ACK, t0 + secs(1));
    assert_eq!(table.state(&t), Some(State::Established));
    assert!(matches!(
        table.look(&t, t0 + secs(3600), 0),
        Lookup::Hit { .. }
    ));
}

#[test]
fn quotas_per_tenant_and_per_facility() {
    let t0 = Instant::now();
    let quotas = Quotas {
        per_tenant: 3,
        per_facility: 2,
    };
    let mut table = real_table(16, quotas);
    let f = |port: u16, tenant: u16, facility: Option<u32>| {
        owned(tuple(1, port, 2, 80, 6), tenant, facility)
    };
    table.ins(f(1, 0, Some(0)), t0).unwrap();
    table.ins(f(2, 0, Some(0)), t0).unwrap();
    assert_eq!(table.ins(f(3, 0, Some(0)), t0), Err(Refused::FacilityQuota));
    table.ins(f(4, 0, Some(1)), t0).unwrap();
    assert_eq!(table.ins(f(5, 0, None), t0), Err(Refused::TenantQuota));
    assert_eq!(
        table.ins(f(6, 0, Some(2)), t0),
        Err(Refused::TenantQuota),
        "the tenant quota holds whatever the facility"
    );
    table.ins(f(7, 1, Some(2)), t0).unwrap();
    table.ins(f(8, 1, None), t0).unwrap();
    assert_eq!(table.tenant_flows(TenantId(0)), 3);
    assert_eq!(table.tenant_flows(TenantId(1)), 2);
    assert_eq!(table.facility_flows(FacilityId(0)), 2);
    assert_eq!(table.len(), 5);
    // Re-admission of a held flow is never refused.
    assert_eq!(table.ins(f(1, 0, Some(0)), t0), Ok(None));
    // Removing one makes room for exactly one.
    table.remove(&tuple(1, 1, 2, 80, 6));
    table.ins(f(3, 0, Some(0)), t0).unwrap();
    assert_eq!(
        table.ins(f(9, 0, Some(0)), t0),
        Err(Refused::TenantQuota),
        "the tenant's quota is asked first"
    );
    table.check_invariants();
}

#[test]
fn a_refused_flow_evicts_nothing_and_dead_entries_do_not_hold_a_quota() {
    let t0 = Instant::now();
    let quotas = Quotas {
        per_tenant: 2,
        per_facility: usize::MAX,
    };
    let mut table = real_table(2, quotas);
    let (a, b) = (tuple(1, 1, 2, 80, 6), tuple(1, 2, 2, 80, 6));
    table.ins(owned(a, 0, None), t0).unwrap();
    table.ins(owned(b, 0, None), t0).unwrap();
    assert_eq!(
        table.ins(owned(tuple(1, 3, 2, 80, 6), 0, None), t0),
        Err(Refused::TenantQuota)
    );
    assert!(table.contains(&a) && table.contains(&b), "nothing evicted");
    // Both half-open attempts die; the next attempt removes them and gets in.
    let later = t0 + TCP_TRANSIENT_TIMEOUT + Duration::from_millis(1);
    assert_eq!(
        table.ins(owned(tuple(1, 3, 2, 80, 6), 0, None), later),
        Ok(None)
    );
    assert_eq!(table.tenant_flows(TenantId(0)), 1);
    table.check_invariants();
}

#[test]
fn reown_recounts_by_the_new_numbering_and_drops_orphans() {
    let t0 = Instant::now();
    let mut table = real_table(8, Quotas::UNLIMITED);
    for (port, tenant, facility) in [(1, 0, Some(0)), (2, 1, Some(1)), (3, 1, None), (4, 2, None)] {
        table
            .ins(owned(tuple(1, port, 2, 80, 17), tenant, facility), t0)
            .unwrap();
    }
    // Tenant 0 is gone; tenants 1 and 2 swap numbers; facility 1 becomes 0.
    let removed = table.reown(2, 1, |f| {
        let tenant = match f.owner.tenant.0 {
            0 => return None,
            t => TenantId(2 - t),
        };
        let facility = f.owner.facility.map(|_| FacilityId(0));
        Some(Owner { tenant, facility })
    });
    assert_eq!(removed, 1);
    assert_eq!(table.len(), 3);
    assert_eq!(table.tenant_flows(TenantId(1)), 2, "the old tenant 1");
    assert_eq!(table.tenant_flows(TenantId(0)), 1, "the old tenant 2");
    assert_eq!(table.facility_flows(FacilityId(0)), 1);
    assert!(!table.contains(&tuple(1, 1, 2, 80, 17)));
    table.check_invariants();
}

/// One step of a mixed workload: tenant 0 floods through facility 0 (half-open SYNs,
/// RST-answered SYNs, unanswered datagrams, FINs to silent addresses) and through facility 1,
/// whose handshakes a colluding responder completes; tenants 1–3 open connections over several
/// steps (SYN, retransmissions, then the answer) and keep using them.
#[derive(Debug, Clone)]
enum Step {
    HalfOpen { facility: u32 },
    RstAnswered { facility: u32 },
    Datagram { facility: u32 },
    SilentFin { facility: u32 },
    Colluding,
    LegitSyn { tenant: u16 },
    LegitAnswer { tenant: u16 },
    LegitClose { tenant: u16 },
    Advance { millis: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    let facility = || 0u32..2;
    let legit = || 1u16..4;
    prop_oneof![
        4 => facility().prop_map(|facility| Step::HalfOpen { facility }),
        4 => facility().prop_map(|facility| Step::RstAnswered { facility }),
        2 => facility().prop_map(|facility| Step::Datagram { facility }),
        2 => facility().prop_map(|facility| Step::SilentFin { facility }),
        3 => Just(Step::Colluding),
        3 => legit().prop_map(|tenant| Step::LegitSyn { tenant }),
        3 => legit().prop_map(|tenant| Step::LegitAnswer { tenant }),
        1 => legit().prop_map(|tenant| Step::LegitClose { tenant }),
        3 => (0u64..3000).prop_map(|millis| Step::Advance { millis }),
    ]
}

#[derive(Default)]
struct Legit {
    pending: Option<Tuple>,
    established: Vec<Tuple>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A table of 32 with quotas of 24 per tenant and 12 per facility: the flooding tenant
    /// can hold 24 (at most 12 of them established, through facility 1), the others at most
    /// 15, so the table fills, and a full table must take its room from the flood. No other
    /// tenant is ever refused a flow or loses one, a handshake in progress included; no quota
    /// is exceeded; the flood meets its facility's quota.
    #[test]
    fn a_flooding_tenant_only_hurts_itself(steps in prop::collection::vec(step(), 1..400)) {
        use crate::wire::tcp::{FLAG_FIN, FLAG_RST};
        let quotas = Quotas { per_tenant: 24, per_facility: 12 };
        let mut table = real_table(32, quotas);
        let mut now = Instant::now();
        let mut port = 0u16;
        let mut next_port = || { port = port.wrapping_add(1); port };
        let mut legit: HashMap<u16, Legit> = HashMap::new();
        let mut refused = 0usize;
        let flood = (0..40).map(|_| Step::HalfOpen { facility: 0 });
        for (i, step) in flood.chain(steps.iter().cloned()).enumerate() {
            match step {
                Step::HalfOpen { facility }
                | Step::RstAnswered { facility }
                | Step::Datagram { facility }
                | Step::SilentFin { facility } => {
                    let protocol = if matches!(step, Step::Datagram { .. }) { 17 } else { 6 };
                    let t = tuple(10 + facility as u8, next_port(), 20, 7, protocol);
                    let start = match step {
                        Step::SilentFin { .. } => Start::Pickup,
                        _ => start_of(&t),
                    };
                    match table.insert(owned(t, 0, Some(facility)), start, now) {
                        Ok(evicted) => {
                            prop_assert!(evicted.is_none_or(|o| o.tenant == TenantId(0)));
                            match step {
                                Step::RstAnswered { .. } => {
                                    tcp_seg(&mut table, reverse(t), FLAG_RST | FLAG_ACK, now);
                                }
                                Step::SilentFin { .. } => {
                                    tcp_seg(&mut table, t, FLAG_FIN | FLAG_ACK, now);
                                }
                                _ => {}
                            }
                        }
                        Err(Refused::Full) => prop_assert!(false, "the table refused the flood"),
                        Err(_) => refused += 1,
                    }
                }
                Step::Colluding => {
                    let t = tuple(11, next_port(), 21, 7, 6);
                    match table.ins(owned(t, 0, Some(1)), now) {
                        Ok(evicted) => {
                            prop_assert!(evicted.is_none_or(|o| o.tenant == TenantId(0)));
                            answer(&mut table, t, now);
                        }
                        Err(Refused::Full) => prop_assert!(false, "the table refused the flood"),
                        Err(_) => refused += 1,
                    }
                }
                Step::LegitSyn { tenant } => {
                    let mine = legit.entry(tenant).or_default();
                    if mine.pending.is_none() && mine.established.len() < 4 {
                        let t = tuple(30 + tenant as u8, next_port(), 40 + tenant as u8, 443, 6);
                        let f = owned(t, tenant, Some(1 + u32::from(tenant)));
                        let got = table.ins(f, now);
                        prop_assert!(got.is_ok(), "{:?} refused: {:?}", t, got);
                        prop_assert!(got.unwrap().is_none_or(|o| o.tenant == TenantId(0)));
                        mine.pending = Some(t);
                    }
                }
                Step::LegitAnswer { tenant } => {
                    let mine = legit.entry(tenant).or_default();
                    if let Some(t) = mine.pending.take() {
                        answer(&mut table, t, now);
                        mine.established.push(t);
                    }
                }
                Step::LegitClose { tenant } => {
                    let mine = legit.entry(tenant).or_default();
                    if !mine.established.is_empty() {
                        table.remove(&mine.established.remove(0));
                    }
                }
                Step::Advance { millis } => now += Duration::from_millis(millis),
            }
            // The legitimate tenants keep talking: data on their connections at every step,
            // and the SYN retransmitted, when time passes, on a handshake that waits for its
            // answer (so the flood's attempts are younger than it).
            let retransmit = matches!(step, Step::Advance { .. });
            for l in legit.values() {
                for &t in &l.established {
                    let hit = tcp_seg(&mut table, t, FLAG_ACK | FLAG_PSH, now);
                    prop_assert!(matches!(hit, Lookup::Hit { .. }), "{:?} lost at step {}", t, i);
                    prop_assert_eq!(table.state(&t), Some(State::Established));
                }
                if let Some(t) = l.pending {
                    prop_assert_eq!(table.state(&t), Some(State::SynSent), "{:?} at step {}", t, i);
                    if retransmit {
                        tcp_seg(&mut table, t, FLAG_SYN, now);
                    }
                }
            }
            for t in 0..4 {
                prop_assert!(table.tenant_flows(TenantId(t)) <= quotas.per_tenant);
            }
            for f in 0..5 {
                prop_assert!(table.facility_flows(FacilityId(f)) <= quotas.per_facility);
            }
            if i == 39 {
                prop_assert_eq!(refused, 28, "the flood met its facility's quota");
            }
            table.check_invariants();
        }
    }
}

mod accounting {
    use super::*;

    fn removals(table: &mut FlowTable) -> Vec<Removed> {
        let mut out = Vec::new();
        table.take_removed(|r| out.push(*r));
        out
    }

    #[test]
    fn packets_and_bytes_are_credited_to_the_direction_they_went() {
        let now = Instant::now();
        let mut table = FlowTable::new(8, TIMEOUTS);
        table.record_removals();
        let t = tuple(1, 1000, 2, 53, 17);
        table.ins(flow(t, 0, 0), now).unwrap();
        table.account(100);
        assert!(matches!(
            table.look(&reverse(t), now, 0),
            Lookup::Hit { reply: true, .. }
        ));
        table.account(300);
        table.account(300);
        table.look(&t, now, 0);
        table.account(50);
        // A peek (an ICMP error about the flow) credits nothing.
        table.peek(&t, now, 0);
        table.account(9999);
        table.remove(&t);
        // Nothing is credited after the flow is gone.
        table.account(9999);
        let r = removals(&mut table);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].why, Removal::Removed);
        assert_eq!(r[0].packets, [2, 2]);
        assert_eq!(r[0].bytes, [150, 600]);
        assert_eq!(r[0].started, now);
        assert!(removals(&mut table).is_empty(), "taken once");
    }

    #[test]
    fn every_way_out_is_reported() {
        let now = Instant::now();
        let mut table = FlowTable::new(2, TIMEOUTS);
        table.record_removals();
        let udp = tuple(1, 1000, 2, 53, 17);
        let rst = tuple(1, 1001, 2, 443, 6);
        table.ins(flow(udp, 0, 0), now).unwrap();
        answer(&mut table, udp, now);
        table.ins(flow(rst, 0, 0), now).unwrap();
        tcp_seg(&mut table, reverse(rst), crate::wire::tcp::FLAG_RST, now);
        // The reset flow dies after the transient timeout: closed. The UDP flow idles out.
        assert_eq!(table.expire(now + secs(4), 10), 1);
        assert_eq!(table.expire(now + secs(11), 10), 1);
        let r = removals(&mut table);
        let whys: Vec<(Tuple, Removal)> = r.iter().map(|r| (r.flow.opener, r.why)).collect();
        assert_eq!(whys, [(rst, Removal::Closed), (udp, Removal::Idle)]);
        // A full table evicts a transient flow for a new one.
        let now = now + secs(20);
        let a = tuple(3, 1, 2, 80, 6);
        let b = tuple(4, 1, 2, 80, 6);
        let c = tuple(5, 1, 2, 80, 6);
        table.ins(flow(a, 0, 0), now).unwrap();
        table.ins(flow(b, 0, 0), now).unwrap();
        table.ins(flow(c, 0, 0), now).unwrap();
        let r = removals(&mut table);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].why, Removal::Evicted);
        // A new plan without the opener's tenant orphans the flows.
        table.reown(1, 0, |_| None);
        assert!(removals(&mut table)
            .iter()
            .all(|r| r.why == Removal::Orphaned));
        assert!(table.is_empty());
    }

    #[test]
    fn a_full_buffer_counts_what_it_loses() {
        let now = Instant::now();
        let mut table = FlowTable::new(REMOVED_BUFFER + 10, TIMEOUTS);
        table.record_removals();
        for i in 0..REMOVED_BUFFER + 10 {
            let t = tuple((i % 250) as u8, (i / 250) as u16 + 1, 2, 53, 17);
            table.ins(flow(t, 0, 0), now).unwrap();
        }
        assert_eq!(
            table.expire(now + secs(60), usize::MAX),
            REMOVED_BUFFER + 10
        );
        assert_eq!(removals(&mut table).len(), REMOVED_BUFFER);
        assert_eq!(table.removed_lost(), 10);
        // Without recording, nothing is kept and nothing is lost.
        let mut quiet = FlowTable::new(4, TIMEOUTS);
        quiet.ins(flow(tuple(1, 1, 2, 53, 17), 0, 0), now).unwrap();
        quiet.expire(now + secs(60), 10);
        assert!(removals(&mut quiet).is_empty());
        assert_eq!(quiet.removed_lost(), 0);
    }

    #[test]
    fn each_flow_reports_the_live_ones() {
        let now = Instant::now();
        let mut table = FlowTable::new(4, TIMEOUTS);
        let t = tuple(1, 1000, 2, 53, 17);
        table.ins(flow(t, 0, 0), now).unwrap();
        table.account(10);
        let mut seen = Vec::new();
        table.each_flow(Removal::Removed, |r| seen.push((r.flow.opener, r.bytes)));
        assert_eq!(seen, [(t, [10, 0])]);
        assert_eq!(table.len(), 1);
    }
}
