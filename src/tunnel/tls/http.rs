//! The HTTP requests an SSL-VPN client sends inside TLS before CSTP starts: the login
//! `POST` with its `<config-auth>` XML ([`super::auth`]) and `CONNECT /CSCOSSLC/tunnel`.
//!
//! [`parse_request`] reads a buffer that may hold part of a request, several, or a request
//! followed by CSTP frames: it answers [`HttpError::Incomplete`] until one request is whole,
//! then the request and the bytes it took. `httparse` reads the request line and headers;
//! bounds: [`MAX_HEAD`] bytes of request line and headers, [`MAX_HEADERS`] headers,
//! [`MAX_BODY`] bytes of body, which needs `Content-Length` (no chunked encoding). Any other
//! input is refused with an [`HttpError`] whose [`HttpError::status`] the server answers with
//! [`write_error`] before it closes the connection. Header names match case-insensitively.

use std::net::IpAddr;

use super::auth::{self, ConfigAuth, SessionCookie, XmlError};

/// Request line and headers, up to and including the empty line.
pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_BODY: usize = 16 * 1024;
/// The only CONNECT target of the protocol.
pub const TUNNEL_PATH: &str = "/CSCOSSLC/tunnel";

/// One request, by what it means to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Login(Login),
    Connect(Connect),
    /// A well-formed request the gateway does not serve: answer 404.
    Other(Other),
}

/// `POST /` (or a group path such as `/tenant`) with a `<config-auth>` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The request target: `/` or the path of the URL the client was given.
    pub path: String,
    pub auth: ConfigAuth,
    pub host: Option<String>,
    pub user_agent: Option<String>,
}

impl Login {
    /// The group path without its slashes, if the client was given one.
    pub fn group(&self) -> Option<&str> {
        Some(self.path.trim_matches('/')).filter(|g| !g.is_empty())
    }
}

/// `CONNECT /CSCOSSLC/tunnel`: the client asks for the tunnel with its session cookie.
/// DTLS, compression and the STRAP headers are not served; what the client offered is noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// `Cookie: webvpn=…`.
    pub cookie: SessionCookie,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// `X-CSTP-Version` (openconnect: `1`).
    pub cstp_version: Option<String>,
    /// `X-CSTP-Hostname`: the client machine's name.
    pub hostname: Option<String>,
    /// `X-CSTP-Address-Type` (openconnect: `IPv6,IPv4`, or `IPv4` with `--disable-ipv6`).
    pub address_types: Option<AddressTypes>,
    /// `X-CSTP-Base-MTU`, `X-CSTP-MTU`: the client's wishes; the answer's values win.
    pub base_mtu: Option<u16>,
    pub mtu: Option<u16>,
    /// `X-CSTP-Address`: on a reconnect, the addresses the client had (openconnect refuses
    /// the session if they change).
    pub previous_addresses: Vec<IpAddr>,
    /// `X-CSTP-Full-IPv6-Capability: true`.
    pub full_ipv6: bool,
    /// `X-CSTP-Accept-Encoding` (`oc-lz4`, `lzs`): offered; the gateway does not compress.
    pub accept_encoding: Vec<String>,
    /// Whether any `X-DTLS-*` / `X-DTLS12-*` header came (the gateway has no DTLS; the master
    /// secret is not kept).
    pub dtls_offered: bool,
}

/// The address families a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressTypes {
    pub ipv4: bool,
    pub ipv6: bool,
}

/// A request the gateway does not serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other {
    pub method: Method,
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Connect,
}

/// Why bytes are not (yet) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Not all of the request is there yet: read more.
    #[error("an incomplete request")]
    Incomplete,
    #[error("a malformed request line: {0}")]
    BadRequestLine(httparse::Error),
    #[error("a malformed header: {0}")]
    BadHeaderSyntax(httparse::Error),
    #[error("request line and headers longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("a method other than POST, CONNECT, GET or HEAD")]
    UnsupportedMethod,
    #[error("a POST without Content-Length")]
    MissingContentLength,
    #[error("a malformed Content-Length, or two that differ")]
    BadContentLength,
    #[error("a body of {0} bytes (at most {MAX_BODY})")]
    BodyTooLarge(u64),
    #[error("Transfer-Encoding: chunked (only Content-Length is accepted)")]
    Chunked,
    #[error("a Transfer-Encoding (only Content-Length is accepted)")]
    TransferEncoding,
    #[error("a CONNECT with a body")]
    ConnectWithBody,
    #[error("a malformed {0} header")]
    BadHeader(&'static str),
    #[error("a CONNECT without a webvpn cookie")]
    MissingCookie,
    #[error("login XML: {0}")]
    Xml(#[from] XmlError),
}

impl HttpError {
    /// The status to answer with ([`write_error`]). For [`HttpError::Incomplete`] (the
    /// client stopped mid-request): 400.
    pub fn status(self) -> u16 {
        match self {
            HttpError::HeadTooLong | HttpError::TooManyHeaders => 431,
            HttpError::UnsupportedMethod => 405,
            HttpError::MissingContentLength | HttpError::Chunked => 411,
            HttpError::BodyTooLarge(_) => 413,
            HttpError::TransferEncoding => 501,
            // openconnect: a 401 to CONNECT is "Cookie was rejected by server", it exits.
            HttpError::MissingCookie => 401,
            HttpError::Incomplete
            | HttpError::BadRequestLine(_)
            | HttpError::BadHeaderSyntax(_)
            | HttpError::BadContentLength
            | HttpError::ConnectWithBody
            | HttpError::BadHeader(_)
            | HttpError::Xml(_) => 400,
        }
    }
}

/// The request at the start of `buf` and how many bytes it took.
pub fn parse_request(buf: &[u8]) -> Result<(Request, usize), HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Never look past the bound: the verdict on a longer buffer is the same.
    let window = buf.get(..MAX_HEAD + 1).unwrap_or(buf);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(_) if buf.len() > MAX_HEAD => return Err(HttpError::HeadTooLong),
        Ok(_) => return Err(HttpError::Incomplete),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(classify(window, e)),
    };
    let method = match req.method {
        Some("POST") => Method::Post,
        Some("CONNECT") => Method::Connect,
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => return Err(HttpError::UnsupportedMethod),
    };
    let target = req.path.unwrap_or("");
    let headers = req.headers;
    let mut te = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Transfer-Encoding"));
    if let Some(h) = te.next() {
        let chunked = h
            .value
            .split(|b| *b == b',')
            .any(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Err(if chunked {
            HttpError::Chunked
        } else {
            HttpError::TransferEncoding
        });
    }
    let body_len = content_length(headers)?;
    if method == Method::Connect {
        if body_len.is_some_and(|n| n > 0) {
            return Err(HttpError::ConnectWithBody);
        }
        let request = if target == TUNNEL_PATH {
            Request::Connect(connect(headers)?)
        } else {
            Request::Other(Other {
                method,
                target: target.to_owned(),
            })
        };
        return Ok((request, head_len));
    }
    let body_len = match (method, body_len) {
        (Method::Post, None) => return Err(HttpError::MissingContentLength),
        (_, n) => n.unwrap_or(0),
    };
    if body_len > MAX_BODY as u64 {
        return Err(HttpError::BodyTooLarge(body_len));
    }
    let end = head_len + body_len as usize;
    let body = buf.get(head_len..end).ok_or(HttpError::Incomplete)?;
    let request = if method == Method::Post && is_login_path(target) {
        Request::Login(Login {
            path: target.to_owned(),
            auth: auth::parse_config_auth(body)?,
            host: text(headers, "Host")?,
            user_agent: text(headers, "User-Agent")?,
        })
    } else {
        Request::Other(Other {
            method,
            target: target.to_owned(),
        })
    };
    Ok((request, end))
}

/// Whether a parse error lies in the request line or in the headers.
fn classify(buf: &[u8], e: httparse::Error) -> HttpError {
    let Some(nl) = buf.iter().position(|b| *b == b'\n') else {
        return HttpError::BadRequestLine(e);
    };
    let line = buf.get(..=nl).unwrap_or(buf);
    match httparse::Request::new(&mut []).parse(line) {
        Err(_) => HttpError::BadRequestLine(e),
        Ok(_) => HttpError::BadHeaderSyntax(e),
    }
}

/// `/` or a group path: segments of unreserved characters [RFC 3986 § 2.3]. Cisco's own
/// namespaces (`/CSCO…`, `/+CSCO…+/`) are not login paths.
fn is_login_path(target: &str) -> bool {
    target.starts_with('/')
        && target.len() <= 256
        && !target.starts_with("/CSCO")
        && !target.starts_with("/+CSCO")
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'))
}

/// `Content-Length`, if given: decimal digits only; repeated only with the same value
/// [RFC 9110 § 8.6].
fn content_length(headers: &[httparse::Header<'_>]) -> Result<Option<u64>, HttpError> {
    let mut len = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Content-Length"))
    {
        let v = h.value.trim_ascii();
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(HttpError::BadContentLength);
        }
        let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if len.is_some_and(|l| l != n) {
            return Err(HttpError::BadContentLength);
        }
        len = Some(n);
    }
    Ok(len)
}

/// The first header `name` as text.
fn text(headers: &[httparse::Header<'_>], name: &'static str) -> Result<Option<String>, HttpError> {
    match headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)) {
        Some(h) => value(h, name).map(|v| Some(v.to_owned())),
        None => Ok(None),
    }
}

fn value<'b>(h: &httparse::Header<'b>, name: &'static str) -> Result<&'b str, HttpError> {
    std::str::from_utf8(h.value)
        .map(str::trim)
        .map_err(|_| HttpError::BadHeader(name))
}

fn number(h: &httparse::Header<'_>, name: &'static str) -> Result<u16, HttpError> {
    value(h, name)?
        .parse()
        .map_err(|_| HttpError::BadHeader(name))
}

fn connect(headers: &[httparse::Header<'_>]) -> Result<Connect, HttpError> {
    let mut cookie = None;
    let mut address_types = None;
    let (mut base_mtu, mut mtu) = (None, None);
    let mut previous_addresses = Vec::new();
    let mut full_ipv6 = false;
    let mut accept_encoding = Vec::new();
    let mut dtls_offered = false;
    for h in headers {
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if is("Cookie") {
            for pair in value(h, "Cookie")?.split(';') {
                let Some(("webvpn", v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if cookie.is_none() {
                    cookie =
                        Some(SessionCookie::new(v).map_err(|_| HttpError::BadHeader("Cookie"))?);
                }
            }
        } else if is("X-CSTP-Address-Type") {
            let mut t = AddressTypes::default();
            for token in value(h, "X-CSTP-Address-Type")?.split(',') {
                let token = token.trim();
                t.ipv4 |= token.eq_ignore_ascii_case("IPv4");
                t.ipv6 |= token.eq_ignore_ascii_case("IPv6");
            }
            address_types.get_or_insert(t);
        } else if is("X-CSTP-Base-MTU") {
            base_mtu.get_or_insert(number(h, "X-CSTP-Base-MTU")?);
        } else if is("X-CSTP-MTU") {
            mtu.get_or_insert(number(h, "X-CSTP-MTU")?);
        } else if is("X-CSTP-Address") {
            let a = value(h, "X-CSTP-Address")?
                .parse()
                .map_err(|_| HttpError::BadHeader("X-CSTP-Address"))?;
            if previous_addresses.len() < 4 {
                previous_addresses.push(a);
            }
        } else if is("X-CSTP-Full-IPv6-Capability") {
            full_ipv6 = value(h, "X-CSTP-Full-IPv6-Capability")?.eq_ignore_ascii_case("true");
        } else if is("X-CSTP-Accept-Encoding") {
            let v = value(h, "X-CSTP-Accept-Encoding")?;
            accept_encoding.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .take(8)
                    .map(str::to_owned),
            );
        } else if starts_with_ignore_case(h.name, "X-DTLS-")
            || starts_with_ignore_case(h.name, "X-DTLS12-")
        {
            dtls_offered = true;
        }
    }
    Ok(Connect {
        cookie: cookie.ok_or(HttpError::MissingCookie)?,
        host: text(headers, "Host")?,
        user_agent: text(headers, "User-Agent")?,
        cstp_version: text(headers, "X-CSTP-Version")?,
        hostname: text(headers, "X-CSTP-Hostname")?,
        address_types,
        base_mtu,
        mtu,
        previous_addresses,
        full_ipv6,
        accept_encoding,
        dtls_offered,
    })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A bodiless answer with `status` and `Connection: close` (the server closes after it);
/// a 405 lists the methods served.
pub fn write_error(out: &mut Vec<u8>, status: u16) {
    let reason = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let allow = if status == 405 {
        "Allow: POST, CONNECT\r\n"
    } else {
        ""
    };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\n{allow}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
}

/// The fuzz target's body: any bytes are a request, an incomplete one or refused, never a
/// panic, in one piece or in two (a prefix first, as TCP may deliver it); the XML scanner
/// also reads the bytes directly.
pub fn fuzz_request(data: &[u8]) {
    let _ = auth::parse_config_auth(data);
    let whole = parse_request(data);
    let mut out = Vec::new();
    match &whole {
        Ok((_, n)) => {
            assert!(*n <= data.len() && *n > 0);
            // A request is its bytes: the same alone, and followed by anything.
            assert_eq!(parse_request(&data[..*n]), whole);
        }
        Err(e) => write_error(&mut out, e.status()),
    }
    let split = usize::from(data.first().copied().unwrap_or(0)) * data.len() / 256;
    match (parse_request(&data[..split]), &whole) {
        (Err(HttpError::Incomplete), _) => {}
        (prefix @ Ok(_), _) => assert_eq!(&prefix, &whole, "a prefix parsed differently"),
        (Err(e), Err(w)) => assert_ne!(
            *w,
            HttpError::Incomplete,
            "prefix refused ({e}), whole incomplete"
        ),
        (Err(e), Ok(_)) => panic!("prefix refused ({e}), whole parsed"),
    }
}

#[cfg(test)]
mod tests;
