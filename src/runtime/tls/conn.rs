//! One client connection of a `tls` attachment: the TLS handshake (a client certificate
//! chaining to the attachment's `client_ca`), the facility its certificate names judged by
//! the registry, then HTTP: the login (`POST`, answered with a session cookie) or the tunnel
//! (`CONNECT` with the cookie, answered with the session's address and routes), and then CSTP
//! frames both ways until the client logs off, the connection breaks (the session waits for
//! the client to come back) or the session ends.
//!
//! Each CSTP frame is written with one write into rustls, whose buffer is unlimited, so each
//! frame is one TLS record: openconnect drops frames that do not start a record.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use super::{tell, ConnHandle, Shared};
use crate::crypto::Random;
use crate::facility::FacilityCert;
use crate::ids::PeerId;
use crate::tunnel::tls::auth::{self, AuthKind, LoginRefusal, SessionCookie};
use crate::tunnel::tls::book::End;
use crate::tunnel::tls::connect::{self, ConnectRefusal, TunnelParams};
use crate::tunnel::tls::cstp::{self, Kind};
use crate::tunnel::tls::http::{self, HttpError, Request, MAX_BODY, MAX_HEAD};
use crate::tunnel::tls::relay::{self, Message, PACKET_HEADER};
use crate::vocab::{DropReason, HandshakeResult};

/// A client must finish the TLS handshake within this.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// And send each HTTP request within this.
const REQUEST: Duration = Duration::from_secs(15);
/// A client the gateway refuses gets this long to read the answer.
const REFUSED: Duration = Duration::from_secs(2);
/// A write to a client that does not read ends its connection after this.
const WRITE: Duration = Duration::from_secs(10);
/// Packets waiting for one client's connection.
const CLIENT_QUEUE: usize = 256;

/// Who the certificate says the client is, or why it is refused.
enum Identity {
    Peer {
        name: String,
        facility: String,
    },
    Refused {
        result: HandshakeResult,
        peer: Option<PeerId>,
        login: LoginRefusal,
        connect: ConnectRefusal,
        why: String,
    },
}

pub(super) async fn serve(
    shared: Rc<RefCell<Shared>>,
    attachment: String,
    tcp: TcpStream,
    remote: SocketAddr,
    mut slot: super::Slot,
) {
    let (server, relay, generation) = {
        let sh = shared.borrow();
        let Some(att) = sh.attachments.get(&attachment) else {
            return;
        };
        (att.server.clone(), att.relay.clone(), att.generation)
    };
    let Some(server) = server else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let refused = |result| Message::Refused {
        result,
        peer: None,
        generation,
    };
    let accepted = tokio::time::timeout(
        HANDSHAKE,
        tokio_rustls::TlsAcceptor::from(server).accept(tcp),
    )
    .await;
    let mut tls = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let rustls_error = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            let (result, why) = match rustls_error {
                Some(rustls::Error::NoCertificatesPresented) => (
                    HandshakeResult::Certificate,
                    "no client certificate".to_string(),
                ),
                Some(rustls::Error::InvalidCertificate(c)) => (
                    HandshakeResult::Certificate,
                    format!("client certificate refused: {c:?}"),
                ),
                Some(other) => (HandshakeResult::Invalid, format!("TLS: {other}")),
                None => (HandshakeResult::Invalid, format!("TLS: {e}")),
            };
            tracing::warn!(attachment, %remote, "TLS login refused: {why}");
            tell(&relay, refused(result)).await;
            return;
        }
        Err(_) => {
            tracing::info!(attachment, %remote, "TLS handshake timed out");
            tell(&relay, refused(HandshakeResult::Timeout)).await;
            return;
        }
    };
    // One frame, one record: rustls must take every write whole.
    tls.get_mut().1.set_buffer_limit(None);
    // The peer's number and the plan generation it belongs to, read together.
    let (identity, generation) = identify(&shared, &attachment, &tls);
    if let Identity::Refused {
        result, peer, why, ..
    } = &identity
    {
        tracing::warn!(attachment, %remote, "TLS login refused: {why}");
        tell(
            &relay,
            Message::Refused {
                result: *result,
                peer: *peer,
                generation,
            },
        )
        .await;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // A refused client gets a short while to ask, to read why.
        let within = match identity {
            Identity::Peer { .. } => REQUEST,
            Identity::Refused { .. } => REFUSED,
        };
        let request = match read_request(&mut tls, &mut buf, within).await {
            Ok(r) => r,
            Err(None) => return,
            Err(Some(e)) => {
                let mut out = Vec::new();
                http::write_error(&mut out, e.status());
                let _ = tls.write_all(&out).await;
                let _ = tls.shutdown().await;
                tracing::info!(attachment, %remote, "TLS client sent a bad request: {e}");
                return;
            }
        };
        let (name, facility) = match &identity {
            Identity::Peer { name, facility, .. } => (name.clone(), facility.clone()),
            Identity::Refused { login, connect, .. } => {
                let mut out = Vec::new();
                match request {
                    Request::Login(_) => auth::write_login_refusal(&mut out, *login),
                    Request::Connect(_) => connect::write_connect_refusal(&mut out, *connect),
                    Request::Other(_) => http::write_error(&mut out, 404),
                }
                let _ = tls.write_all(&out).await;
                let _ = tls.shutdown().await;
                return;
            }
        };
        match request {
            Request::Login(l) => {
                let mut out = Vec::new();
                if l.auth.kind != AuthKind::Init {
                    auth::write_login_refusal(&mut out, LoginRefusal::CertificateOnly);
                    let _ = tls.write_all(&out).await;
                    let _ = tls.shutdown().await;
                    return;
                }
                match login(&shared, &attachment, &name, remote) {
                    Some(cookie) => auth::write_login_success(&mut out, &cookie),
                    None => auth::write_login_refusal(&mut out, LoginRefusal::Unavailable),
                }
                if tls.write_all(&out).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
            }
            Request::Connect(c) => {
                let (session, address, params) = match open_tunnel(
                    &shared,
                    &attachment,
                    &name,
                    c.cookie.as_str(),
                ) {
                    Ok(t) => t,
                    Err(why) => {
                        tracing::info!(attachment, peer = name, %remote, "TLS tunnel refused: {}", why.reason());
                        let mut out = Vec::new();
                        connect::write_connect_refusal(&mut out, why);
                        let _ = tls.write_all(&out).await;
                        let _ = tls.shutdown().await;
                        return;
                    }
                };
                let mut out = Vec::new();
                if connect::write_connected(&mut out, &params.as_params(address)).is_err() {
                    return;
                }
                if tls.write_all(&out).await.is_err() || tls.flush().await.is_err() {
                    return;
                }
                // Its client known: no longer one of the handshakes the limits count.
                slot.known();
                tunnel(
                    &shared,
                    &attachment,
                    TunnelCtx {
                        name,
                        facility,
                        session,
                        address,
                        remote,
                    },
                    tls,
                    buf,
                )
                .await;
                return;
            }
            Request::Other(_) => {
                let mut out = Vec::new();
                http::write_error(&mut out, 404);
                let _ = tls.write_all(&out).await;
                let _ = tls.shutdown().await;
                return;
            }
        }
    }
}

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

/// The facility the client's certificate names, its peer on this attachment, and the
/// registry's judgement of the certificate; with the generation of the plan whose numbers
/// it uses.
fn identify(shared: &Rc<RefCell<Shared>>, attachment: &str, tls: &Tls) -> (Identity, u64) {
    let generation = shared
        .borrow()
        .attachments
        .get(attachment)
        .map_or(0, |a| a.generation);
    (identify_in(shared, attachment, tls), generation)
}

fn identify_in(shared: &Rc<RefCell<Shared>>, attachment: &str, tls: &Tls) -> Identity {
    let refuse = |result, peer, login, connect, why: String| Identity::Refused {
        result,
        peer,
        login,
        connect,
        why,
    };
    let chain: Vec<&[u8]> = match tls.get_ref().1.peer_certificates() {
        Some(c) if !c.is_empty() => c.iter().map(|c| c.as_ref()).collect(),
        _ => {
            return refuse(
                HandshakeResult::Certificate,
                None,
                LoginRefusal::NoCertificate,
                ConnectRefusal::FacilityRefused,
                "no client certificate".into(),
            )
        }
    };
    let cert = match FacilityCert::from_der_chain(&chain) {
        Ok(c) => c,
        Err(e) => {
            return refuse(
                HandshakeResult::Certificate,
                None,
                LoginRefusal::CertificateRefused,
                ConnectRefusal::FacilityRefused,
                format!("its certificate: {e}"),
            )
        }
    };
    let sh = shared.borrow();
    let Some(att) = sh.attachments.get(attachment) else {
        return refuse(
            HandshakeResult::Invalid,
            None,
            LoginRefusal::Unavailable,
            ConnectRefusal::Unavailable,
            "the attachment is gone".into(),
        );
    };
    let Some((code, (peer, name))) =
        (cert.codes.iter()).find_map(|c| att.by_facility.get(c).map(|p| (c.clone(), p.clone())))
    else {
        return refuse(
            HandshakeResult::UnknownPeer,
            None,
            LoginRefusal::CertificateRefused,
            ConnectRefusal::FacilityRefused,
            format!(
                "certificate {} ({}) names facility {}, which has no peer on this attachment",
                cert.serial,
                cert.subject,
                cert.codes.join(", ")
            ),
        );
    };
    let Ok(facility) = crate::ids::FacilityCode::parse(&code) else {
        return refuse(
            HandshakeResult::Certificate,
            Some(peer),
            LoginRefusal::CertificateRefused,
            ConnectRefusal::FacilityRefused,
            format!("facility code {code}"),
        );
    };
    match sh
        .presenter
        .present(facility, &name, &chain, super::super::ike::unix_now())
    {
        Ok(()) => Identity::Peer {
            name,
            facility: code,
        },
        Err(verdict) => refuse(
            HandshakeResult::Certificate,
            Some(peer),
            LoginRefusal::CertificateRefused,
            ConnectRefusal::FacilityRefused,
            format!(
                "peer {name}, facility {code}: certificate {}: {}",
                verdict.state, verdict.detail
            ),
        ),
    }
}

/// Reads one request: `Err(None)` when the client went away (or timed out), `Err(Some)` for
/// a request to refuse.
async fn read_request(
    tls: &mut Tls,
    buf: &mut Vec<u8>,
    within: Duration,
) -> Result<Request, Option<HttpError>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match http::parse_request(buf) {
            Ok((r, n)) => {
                buf.drain(..n);
                return Ok(r);
            }
            Err(HttpError::Incomplete) if buf.len() < MAX_HEAD + MAX_BODY => {}
            Err(HttpError::Incomplete) => return Err(Some(HttpError::HeadTooLong)),
            Err(e) => return Err(Some(e)),
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, tls.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(None),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A login of `peer`: its new session's cookie (hex of 32 random bytes).
fn login(
    shared: &Rc<RefCell<Shared>>,
    attachment: &str,
    peer: &str,
    remote: SocketAddr,
) -> Option<SessionCookie> {
    let mut sh = shared.borrow_mut();
    let mut raw = [0u8; 32];
    sh.rng.fill(&mut raw).ok()?;
    let att = sh.attachments.get_mut(attachment)?;
    let Some((s, old)) = att.book.login(peer, raw, Instant::now()) else {
        tracing::warn!(attachment, peer, %remote, "TLS login refused: no address left in the pool");
        return None;
    };
    if let Some(old) = old {
        super::finish(att, &old, End::Replaced);
        let relay = att.relay.clone();
        tokio::task::spawn_local(async move {
            tell(&relay, Message::Down { session: old.id }).await;
        });
    }
    tracing::info!(attachment, peer, %remote, address = %s.address, "TLS login");
    SessionCookie::new(&hex(&raw)).ok()
}

/// What CONNECT's answer carries besides the address.
struct Params {
    server_name: String,
    netmask: std::net::Ipv4Addr,
    split: Vec<ipnetwork::Ipv4Network>,
    dns: Vec<std::net::Ipv4Addr>,
    dpd: u32,
    keepalive: u32,
    idle: u32,
    session: u32,
    mtu: u16,
}

impl Params {
    fn as_params(&self, address: std::net::Ipv4Addr) -> TunnelParams<'_> {
        TunnelParams {
            server_name: &self.server_name,
            address,
            netmask: self.netmask,
            split_include: &self.split,
            dns: &self.dns,
            tunnel_all_dns: false,
            dpd: self.dpd,
            keepalive: self.keepalive,
            idle_timeout: Some(self.idle),
            session_timeout: Some(self.session),
            disconnected_timeout: Some(self.idle),
            tcp_keepalive: true,
            base_mtu: 1500,
            mtu: self.mtu,
        }
    }
}

/// The session of `cookie`, if it is `peer`'s: (session, address, what the answer says).
fn open_tunnel(
    shared: &Rc<RefCell<Shared>>,
    attachment: &str,
    peer: &str,
    cookie: &str,
) -> Result<(u32, std::net::Ipv4Addr, Params), ConnectRefusal> {
    let raw = unhex(cookie).ok_or(ConnectRefusal::UnknownCookie)?;
    let mut sh = shared.borrow_mut();
    let server_name = sh.server_name.clone();
    let att = sh
        .attachments
        .get_mut(attachment)
        .ok_or(ConnectRefusal::Unavailable)?;
    let s = att
        .book
        .find(&raw, peer)
        .ok_or(ConnectRefusal::UnknownCookie)?;
    let (id, address, since) = (s.id, s.address, s.since);
    att.book.connected(id, Instant::now());
    let c = &att.config;
    let left = c.session_timeout.saturating_sub(since.elapsed());
    let params = Params {
        server_name,
        netmask: c.pool.mask(),
        split: att.split_routes.get(peer).cloned().unwrap_or_default(),
        dns: c.dns.clone(),
        dpd: c.dpd.as_secs() as u32,
        keepalive: c.keepalive.as_secs() as u32,
        idle: c.idle_timeout.as_secs() as u32,
        session: left.as_secs().max(1) as u32,
        mtu: c.mtu,
    };
    Ok((id, address, params))
}

struct TunnelCtx {
    name: String,
    facility: String,
    session: u32,
    address: std::net::Ipv4Addr,
    remote: SocketAddr,
}

/// How the data channel ended.
enum Ended {
    /// The client logged off: the session ends.
    Logoff(String),
    /// The session ended here (timeout, replaced, removed): already finished.
    Stopped,
    /// The connection broke: the session waits for its client.
    Broken(String),
}

/// CSTP until it ends.
async fn tunnel(
    shared: &Rc<RefCell<Shared>>,
    attachment: &str,
    ctx: TunnelCtx,
    tls: Tls,
    mut buf: Vec<u8>,
) {
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CLIENT_QUEUE);
    let stop = Rc::new(Notify::new());
    let (relay, serial, first, up) = {
        let mut sh = shared.borrow_mut();
        let serial = sh.next_serial;
        sh.next_serial += 1;
        let Some(att) = sh.attachments.get_mut(attachment) else {
            return;
        };
        // The peer's number in the plan this thread runs now, with that plan's generation:
        // a reload since the handshake renumbered it (or removed it).
        let Some(&peer) = att.by_name.get(&ctx.name) else {
            return;
        };
        let generation = att.generation;
        let handle = ConnHandle {
            serial,
            out: out_tx,
            stop: stop.clone(),
        };
        // A connection the session had before is replaced by this one.
        if let Some(old) = att.conns.insert(ctx.session, handle) {
            old.stop.notify_one();
        }
        let first = att.announced.insert(ctx.session);
        let up = Message::Up {
            session: ctx.session,
            peer,
            address: ctx.address,
            generation,
            login: first,
        };
        (att.relay.clone(), serial, first, up)
    };
    tell(&relay, up).await;
    tracing::info!(
        attachment,
        peer = ctx.name,
        facility = ctx.facility,
        remote = %ctx.remote,
        address = %ctx.address,
        "TLS tunnel {}",
        if first { "up" } else { "up again (reconnect)" }
    );
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut frame = vec![0u8; cstp::HEADER_LEN + 65535];
    // What the worker reads: a datagram of at most one packet buffer.
    let mut dgram = vec![0u8; crate::buffer::BUF_SIZE];
    relay::packet_header(&mut dgram, ctx.session);
    let ended = loop {
        // Whatever is buffered first (CSTP may have followed CONNECT at once); the buffer
        // is shifted once per read, not per frame.
        let mut at = 0;
        let mut answer: Option<usize> = None;
        let mut end: Option<Ended> = None;
        let mut had_data = false;
        loop {
            match cstp::parse(&buf[at..]) {
                Ok((f, n)) => {
                    match f.kind {
                        Kind::Data => {
                            let len = f.payload.len();
                            match dgram.get_mut(PACKET_HEADER..PACKET_HEADER + len) {
                                Some(d) => {
                                    d.copy_from_slice(f.payload);
                                    // A full socket pair drops the packet: the worker is behind.
                                    if relay.try_send(&dgram[..PACKET_HEADER + len]).is_err() {
                                        lose(shared, attachment, DropReason::TlsRelayFull);
                                    }
                                    had_data = true;
                                }
                                None => lose(shared, attachment, DropReason::TooBig),
                            }
                        }
                        Kind::DpdRequest => {
                            answer = cstp::write(&mut frame, Kind::DpdResponse, f.payload).ok();
                        }
                        Kind::Disconnect => {
                            let (_, text) = cstp::disconnect_reason(f.payload);
                            end = Some(Ended::Logoff(text));
                        }
                        Kind::Terminate => end = Some(Ended::Logoff("terminate".into())),
                        // Never offered: counted, not decompressed.
                        Kind::Compressed => lose(shared, attachment, DropReason::Malformed),
                        Kind::Keepalive | Kind::DpdResponse => {}
                    }
                    at += n;
                    if end.is_some() || answer.is_some() {
                        break;
                    }
                }
                Err(cstp::CstpError::Incomplete) => break,
                Err(e) => {
                    end = Some(Ended::Broken(format!("CSTP: {e}")));
                    break;
                }
            }
        }
        buf.drain(..at);
        // The session's activity, once per read rather than per packet.
        if had_data {
            touch(shared, attachment, ctx.session);
        }
        if let Some(end) = end {
            break end;
        }
        if let Some(m) = answer {
            if !write_frames(&mut wr, &frame[..m]).await {
                break Ended::Broken("the client does not read (DPD answer)".into());
            }
            // More may wait in the buffer.
            continue;
        }
        tokio::select! {
            n = rd.read(&mut chunk) => match n {
                Ok(0) => break Ended::Broken("the client closed the connection".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => break Ended::Broken(format!("{e}")),
            },
            packet = out_rx.recv() => {
                let Some(packet) = packet else { break Ended::Stopped };
                let mut pending = Some(packet);
                let mut ok = true;
                // One write per frame (one TLS record each), one flush per burst, all
                // within WRITE: a client that stops reading loses its connection.
                let written = tokio::time::timeout(WRITE, async {
                    while let Some(p) = pending.take() {
                        if let Ok(m) = cstp::write(&mut frame, Kind::Data, &p) {
                            if wr.write_all(&frame[..m]).await.is_err() {
                                ok = false;
                                break;
                            }
                        }
                        pending = out_rx.try_recv().ok();
                    }
                    ok && wr.flush().await.is_ok()
                })
                .await;
                if written != Ok(true) {
                    break Ended::Broken("the client does not read (write failed or timed out)".into());
                }
            }
            () = stop.notified() => {
                let m = cstp::write(&mut frame, Kind::Disconnect, b"\xb0session ended").unwrap_or(0);
                let _ = write_frames(&mut wr, &frame[..m]).await;
                break Ended::Stopped;
            }
        }
    };
    let mut down = false;
    {
        let mut sh = shared.borrow_mut();
        if let Some(att) = sh.attachments.get_mut(attachment) {
            let ours = att
                .conns
                .get(&ctx.session)
                .is_some_and(|c| c.serial == serial);
            match &ended {
                Ended::Logoff(why) if ours => {
                    att.conns.remove(&ctx.session);
                    if let Some((s, _)) = att.book.end(ctx.session, End::Logoff) {
                        att.announced.remove(&s.id);
                        tracing::info!(attachment, peer = ctx.name, address = %s.address, "TLS session ended: the client logged off ({why})");
                    }
                    down = true;
                }
                Ended::Broken(why) if ours => {
                    att.conns.remove(&ctx.session);
                    att.book.disconnected(ctx.session, Instant::now());
                    tracing::info!(
                        attachment,
                        peer = ctx.name,
                        "TLS tunnel down ({why}); the session waits for the client"
                    );
                    down = true;
                }
                _ => {}
            }
        }
    }
    if down {
        tell(
            &relay,
            Message::Down {
                session: ctx.session,
            },
        )
        .await;
    }
}

/// Writes `frames` and flushes, within [`WRITE`]; whether it worked.
async fn write_frames(wr: &mut tokio::io::WriteHalf<Tls>, frames: &[u8]) -> bool {
    let write = async { wr.write_all(frames).await.is_ok() && wr.flush().await.is_ok() };
    tokio::time::timeout(WRITE, write).await == Ok(true)
}

/// Counts a packet of `attachment` dropped here.
fn lose(shared: &Rc<RefCell<Shared>>, attachment: &str, reason: DropReason) {
    if let Some(att) = shared.borrow_mut().attachments.get_mut(attachment) {
        att.lose(reason);
    }
}

/// Session `session` had traffic from its client.
fn touch(shared: &Rc<RefCell<Shared>>, attachment: &str, session: u32) {
    if let Some(att) = shared.borrow_mut().attachments.get_mut(attachment) {
        att.book.touch(session, Instant::now());
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(std::str::from_utf8(&b[2 * i..2 * i + 2]).ok()?, 16).ok()?;
    }
    Some(out)
}
