//! The admin HTTP listener: `/metrics` (Prometheus text), `/live`, `/ready`; and the admin
//! socket (a Unix socket, never a network port) that also answers `/show` for `ixgw show`.
//!
//! Layer: runtime edge. [`serve`] takes an already bound listener, so the daemon binds from
//! its configuration and tests bind `127.0.0.1:0`; it stops accepting when `shutdown`
//! resolves, lets each open connection finish the response it is writing (HTTP/1.1 keep-alive
//! is turned off for them) and returns once they are closed, or after [`DRAIN_TIMEOUT`].
//!
//! Routes, for `GET` only:
//!
//! | path       | answer |
//! | ---------- | ------ |
//! | `/metrics` | 200, text exposition format 0.0.4 of [`MetricsHub::encode`] |
//! | `/live`    | 200 `ok` while every thread of [`health::Liveness`] beats; else 503 naming the stalled thread |
//! | `/ready`   | 200 `ready` once the readiness flag is set, else 503 `not ready` |
//! | `/show`    | 200, JSON [`show::Report`] — only where [`AdminState::show`] is set (the socket) |
//!
//! An unknown path is 404 whatever the method; a known path with another method is 405 with
//! `Allow: GET` [RFC 9110 § 15.5.6]. Malformed requests are answered by hyper (400, 431) and
//! only end their own connection.

#![forbid(unsafe_code)]

pub mod health;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::metrics::MetricsHub;
use health::Liveness;

pub mod show;

/// Makes the report `/show` serves (the runtime's view of the running plan).
pub type ShowSource = Arc<dyn Fn() -> show::Report + Send + Sync>;

/// A listener [`serve`] accepts connections from: TCP for `/metrics`, a Unix socket for the
/// admin socket.
pub trait Listener: Send {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_stream(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_stream(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_stream(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// How long a connection may take to send a complete request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`serve`] waits for open connections after `shutdown` before it closes them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to pause accepting after an error that is not one connection's own (such as
/// running out of file descriptors), so that the error cannot spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The `Content-Type` of the Prometheus text exposition format 0.0.4. Label values may hold
/// non-ASCII tenant and peer names, hence the explicit charset.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// What the admin listener serves from.
#[derive(Clone)]
pub struct AdminState {
    pub hub: Arc<MetricsHub>,
    /// Set by the runtime once every attachment is up and the first plan runs; cleared when it
    /// starts draining.
    pub ready: Arc<AtomicBool>,
    /// The heartbeats of the threads `/live` answers for.
    pub live: Arc<Liveness>,
    /// `/show`: set for the admin socket only, so that the network listener never tells who
    /// the peers are and where they connect from.
    pub show: Option<ShowSource>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.ready)
            .field("show", &self.show.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminState {
    pub fn new(hub: Arc<MetricsHub>, ready: Arc<AtomicBool>, live: Arc<Liveness>) -> Self {
        AdminState {
            hub,
            ready,
            live,
            show: None,
        }
    }

    /// The same state, also answering `/show` from `source`.
    pub fn with_show(mut self, source: ShowSource) -> Self {
        self.show = Some(source);
        self
    }
}

/// Serves the admin routes on `listener` until `shutdown` resolves, one task per connection.
///
/// Errors of `accept` are logged and retried, a connection's own at once, any other after a
/// short pause, so running out of file descriptors does not end the listener. The result is
/// `Ok` once every connection is closed.
pub async fn serve<L: Listener>(
    listener: L,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept_stream() => match accepted {
                Ok(stream) => {
                    connections.spawn(connection(
                        builder.clone(),
                        stream,
                        state.clone(),
                        stopped.clone(),
                    ));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "admin: accept");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin: accept failed, pausing");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    let _ = stop.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "admin: connections still open after the drain timeout, closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    builder: http1::Builder,
    stream: S,
    state: AdminState,
    mut stopped: watch::Receiver<bool>,
) {
    let service =
        service_fn(move |req| std::future::ready(Ok::<_, Infallible>(respond(&state, &req))));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "admin: connection ended with an error");
    }
}

#[derive(Clone, Copy)]
enum Route {
    Metrics,
    Live,
    Ready,
    Show,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        match path {
            "/metrics" => Some(Route::Metrics),
            "/live" => Some(Route::Live),
            "/ready" => Some(Route::Ready),
            "/show" => Some(Route::Show),
            _ => None,
        }
    }
}

fn respond<B>(state: &AdminState, req: &Request<B>) -> Response<Full<Bytes>> {
    let route = Route::of(req.uri().path());
    let Some(route) = route.filter(|r| !matches!(r, Route::Show) || state.show.is_some()) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    if req.method() != Method::GET {
        let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return res;
    }
    match route {
        Route::Metrics => match state.hub.try_encode() {
            Ok(body) => {
                let mut res = Response::new(Full::new(Bytes::from(body)));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
                res
            }
            Err(e) => {
                tracing::error!(error = %e, "admin: encoding metrics failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable")
            }
        },
        Route::Live => match state.live.check(Instant::now()) {
            Ok(()) => text(StatusCode::OK, "ok"),
            Err(stalled) => owned_text(StatusCode::SERVICE_UNAVAILABLE, stalled.to_string()),
        },
        Route::Ready if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready"),
        Route::Ready => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
        Route::Show => match state.show.as_ref().map(|s| serde_json::to_vec(&s())) {
            Some(Ok(body)) => {
                let mut res = Response::new(Full::new(Bytes::from(body)));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                res
            }
            _ => text(StatusCode::INTERNAL_SERVER_ERROR, "show unavailable"),
        },
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond_text(status, Bytes::from_static(body.as_bytes()))
}

fn owned_text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    respond_text(status, Bytes::from(body))
}

fn respond_text(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    res
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use crate::vocab::Names;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::health::Heartbeat;
    use super::*;
    use crate::metrics::Counters;
    use crate::vocab::DropReason;

    struct Server {
        addr: SocketAddr,
        ready: Arc<AtomicBool>,
        heart: Arc<Heartbeat>,
        table: Arc<Counters>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<io::Result<()>>,
    }

    async fn start() -> Server {
        start_with(Heartbeat::new("ixgw-worker", Instant::now())).await
    }

    async fn start_with(heart: Heartbeat) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let table = Arc::new(Counters::new(
            Instant::now(),
            Names {
                tenants: vec!["ajisai-net".into()],
                attachments: vec![],
                arp_attachments: vec![],
                peers: vec![],
            },
        ));
        let hub = Arc::new(MetricsHub::new([Arc::clone(&table)]));
        let ready = Arc::new(AtomicBool::new(false));
        let heart = Arc::new(heart);
        let live = Arc::new(Liveness::new(vec![Arc::clone(&heart)]));
        let (stop, stopped) = oneshot::channel::<()>();
        let state = AdminState::new(hub, Arc::clone(&ready), live);
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            ready,
            heart,
            table,
            stop,
            task,
        }
    }

    struct Reply {
        status: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Reads one response with a `Content-Length` body.
    async fn read_reply(r: &mut BufReader<TcpStream>) -> Reply {
        let mut status = String::new();
        r.read_line(&mut status).await.unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_owned(), v.trim().to_owned()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        r.read_exact(&mut body).await.unwrap();
        Reply {
            status: status.trim_end().to_owned(),
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut r = BufReader::new(stream);
        let head = format!("{method} {path} HTTP/1.1\r\nHost: ixgw\r\nConnection: close\r\n\r\n");
        r.get_mut().write_all(head.as_bytes()).await.unwrap();
        read_reply(&mut r).await
    }

    async fn stop(s: Server) {
        s.stop.send(()).unwrap();
        let done = tokio::time::timeout(Duration::from_secs(2), s.task).await;
        done.expect("serve returns promptly")
            .expect("serve task")
            .expect("serve result");
    }

    #[tokio::test]
    async fn metrics_are_served_as_text_exposition() {
        let s = start().await;
        s.table.drop_in(Some(0), DropReason::Policy);
        s.table.tenant(0).rx(84);

        let r = request(s.addr, "GET", "/metrics").await;

        assert_eq!(r.status, "HTTP/1.1 200 OK");
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        assert!(r
            .body
            .contains("\nixgw_drops_total{tenant=\"ajisai-net\",reason=\"policy\"} 1\n"));
        assert!(r
            .body
            .contains("\nixgw_tenant_rx_bytes_total{tenant=\"ajisai-net\"} 84\n"));
        let with_query = request(s.addr, "GET", "/metrics?name[]=ixgw_flows").await;
        assert_eq!(with_query.status, "HTTP/1.1 200 OK");
        stop(s).await;
    }

    #[tokio::test]
    async fn live_and_ready() {
        let s = start().await;

        let live = request(s.addr, "GET", "/live").await;
        let not_ready = request(s.addr, "GET", "/ready").await;
        s.ready.store(true, Ordering::Release);
        let ready = request(s.addr, "GET", "/ready").await;

        assert_eq!(
            (live.status.as_str(), live.body.as_str()),
            ("HTTP/1.1 200 OK", "ok")
        );
        assert_eq!(
            (not_ready.status.as_str(), not_ready.body.as_str()),
            ("HTTP/1.1 503 Service Unavailable", "not ready")
        );
        assert_eq!(
            (ready.status.as_str(), ready.body.as_str()),
            ("HTTP/1.1 200 OK", "ready")
        );
        stop(s).await;
    }

    #[tokio::test]
    async fn live_is_unavailable_while_a_thread_is_stalled() {
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(30))
            .expect("the clock has run 30 s");
        let s = start_with(Heartbeat::new("ixgw-ike", long_ago)).await;

        let stalled = request(s.addr, "GET", "/live").await;
        s.heart.beat(Instant::now());
        let live = request(s.addr, "GET", "/live").await;

        assert_eq!(stalled.status, "HTTP/1.1 503 Service Unavailable");
        assert!(
            stalled
                .body
                .starts_with("thread ixgw-ike stalled: no heartbeat for 30."),
            "{}",
            stalled.body
        );
        assert!(
            stalled.body.ends_with(" s (limit 10 s)"),
            "{}",
            stalled.body
        );
        assert_eq!(
            (live.status.as_str(), live.body.as_str()),
            ("HTTP/1.1 200 OK", "ok")
        );
        stop(s).await;
    }

    #[tokio::test]
    async fn unknown_paths_and_other_methods() {
        let s = start().await;

        let missing = request(s.addr, "GET", "/metrics/extra").await;
        let post_missing = request(s.addr, "POST", "/nope").await;
        let post = request(s.addr, "POST", "/metrics").await;
        let delete = request(s.addr, "DELETE", "/ready").await;
        // `/show` tells who the peers are: only the admin socket answers it.
        let show = request(s.addr, "GET", "/show").await;

        assert_eq!(missing.status, "HTTP/1.1 404 Not Found");
        assert_eq!(show.status, "HTTP/1.1 404 Not Found");
        assert_eq!(post_missing.status, "HTTP/1.1 404 Not Found");
        for r in [&post, &delete] {
            assert_eq!(r.status, "HTTP/1.1 405 Method Not Allowed");
            assert_eq!(r.header("allow"), Some("GET"));
        }
        stop(s).await;
    }

    #[tokio::test]
    async fn garbage_requests_do_not_hurt_the_listener() {
        let s = start().await;
        for junk in [
            &b"\x00\xff\xfe garbage\r\n\r\n"[..],
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET /live HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET /live HTTP/1.1\r\nHost",
        ] {
            let mut stream = TcpStream::connect(s.addr).await.unwrap();
            stream.write_all(junk).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut reply = Vec::new();
            let _ = stream.read_to_end(&mut reply).await;
            let expected: &[u8] = if junk.ends_with(b"\r\n\r\n") {
                b"HTTP/1.1 400 "
            } else {
                b""
            };
            assert!(reply.starts_with(expected), "{junk:?}");
            assert!(!reply.starts_with(b"HTTP/1.1 2"), "{junk:?}");
        }

        let live = request(s.addr, "GET", "/live").await;
        assert_eq!(live.status, "HTTP/1.1 200 OK");
        stop(s).await;
    }

    #[tokio::test]
    async fn keep_alive_connection_serves_several_requests_and_closes_on_shutdown() {
        let s = start().await;
        let mut conn = BufReader::new(TcpStream::connect(s.addr).await.unwrap());
        for path in ["/live", "/ready"] {
            let head = format!("GET {path} HTTP/1.1\r\nHost: ixgw\r\n\r\n");
            conn.get_mut().write_all(head.as_bytes()).await.unwrap();
        }
        let first = read_reply(&mut conn).await;
        let second = read_reply(&mut conn).await;
        assert_eq!(first.body, "ok");
        assert_eq!(second.body, "not ready");
        let addr = s.addr;

        stop(s).await;

        let mut rest = Vec::new();
        let n = conn.read_to_end(&mut rest).await.unwrap_or(0);
        assert_eq!(n, 0, "the idle connection is closed, not answered");
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }

    #[tokio::test]
    async fn a_stalled_client_cannot_hold_up_shutdown() {
        let s = start().await;
        let mut stalled = TcpStream::connect(s.addr).await.unwrap();
        stalled
            .write_all(b"GET /metrics HTTP/1.1\r\nHo")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        let began = tokio::time::Instant::now();
        s.stop.send(()).unwrap();
        let res = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(2), s.task).await;

        assert!(res.expect("serve returns").unwrap().is_ok());
        assert!(began.elapsed() <= DRAIN_TIMEOUT + Duration::from_secs(1));
        let mut rest = Vec::new();
        let _ = stalled.read_to_end(&mut rest).await;
        assert!(!rest.starts_with(b"HTTP/1.1 200"));
    }
}
