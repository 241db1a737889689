//! The sessions of one `tls` attachment as the TLS thread keeps them: a login makes a session
//! with a cookie and an address of the pool; a client that connects again with the cookie
//! gets the same session back (its address, its routes); a session ends when its client says
//! so, after `idle_timeout` without a connection or without traffic, and `session_timeout`
//! after its login. One session per peer: a new login of the peer ends its older session
//! (the facility's client was restarted), and is given the address it had when that is free.
//! Sans-IO: cookies come in from the caller's random source, `now` is passed.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;

/// A session, as the TLS thread tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: u32,
    /// The peer's name (numbers change with reloads; names do not).
    pub peer: String,
    pub address: Ipv4Addr,
    pub cookie: [u8; 32],
    pub since: Instant,
    /// When it last had traffic or its client (re)connected.
    pub active: Instant,
    /// A connection carries it now.
    pub connected: bool,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client logged off (CSTP DISCONNECT).
    Logoff,
    /// A newer login of the same peer.
    Replaced,
    Idle,
    SessionTimeout,
    /// A reload removed its peer or changed the attachment.
    Removed,
    /// Its facility's certificate, or the one its client presented, is refused now
    /// (revoked, expired, ...).
    Refused,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Logoff => "logoff",
            End::Replaced => "replaced by a new login",
            End::Idle => "idle timeout",
            End::SessionTimeout => "session timeout",
            End::Removed => "removed by a reload",
            End::Refused => "the facility certificate is refused now",
        }
    }
}

/// Every session of one attachment, and its pool.
#[derive(Debug)]
pub struct Book {
    pool: Ipv4Network,
    idle_timeout: Duration,
    session_timeout: Duration,
    sessions: HashMap<u32, Session>,
    next_id: u32,
    /// The address each peer last held, preferred at its next login.
    last_address: HashMap<String, Ipv4Addr>,
}

impl Book {
    pub fn new(pool: Ipv4Network, idle_timeout: Duration, session_timeout: Duration) -> Book {
        Book {
            pool,
            idle_timeout,
            session_timeout,
            sessions: HashMap::new(),
            next_id: 1,
            last_address: HashMap::new(),
        }
    }

    /// Takes a reload's pool and timers; sessions whose address left the pool end.
    pub fn reconfigure(
        &mut self,
        pool: Ipv4Network,
        idle_timeout: Duration,
        session_timeout: Duration,
    ) -> Vec<(Session, End)> {
        self.pool = pool;
        self.idle_timeout = idle_timeout;
        self.session_timeout = session_timeout;
        let gone: Vec<u32> = (self.sessions.values())
            .filter(|s| !pool.contains(s.address))
            .map(|s| s.id)
            .collect();
        gone.into_iter()
            .filter_map(|id| self.end(id, End::Removed))
            .collect()
    }

    pub fn get(&self, id: u32) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// A login of `peer`: a new session with `cookie`, and the session it replaces. `None`
    /// when the pool is exhausted.
    pub fn login(
        &mut self,
        peer: &str,
        cookie: [u8; 32],
        now: Instant,
    ) -> Option<(Session, Option<Session>)> {
        let old = (self.sessions.values())
            .find(|s| s.peer == peer)
            .map(|s| s.id)
            .and_then(|id| self.end(id, End::Replaced))
            .map(|(s, _)| s);
        let address = self.free_address(peer)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let s = Session {
            id,
            peer: peer.to_string(),
            address,
            cookie,
            since: now,
            active: now,
            connected: false,
        };
        self.sessions.insert(id, s.clone());
        self.last_address.insert(peer.to_string(), address);
        Some((s, old))
    }

    /// The session of `cookie`, if it belongs to `peer` (the certificate of the connection
    /// must be of the same facility as that of the login).
    pub fn find(&self, cookie: &[u8], peer: &str) -> Option<&Session> {
        use subtle::ConstantTimeEq;
        (self.sessions.values()).find(|s| bool::from(s.cookie.ct_eq(cookie)) && s.peer == peer)
    }

    /// A connection now carries session `id`.
    pub fn connected(&mut self, id: u32, now: Instant) -> Option<&Session> {
        let s = self.sessions.get_mut(&id)?;
        s.connected = true;
        s.active = now;
        Some(s)
    }

    /// The connection of session `id` went away (the session waits for its client).
    pub fn disconnected(&mut self, id: u32, now: Instant) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.connected = false;
            s.active = now;
        }
    }

    /// Session `id` had traffic.
    pub fn touch(&mut self, id: u32, now: Instant) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.active = now;
        }
    }

    /// Ends session `id`.
    pub fn end(&mut self, id: u32, why: End) -> Option<(Session, End)> {
        self.sessions.remove(&id).map(|s| (s, why))
    }

    /// Ends the sessions whose time is over.
    pub fn expire(&mut self, now: Instant) -> Vec<(Session, End)> {
        let due: Vec<(u32, End)> = (self.sessions.values())
            .filter_map(|s| {
                if now.saturating_duration_since(s.since) >= self.session_timeout {
                    Some((s.id, End::SessionTimeout))
                } else if now.saturating_duration_since(s.active) >= self.idle_timeout {
                    Some((s.id, End::Idle))
                } else {
                    None
                }
            })
            .collect();
        due.into_iter()
            .filter_map(|(id, why)| self.end(id, why))
            .collect()
    }

    /// The sessions of peers no longer in `peers` end (a reload removed them).
    pub fn retain_peers(&mut self, peers: &[&str]) -> Vec<(Session, End)> {
        let gone: Vec<u32> = (self.sessions.values())
            .filter(|s| !peers.contains(&s.peer.as_str()))
            .map(|s| s.id)
            .collect();
        gone.into_iter()
            .filter_map(|id| self.end(id, End::Removed))
            .collect()
    }

    /// The peer's previous address if free, else the lowest free one.
    fn free_address(&self, peer: &str) -> Option<Ipv4Addr> {
        let used = |a: Ipv4Addr| self.sessions.values().any(|s| s.address == a);
        if let Some(&a) = self.last_address.get(peer) {
            if self.pool.contains(a) && !used(a) {
                return Some(a);
            }
        }
        let first = u32::from(self.pool.network());
        let size = 1u64 << (32 - u32::from(self.pool.prefix()));
        let (lo, hi) = if self.pool.prefix() <= 30 {
            (1, size - 1)
        } else {
            (0, size)
        };
        // Addresses another peer held last are handed out only when nothing else is free.
        let reserved = |a: Ipv4Addr| self.last_address.iter().any(|(p, &l)| l == a && p != peer);
        let candidates = || (lo..hi).map(|i| Ipv4Addr::from(first + i as u32));
        candidates()
            .find(|&a| !used(a) && !reserved(a))
            .or_else(|| candidates().find(|&a| !used(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> (Book, Instant) {
        let b = Book::new(
            "10.0.60.0/30".parse().unwrap(),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        (b, Instant::now())
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 60, n)
    }

    #[test]
    fn a_login_gets_an_address_and_a_reconnect_the_same_session() {
        let (mut b, t) = book();
        let (s, old) = b.login("clinic", [1; 32], t).unwrap();
        assert_eq!((s.address, old), (ip(1), None));
        assert_eq!(b.find(&[1; 32], "clinic").map(|s| s.id), Some(s.id));
        assert!(
            b.find(&[1; 32], "pharmacy").is_none(),
            "another facility's cookie"
        );
        assert!(b.find(&[2; 32], "clinic").is_none());
        b.connected(s.id, t);
        b.disconnected(s.id, t + Duration::from_secs(10));
        // Back within the idle timeout: the same session.
        assert!(b.expire(t + Duration::from_secs(60)).is_empty());
        assert_eq!(
            b.connected(s.id, t + Duration::from_secs(60))
                .map(|s| s.address),
            Some(ip(1))
        );
    }

    #[test]
    fn a_new_login_replaces_the_peers_session_and_keeps_its_address() {
        let (mut b, t) = book();
        let (first, _) = b.login("clinic", [1; 32], t).unwrap();
        let (other, _) = b.login("pharmacy", [2; 32], t).unwrap();
        assert_eq!(other.address, ip(2));
        let (second, old) = b.login("clinic", [3; 32], t).unwrap();
        assert_eq!(old.map(|s| s.id), Some(first.id));
        assert_eq!(second.address, ip(1));
        assert!(
            b.find(&[1; 32], "clinic").is_none(),
            "the old cookie is dead"
        );
        // The pool (/30: two hosts) is full.
        assert!(b.login("dentist", [4; 32], t).is_none());
    }

    #[test]
    fn sessions_end_idle_or_at_their_timeout() {
        let (mut b, t) = book();
        let (s, _) = b.login("clinic", [1; 32], t).unwrap();
        let (busy, _) = b.login("pharmacy", [2; 32], t).unwrap();
        for m in 1..=61 {
            b.touch(busy.id, t + Duration::from_secs(m * 59));
            let ended = b.expire(t + Duration::from_secs(m * 59));
            if m == 2 {
                assert_eq!(ended, vec![(s.clone(), End::Idle)]);
            }
        }
        let ended = b.expire(t + Duration::from_secs(3600));
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].0.id, ended[0].1), (busy.id, End::SessionTimeout));
    }

    #[test]
    fn a_reload_ends_the_sessions_of_removed_peers_and_outside_the_pool() {
        let (mut b, t) = book();
        b.login("clinic", [1; 32], t).unwrap();
        b.login("pharmacy", [2; 32], t).unwrap();
        let ended = b.retain_peers(&["clinic"]);
        assert_eq!((ended.len(), ended[0].1), (1, End::Removed));
        let ended = b.reconfigure(
            "10.0.61.0/24".parse().unwrap(),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        assert_eq!(ended.len(), 1);
        assert!(b.is_empty());
    }
}
