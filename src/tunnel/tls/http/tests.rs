//! The requests openconnect 9.01 sent and the answers ocserv 1.1.6 gave
//! (tests/vectors/cstp/{main,timers,dtls-offered}), and refusals.

use std::net::Ipv4Addr;

use super::*;
use crate::tunnel::tls::auth::{write_login_success, AuthKind, LoginRefusal};
use crate::tunnel::tls::connect::{
    write_connect_refusal, write_connected, ConnectRefusal, ParamsError, TunnelParams,
};

macro_rules! vector {
    ($run:literal, $file:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/cstp/",
            $run,
            "/",
            $file
        ))
        .as_slice()
    };
}

const RUNS: [&str; 3] = ["main", "timers", "dtls-offered"];
const AUTH_REQUESTS: [&[u8]; 3] = [
    vector!("main", "auth-request.http"),
    vector!("timers", "auth-request.http"),
    vector!("dtls-offered", "auth-request.http"),
];
const CONNECT_REQUESTS: [&[u8]; 3] = [
    vector!("main", "connect-request.http"),
    vector!("timers", "connect-request.http"),
    vector!("dtls-offered", "connect-request.http"),
];
const MAIN_C2S: &[u8] = vector!("main", "cstp-client-to-server.bin");
const MAIN_AUTH_RESPONSE: &[u8] = vector!("main", "auth-response.http");
const MAIN_CONNECT_RESPONSE: &[u8] = vector!("main", "connect-response.http");
const MAIN_COOKIE: &str = "AGRLAWKcJxPGWb/5SmSsG8GYMh160VxJmITpOh6g7Tk=";

fn whole(bytes: &[u8]) -> Request {
    let (req, n) = parse_request(bytes).expect("a request");
    assert_eq!(n, bytes.len());
    req
}

/// Every proper prefix is incomplete, the whole parses, and bytes after it are left alone.
fn check_prefixes_and_trailer(bytes: &[u8], trailer: &[u8]) {
    for k in 0..bytes.len() {
        assert_eq!(
            parse_request(&bytes[..k]),
            Err(HttpError::Incomplete),
            "prefix of {k} bytes"
        );
    }
    let alone = parse_request(bytes).unwrap();
    let mut more = bytes.to_vec();
    more.extend_from_slice(trailer);
    assert_eq!(parse_request(&more).unwrap(), alone);
}

#[test]
fn openconnects_login_posts() {
    for (run, bytes) in RUNS.iter().zip(AUTH_REQUESTS) {
        let Request::Login(login) = whole(bytes) else {
            panic!("{run}: not a login");
        };
        assert_eq!(login.path, "/");
        assert_eq!(login.group(), None);
        assert_eq!(login.host.as_deref(), Some("10.250.40.1"));
        assert_eq!(
            login.user_agent.as_deref(),
            Some("Open AnyConnect VPN Agent v9.01-3")
        );
        let a = &login.auth;
        assert_eq!(a.kind, AuthKind::Init);
        assert_eq!(a.aggregate_auth_version.as_deref(), Some("2"));
        assert_eq!(a.version.as_deref(), Some("v9.01-3"));
        assert_eq!(a.device_id.as_deref(), Some("linux-64"));
        assert_eq!(a.group_access.as_deref(), Some("https://10.250.40.1/"));
        assert_eq!(a.group_select, None);
        assert!(!a.client_cert_fail);
        // Then the client sent nothing more on this connection: any trailer is the next
        // request's start.
        check_prefixes_and_trailer(bytes, b"POST / HTTP/1.1\r\n");
    }
}

#[test]
fn openconnects_connects() {
    for (run, bytes) in RUNS.iter().zip(CONNECT_REQUESTS) {
        let Request::Connect(c) = whole(bytes) else {
            panic!("{run}: not a CONNECT");
        };
        assert_eq!(c.host.as_deref(), Some("10.250.40.1"));
        assert_eq!(
            c.user_agent.as_deref(),
            Some("Open AnyConnect VPN Agent v9.01-3")
        );
        assert_eq!(c.cstp_version.as_deref(), Some("1"));
        assert_eq!(c.hostname.as_deref(), Some("vm"));
        assert_eq!(
            c.address_types,
            Some(AddressTypes {
                ipv4: true,
                ipv6: true
            })
        );
        assert_eq!((c.base_mtu, c.mtu), (Some(1500), Some(1390)));
        assert!(c.previous_addresses.is_empty());
        assert!(c.full_ipv6);
        assert_eq!(c.accept_encoding, ["oc-lz4", "lzs"]);
        assert_eq!(c.dtls_offered, *run == "dtls-offered", "{run}");
        check_prefixes_and_trailer(bytes, MAIN_C2S);
    }
    let Request::Connect(c) = whole(CONNECT_REQUESTS[0]) else {
        unreachable!()
    };
    assert_eq!(c.cookie.as_str(), MAIN_COOKIE);
}

/// Headers of an HTTP message, in order, as (name, value); and its body.
fn split_message(bytes: &[u8]) -> (String, Vec<(String, String)>, Vec<u8>) {
    let text = std::str::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    (status, headers, body.as_bytes().to_vec())
}

#[test]
fn the_login_answer_is_ocservs_without_what_openconnect_ignores() {
    let cookie = SessionCookie::new(MAIN_COOKIE).unwrap();
    let mut out = Vec::new();
    write_login_success(&mut out, &cookie);
    let (status, ours, body) = split_message(&out);
    let (ocserv_status, theirs, ocserv_body) = split_message(MAIN_AUTH_RESPONSE);
    assert_eq!(status, ocserv_status);
    assert_eq!(body, ocserv_body, "the same XML, byte for byte");
    // Left out on purpose (see write_login_success).
    let left_out = |(n, v): &(String, String)| {
        n == "Connection"
            || (n == "Set-Cookie" && (v.starts_with("webvpncontext=") || v.starts_with("webvpnc=")))
    };
    let kept: Vec<_> = theirs.iter().filter(|h| !left_out(h)).cloned().collect();
    assert_eq!(ours, kept);
    assert_eq!(theirs.len() - kept.len(), 4);
}

/// ocserv's configuration in main/ocserv.conf: dpd 90, keepalive 32400, the pool
/// 10.253.40.0/24, route 10.252.40.0/24, no DNS, MTU 1472 on a 1500 link.
fn main_params(nets: &[ipnetwork::Ipv4Network]) -> TunnelParams<'_> {
    TunnelParams {
        server_name: "ocserv 1.1.6",
        address: Ipv4Addr::new(10, 253, 40, 98),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
        split_include: nets,
        dns: &[],
        tunnel_all_dns: false,
        dpd: 90,
        keepalive: 32400,
        idle_timeout: None,
        session_timeout: None,
        disconnected_timeout: None,
        tcp_keepalive: true,
        base_mtu: 1500,
        mtu: 1472,
    }
}

#[test]
fn the_connect_answer_matches_ocservs_header_by_header() {
    let nets = ["10.252.40.0/24".parse().unwrap()];
    let mut out = Vec::new();
    write_connected(&mut out, &main_params(&nets)).unwrap();
    let (status, ours, body) = split_message(&out);
    let (ocserv_status, theirs, _) = split_message(MAIN_CONNECT_RESPONSE);
    assert_eq!(status, ocserv_status);
    assert!(body.is_empty());
    // Left out on purpose (see write_connected).
    let left_out = [
        "X-CSTP-Hostname",
        "X-CSTP-Client-Bypass-Protocol",
        "X-CSTP-Smartcard-Removal-Disconnect",
        "X-CSTP-Rekey-Time",
        "X-CSTP-Session-Timeout-Remaining",
        "X-CSTP-License",
    ];
    // Written differently on purpose: no TLS rekey with rustls; "none" for no session limit,
    // as ocserv's current source writes it (1.1.6 wrote 0; openconnect reads both as none).
    let differ = [
        ("X-CSTP-Rekey-Method", "ssl", "none"),
        ("X-CSTP-Session-Timeout", "0", "none"),
    ];
    let expected: Vec<(String, String)> = theirs
        .iter()
        .filter(|(n, _)| !left_out.contains(&n.as_str()))
        .map(|(n, v)| match differ.iter().find(|d| d.0 == n) {
            Some((_, was, now)) => {
                assert_eq!(v, was);
                (n.clone(), (*now).to_owned())
            }
            None => (n.clone(), v.clone()),
        })
        .collect();
    assert_eq!(ours, expected);
    assert_eq!(theirs.len() - expected.len(), left_out.len());
}

#[test]
fn the_connect_answer_lists_every_prefix_and_dns_server() {
    let nets = [
        "10.252.40.0/24".parse().unwrap(),
        "192.0.2.7/32".parse().unwrap(),
        "198.51.100.0/22".parse().unwrap(),
    ];
    let mut p = main_params(&nets);
    let dns = [
        Ipv4Addr::new(10, 252, 40, 53),
        Ipv4Addr::new(10, 252, 40, 54),
    ];
    p.dns = &dns;
    p.idle_timeout = Some(600);
    let mut out = Vec::new();
    write_connected(&mut out, &p).unwrap();
    let (_, h, _) = split_message(&out);
    let values = |name: &str| -> Vec<String> {
        h.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        values("X-CSTP-Split-Include"),
        [
            "10.252.40.0/255.255.255.0",
            "192.0.2.7/255.255.255.255",
            "198.51.100.0/255.255.252.0"
        ]
    );
    assert_eq!(values("X-CSTP-DNS"), ["10.252.40.53", "10.252.40.54"]);
    assert_eq!(values("X-CSTP-Idle-Timeout"), ["600"]);
    p.server_name = "bad\r\nX-Injected: 1";
    assert_eq!(write_connected(&mut out, &p), Err(ParamsError::ServerName));
    p.server_name = "ixgw";
    p.mtu = 0;
    assert_eq!(write_connected(&mut out, &p), Err(ParamsError::Mtu));
}

#[test]
fn connect_refusals_take_the_shapes_openconnect_handles() {
    for why in [
        ConnectRefusal::UnknownCookie,
        ConnectRefusal::CertificateMismatch,
        ConnectRefusal::FacilityRefused,
    ] {
        let mut out = Vec::new();
        write_connect_refusal(&mut out, why);
        // cstp.c: strncmp(buf, "HTTP/1.1 401 ", 13) → -EPERM.
        let want = format!("HTTP/1.1 401 {}\r\n", why.reason());
        assert!(out.starts_with(want.as_bytes()));
        assert!(out.ends_with(b"\r\n\r\n"));
    }
    let mut out = Vec::new();
    write_connect_refusal(&mut out, ConnectRefusal::NoAddress);
    assert_eq!(
        out,
        b"HTTP/1.1 503 Service Unavailable\r\nX-Reason: No address available for this \
          facility\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn answers_are_well_formed_http() {
    let mut all = Vec::new();
    let mut out = Vec::new();
    write_login_success(&mut out, &SessionCookie::new(MAIN_COOKIE).unwrap());
    all.push(out);
    for why in [
        LoginRefusal::NoCertificate,
        LoginRefusal::CertificateRefused,
        LoginRefusal::ForeignAuthority,
        LoginRefusal::CertificateOnly,
        LoginRefusal::Unavailable,
    ] {
        let mut out = Vec::new();
        crate::tunnel::tls::auth::write_login_refusal(&mut out, why);
        all.push(out);
    }
    for status in [400, 401, 404, 405, 411, 413, 431, 501] {
        let mut out = Vec::new();
        write_error(&mut out, status);
        all.push(out);
    }
    for out in all {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(n) = resp.parse(&out).unwrap() else {
            panic!("incomplete")
        };
        let len: usize = resp
            .headers
            .iter()
            .find(|h| h.name == "Content-Length")
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(out.len(), n + len);
    }
}

const POST_HEAD: &str = "POST / HTTP/1.1\r\nHost: gw\r\n";

fn post(extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "{POST_HEAD}{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

const INIT_XML: &[u8] = b"<?xml version=\"1.0\"?><config-auth client=\"vpn\" type=\"init\">\
    <group-access>https://gw/tenant</group-access></config-auth>";

#[test]
fn groups_case_insensitive_names_and_pipelining() {
    let mut req = post("", INIT_XML);
    req = String::from_utf8(req)
        .unwrap()
        .replacen("POST / ", "POST /tenant-a ", 1)
        .replace("Content-Length", "content-length")
        .into_bytes();
    let n = req.len();
    req.extend_from_slice(b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\ncookie: a=b; webvpn=xyz\r\n\r\n");
    let (Request::Login(login), used) = parse_request(&req).unwrap() else {
        panic!()
    };
    assert_eq!((login.group(), used), (Some("tenant-a"), n));
    let (Request::Connect(c), _) = parse_request(&req[n..]).unwrap() else {
        panic!()
    };
    assert_eq!(c.cookie.as_str(), "xyz");
    // An auth-reply (a form answered) parses; the gateway refuses it.
    let reply = post(
        "",
        b"<config-auth client=\"vpn\" type=\"auth-reply\"><auth><password>p</password></auth></config-auth>",
    );
    let Request::Login(l) = whole(&reply) else {
        panic!()
    };
    assert_eq!(l.auth.kind, AuthKind::AuthReply);
}

#[test]
fn what_the_gateway_does_not_serve() {
    let other = |bytes: &[u8], method, target: &str| {
        assert_eq!(
            whole(bytes),
            Request::Other(Other {
                method,
                target: target.into()
            })
        );
    };
    other(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n", Method::Get, "/");
    other(b"HEAD /x HTTP/1.0\r\n\r\n", Method::Head, "/x");
    other(
        b"CONNECT /other HTTP/1.1\r\n\r\n",
        Method::Connect,
        "/other",
    );
    other(
        b"GET /y HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        Method::Get,
        "/y",
    );
    other(
        b"POST /+CSCOE+/logon.html HTTP/1.1\r\nContent-Length: 2\r\n\r\nab",
        Method::Post,
        "/+CSCOE+/logon.html",
    );
    other(
        b"POST /a?b HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        Method::Post,
        "/a?b",
    );
}

#[test]
fn refusals() {
    use HttpError::*;
    let big_header = format!("{POST_HEAD}X-Big: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    let many: String = (0..=MAX_HEADERS)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    let cases: Vec<(Vec<u8>, HttpError)> = vec![
        (big_header.clone().into_bytes(), HeadTooLong),
        // Refused before the end of the headers arrives.
        (big_header.as_bytes()[..MAX_HEAD + 1].to_vec(), HeadTooLong),
        (format!("{POST_HEAD}{many}\r\n").into_bytes(), TooManyHeaders),
        (
            format!("{POST_HEAD}Content-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes(),
            BodyTooLarge(MAX_BODY as u64 + 1),
        ),
        (format!("{POST_HEAD}Content-Length: 1x\r\n\r\n").into_bytes(), BadContentLength),
        (format!("{POST_HEAD}Content-Length: -1\r\n\r\n").into_bytes(), BadContentLength),
        (format!("{POST_HEAD}Content-Length: \r\n\r\n").into_bytes(), BadContentLength),
        (
            format!("{POST_HEAD}Content-Length: 99999999999999999999999\r\n\r\n").into_bytes(),
            BadContentLength,
        ),
        (
            format!("{POST_HEAD}Content-Length: 1\r\nContent-Length: 2\r\n\r\n").into_bytes(),
            BadContentLength,
        ),
        (format!("{POST_HEAD}\r\n").into_bytes(), MissingContentLength),
        (
            format!("{POST_HEAD}Transfer-Encoding: gzip, Chunked\r\n\r\n").into_bytes(),
            Chunked,
        ),
        (
            format!("{POST_HEAD}Transfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\n")
                .into_bytes(),
            TransferEncoding,
        ),
        (b"PUT / HTTP/1.1\r\n\r\n".to_vec(), UnsupportedMethod),
        (b"post / HTTP/1.1\r\n\r\n".to_vec(), UnsupportedMethod),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            BadRequestLine(httparse::Error::Token),
        ),
        (b"GET / HTTP/2.0\r\n\r\n".to_vec(), BadRequestLine(httparse::Error::Version)),
        (
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".to_vec(),
            BadHeaderSyntax(httparse::Error::HeaderName),
        ),
        (post("", b"<config-auth type=\"init\">"), Xml(XmlError::Syntax(25))),
        (post("", b"username=u&password=p"), Xml(XmlError::Syntax(0))),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nHost: gw\r\n\r\n".to_vec(),
            MissingCookie,
        ),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpncontext=x; other=y\r\n\r\n"
                .to_vec(),
            MissingCookie,
        ),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=\r\n\r\n".to_vec(),
            BadHeader("Cookie"),
        ),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=a\r\nX-CSTP-MTU: big\r\n\r\n"
                .to_vec(),
            BadHeader("X-CSTP-MTU"),
        ),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=a\r\nX-CSTP-Address: 10.1\r\n\r\n"
                .to_vec(),
            BadHeader("X-CSTP-Address"),
        ),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=a\r\nUser-Agent: \xff\r\n\r\n"
                .to_vec(),
            BadHeader("User-Agent"),
        ),
        (
            b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=a\r\nContent-Length: 4\r\n\r\nSTF\x01"
                .to_vec(),
            ConnectWithBody,
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            parse_request(&bytes),
            Err(want),
            "{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
        );
    }
    // A body that has not all arrived is waited for, up to the bound.
    let mut partial = format!("{POST_HEAD}Content-Length: {MAX_BODY}\r\n\r\n").into_bytes();
    partial.extend_from_slice(&[b' '; 100]);
    assert_eq!(parse_request(&partial), Err(Incomplete));
    // A reconnect names its old address; Content-Length: 0 on CONNECT is no body.
    let Request::Connect(c) = whole(
        b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nCookie: webvpn=a\r\nContent-Length: 0\r\n\
          X-CSTP-Address: 10.253.40.98\r\nX-CSTP-Address-Type: IPv4\r\n\r\n",
    ) else {
        panic!()
    };
    assert_eq!(
        c.previous_addresses,
        ["10.253.40.98".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        c.address_types,
        Some(AddressTypes {
            ipv4: true,
            ipv6: false
        })
    );
    assert!(!c.dtls_offered);
}

#[test]
fn statuses() {
    assert_eq!(HttpError::HeadTooLong.status(), 431);
    assert_eq!(HttpError::MissingCookie.status(), 401);
    assert_eq!(HttpError::Chunked.status(), 411);
    assert_eq!(HttpError::BodyTooLarge(1).status(), 413);
    assert_eq!(HttpError::Xml(XmlError::NotUtf8).status(), 400);
}

#[test]
fn the_captured_requests_pass_the_fuzz_checks() {
    for bytes in AUTH_REQUESTS.iter().chain(CONNECT_REQUESTS.iter()) {
        fuzz_request(bytes);
    }
}

proptest::proptest! {
    #[test]
    fn any_bytes_are_a_request_or_refused(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        fuzz_request(&data);
    }

    #[test]
    fn mutated_captures_are_a_request_or_refused(
        which in 0usize..6,
        at in proptest::prelude::any::<proptest::sample::Index>(),
        byte in proptest::prelude::any::<u8>(),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let src = if which < 3 { AUTH_REQUESTS[which] } else { CONNECT_REQUESTS[which - 3] };
        let mut v = src.to_vec();
        let i = at.index(v.len());
        v[i] = byte;
        v.truncate(cut.index(v.len() + 1).max(i));
        fuzz_request(&v);
    }
}
