//! The login of the AnyConnect protocol ("aggregate auth"): the `<config-auth>` XML a client
//! POSTs, and the answers that give it its session cookie or refuse it.
//!
//! Only certificate login exists here: the client's first message (`type="init"`) is enough,
//! and the answer is `type="complete"` with `<auth id="success">` and the `webvpn` cookie, as
//! ocserv with `auth = "certificate"` does (tests/vectors/cstp). The XML is a small subset;
//! [`parse_config_auth`] is a hand-written scanner rather than an XML crate: it needs a dozen
//! lines of grammar, refuses DTDs (so no entity expansion exists to bound), never allocates
//! more than the body it reads, and adds no dependency to the daemon.
//!
//! What openconnect does with the answers (its `auth.c` and `http.c`): it looks only for an
//! `<auth id="…">` element and the `webvpn` cookie; `id="success"` ends the login. An `<auth>`
//! with no `<form>` but an `<error>` makes it print the error text and give up without asking
//! for a password ("Failed to complete authentication", exit 1), whatever `--non-inter` says.
//! A 401 makes it try HTTP authentication (`X-Support-HTTP-Auth: true`) and a 403 fails with
//! "Unexpected 403 result from server": both hide any text we send; any other status, or a
//! body it cannot parse, makes it retry the login as a plain `GET`. Hence a refusal is a
//! `200 OK` whose XML carries the reason ([`write_login_refusal`]).

use std::fmt;

/// The largest nesting of elements [`parse_config_auth`] accepts.
const MAX_DEPTH: usize = 16;
/// Attributes on one element.
const MAX_ATTRS: usize = 32;
/// The longest session cookie accepted or sent (ocserv's are 44 characters).
pub const MAX_COOKIE: usize = 256;

/// What a `<config-auth>` request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// The client's first message.
    Init,
    /// The client answering a login form (a password): never needed with certificate login.
    AuthReply,
    /// Cisco's client logging out. openconnect never sends it: it ends a session with a CSTP
    /// DISCONNECT frame.
    Logout,
}

/// The parts of a `<config-auth>` request the gateway reads. Forms the client fills in
/// (`<auth>` of an `auth-reply`, which would carry a password) are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAuth {
    pub kind: AuthKind,
    /// The root's `aggregate-auth-version` attribute (openconnect 9.01: `2`).
    pub aggregate_auth_version: Option<String>,
    /// `<version who="vpn">`: the client's version (`v9.01-3`).
    pub version: Option<String>,
    /// `<device-id>`: the client's platform (`linux-64`).
    pub device_id: Option<String>,
    /// `<group-access>`: the URL the client was given (`https://10.250.40.1/`).
    pub group_access: Option<String>,
    /// `<group-select>`: the group asked with `--authgroup`.
    pub group_select: Option<String>,
    /// `<client-cert-fail/>`: the client has no certificate to present.
    pub client_cert_fail: bool,
}

/// Why a body is not a `<config-auth>` request. Offsets count bytes into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the XML body is not UTF-8")]
    NotUtf8,
    #[error("malformed XML at byte {0}")]
    Syntax(usize),
    #[error("a document type declaration at byte {0} (DTDs are refused)")]
    Doctype(usize),
    #[error("an unknown or malformed entity reference at byte {0}")]
    Entity(usize),
    #[error("elements nested deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    #[error("an end tag that does not match its start tag at byte {0}")]
    Mismatch(usize),
    #[error("an attribute given twice at byte {0}")]
    DuplicateAttribute(usize),
    #[error("content after the root element at byte {0}")]
    Trailing(usize),
    #[error("the root element is not <config-auth>")]
    NotConfigAuth,
    #[error("<config-auth> has no type attribute")]
    MissingType,
    #[error("<config-auth type=…> is not init, auth-reply or logout")]
    UnknownType,
}

/// The fields of interest among `<config-auth>`'s children.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Version,
    DeviceId,
    GroupAccess,
    GroupSelect,
}

/// Reads a `<config-auth>` request body: an optional `<?xml …?>` prolog, comments and
/// processing instructions, then the `config-auth` element. Attribute values may be quoted
/// with `"` or `'`; text and attribute values may use the five predefined entities and
/// character references. Anything else malformed is refused.
pub fn parse_config_auth(body: &[u8]) -> Result<ConfigAuth, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut s = Scanner {
        s: text,
        pos: usize::from(text.starts_with('\u{feff}')) * 3,
    };
    let mut out: Option<ConfigAuth> = None;
    let mut stack: Vec<&str> = Vec::new();
    let mut closed = false;
    // The child of the root being read (at depth 2), and its text so far.
    let mut capture: Option<(Field, String)> = None;
    let mut scratch = String::new();
    while let Some((at, token)) = s.next_token()? {
        match token {
            Token::Start { name, attrs, empty } => {
                if closed {
                    return Err(XmlError::Trailing(at));
                }
                for (_, value, vat) in &attrs {
                    scratch.clear();
                    unescape(value, *vat, &mut scratch)?;
                }
                match stack.len() {
                    0 => {
                        if name != "config-auth" {
                            return Err(XmlError::NotConfigAuth);
                        }
                        out = Some(root(&attrs)?);
                        if empty {
                            closed = true;
                            continue;
                        }
                    }
                    1 => {
                        let field = match name {
                            "version" => Some(Field::Version),
                            "device-id" => Some(Field::DeviceId),
                            "group-access" => Some(Field::GroupAccess),
                            "group-select" => Some(Field::GroupSelect),
                            "client-cert-fail" => {
                                if let Some(c) = out.as_mut() {
                                    c.client_cert_fail = true;
                                }
                                None
                            }
                            _ => None,
                        };
                        capture = field.map(|f| (f, String::new()));
                        if empty {
                            if let (Some(c), Some((f, t))) = (out.as_mut(), capture.take()) {
                                c.set(f, t);
                            }
                            continue;
                        }
                    }
                    n if n >= MAX_DEPTH => return Err(XmlError::TooDeep(at)),
                    _ if empty => continue,
                    _ => {}
                }
                stack.push(name);
            }
            Token::End(name) => {
                if stack.pop() != Some(name) {
                    return Err(XmlError::Mismatch(at));
                }
                match stack.len() {
                    0 => closed = true,
                    1 => {
                        if let (Some(c), Some((f, t))) = (out.as_mut(), capture.take()) {
                            c.set(f, t);
                        }
                    }
                    _ => {}
                }
            }
            Token::Text(raw) => {
                if stack.is_empty() {
                    if !raw.bytes().all(is_ws) {
                        return Err(if closed {
                            XmlError::Trailing(at)
                        } else {
                            XmlError::Syntax(at)
                        });
                    }
                } else if let (2, Some((_, t))) = (stack.len(), capture.as_mut()) {
                    unescape(raw, at, t)?;
                } else {
                    scratch.clear();
                    unescape(raw, at, &mut scratch)?;
                }
            }
            Token::CData(raw) => {
                if stack.is_empty() {
                    return Err(XmlError::Syntax(at));
                }
                if let (2, Some((_, t))) = (stack.len(), capture.as_mut()) {
                    t.push_str(raw);
                }
            }
        }
    }
    match (out, stack.is_empty()) {
        (Some(c), true) => Ok(c),
        (Some(_), false) => Err(XmlError::Syntax(text.len())),
        (None, _) => Err(XmlError::NotConfigAuth),
    }
}

impl ConfigAuth {
    fn set(&mut self, field: Field, text: String) {
        let slot = match field {
            Field::Version => &mut self.version,
            Field::DeviceId => &mut self.device_id,
            Field::GroupAccess => &mut self.group_access,
            Field::GroupSelect => &mut self.group_select,
        };
        if slot.is_none() {
            *slot = Some(
                text.trim_matches(|c: char| c.is_ascii() && is_ws(c as u8))
                    .to_owned(),
            );
        }
    }
}

fn root(attrs: &[(&str, &str, usize)]) -> Result<ConfigAuth, XmlError> {
    let attr = |name: &str| -> Result<Option<String>, XmlError> {
        match attrs.iter().find(|(n, _, _)| *n == name) {
            Some((_, v, at)) => {
                let mut s = String::new();
                unescape(v, *at, &mut s)?;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    };
    let kind = match attr("type")?.as_deref() {
        Some("init") => AuthKind::Init,
        Some("auth-reply") => AuthKind::AuthReply,
        Some("logout") => AuthKind::Logout,
        Some(_) => return Err(XmlError::UnknownType),
        None => return Err(XmlError::MissingType),
    };
    Ok(ConfigAuth {
        kind,
        aggregate_auth_version: attr("aggregate-auth-version")?,
        version: None,
        device_id: None,
        group_access: None,
        group_select: None,
        client_cert_fail: false,
    })
}

enum Token<'a> {
    /// Attributes: name, raw value, offset of the value.
    Start {
        name: &'a str,
        attrs: Vec<(&'a str, &'a str, usize)>,
        empty: bool,
    },
    End(&'a str),
    /// Raw text: entities not yet replaced.
    Text(&'a str),
    CData(&'a str),
}

struct Scanner<'a> {
    s: &'a str,
    /// Always on a character boundary: it moves over ASCII delimiters or whole slices.
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn syntax(&self) -> XmlError {
        XmlError::Syntax(self.pos)
    }

    /// The next token and its offset; comments and processing instructions (the prolog among
    /// them) are skipped.
    fn next_token(&mut self) -> Result<Option<(usize, Token<'a>)>, XmlError> {
        loop {
            let at = self.pos;
            let rest = self.rest();
            if rest.is_empty() {
                return Ok(None);
            }
            if !rest.starts_with('<') {
                let n = rest.find('<').unwrap_or(rest.len());
                self.pos += n;
                return Ok(Some((at, Token::Text(rest.get(..n).unwrap_or("")))));
            }
            if let Some(r) = rest.strip_prefix("<!--") {
                self.skip_past(r, 4, "-->")?;
            } else if let Some(r) = rest.strip_prefix("<?") {
                self.skip_past(r, 2, "?>")?;
            } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
                let end = r.find("]]>").ok_or(self.syntax())?;
                self.pos += 9 + end + 3;
                return Ok(Some((at, Token::CData(r.get(..end).unwrap_or("")))));
            } else if rest.starts_with("<!") {
                return Err(if rest.starts_with("<!DOCTYPE") {
                    XmlError::Doctype(at)
                } else {
                    self.syntax()
                });
            } else if rest.starts_with("</") {
                self.pos += 2;
                let name = self.name()?;
                self.skip_ws();
                self.expect(b'>')?;
                return Ok(Some((at, Token::End(name))));
            } else {
                self.pos += 1;
                return self.start_tag().map(|t| Some((at, t)));
            }
        }
    }

    fn skip_past(&mut self, r: &str, opener: usize, closer: &str) -> Result<(), XmlError> {
        let end = r.find(closer).ok_or(self.syntax())?;
        self.pos += opener + end + closer.len();
        Ok(())
    }

    fn start_tag(&mut self) -> Result<Token<'a>, XmlError> {
        let name = self.name()?;
        let mut attrs: Vec<(&'a str, &'a str, usize)> = Vec::new();
        loop {
            let spaced = self.skip_ws();
            let rest = self.rest();
            if rest.starts_with('>') {
                self.pos += 1;
                return Ok(Token::Start {
                    name,
                    attrs,
                    empty: false,
                });
            }
            if rest.starts_with("/>") {
                self.pos += 2;
                return Ok(Token::Start {
                    name,
                    attrs,
                    empty: true,
                });
            }
            if !spaced || attrs.len() >= MAX_ATTRS {
                return Err(self.syntax());
            }
            let at = self.pos;
            let attr = self.name()?;
            self.skip_ws();
            self.expect(b'=')?;
            self.skip_ws();
            let quote = match self.rest().bytes().next() {
                Some(q @ (b'"' | b'\'')) => q as char,
                _ => return Err(self.syntax()),
            };
            self.pos += 1;
            let rest = self.rest();
            let end = rest.find(quote).ok_or(self.syntax())?;
            let value = rest.get(..end).unwrap_or("");
            if value.contains('<') {
                return Err(self.syntax());
            }
            if attrs.iter().any(|(n, _, _)| *n == attr) {
                return Err(XmlError::DuplicateAttribute(at));
            }
            attrs.push((attr, value, self.pos));
            self.pos += end + 1;
        }
    }

    /// An XML name: a letter, `_`, `:` or any non-ASCII character, then also digits, `-`, `.`.
    fn name(&mut self) -> Result<&'a str, XmlError> {
        let rest = self.rest();
        let mut len = 0;
        for (i, c) in rest.char_indices() {
            let ok = c.is_ascii_alphabetic()
                || c == '_'
                || c == ':'
                || !c.is_ascii()
                || (i > 0 && (c.is_ascii_digit() || c == '-' || c == '.'));
            if !ok {
                break;
            }
            len = i + c.len_utf8();
        }
        if len == 0 {
            return Err(self.syntax());
        }
        self.pos += len;
        Ok(rest.get(..len).unwrap_or(""))
    }

    fn skip_ws(&mut self) -> bool {
        let n = self.rest().bytes().take_while(|b| is_ws(*b)).count();
        self.pos += n;
        n > 0
    }

    fn expect(&mut self, b: u8) -> Result<(), XmlError> {
        if self.rest().bytes().next() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Appends `raw` to `out` with entity and character references replaced; `at` is `raw`'s
/// offset in the body, for the error.
fn unescape(raw: &str, at: usize, out: &mut String) -> Result<(), XmlError> {
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let here = at + (raw.len() - rest.len()) + amp;
        let after = rest.get(amp + 1..).unwrap_or("");
        let semi = after
            .get(..after.len().min(12))
            .and_then(|a| a.find(';'))
            .ok_or(XmlError::Entity(here))?;
        let name = after.get(..semi).unwrap_or("");
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => char_ref(name).ok_or(XmlError::Entity(here))?,
        };
        out.push(c);
        rest = after.get(semi + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(())
}

/// `#123` or `#x7b`, a character XML allows.
fn char_ref(name: &str) -> Option<char> {
    let digits = name.strip_prefix('#')?;
    let code = match digits.strip_prefix('x') {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()?
        }
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        _ => return None,
    };
    let c = char::from_u32(code)?;
    (!c.is_control() || matches!(c, '\t' | '\n' | '\r')).then_some(c)
}

/// Escapes text for XML content or a double-quoted attribute.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// The session token the client gets at login and presents in CONNECT's `Cookie: webvpn=…`.
/// 1 to [`MAX_COOKIE`] cookie octets [RFC 6265 § 4.1.1] (ocserv's are base64). Its `Debug`
/// does not show the value: it is a bearer secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionCookie(String);

/// A value that cannot be a [`SessionCookie`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a session cookie must be 1 to {MAX_COOKIE} cookie octets (RFC 6265 § 4.1.1)")]
pub struct BadCookie;

impl SessionCookie {
    pub fn new(value: &str) -> Result<Self, BadCookie> {
        let octet =
            |b: u8| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
        if value.is_empty() || value.len() > MAX_COOKIE || !value.bytes().all(octet) {
            return Err(BadCookie);
        }
        Ok(SessionCookie(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCookie(<elided>)")
    }
}

/// Why a login is refused; each has the text openconnect prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// The TLS connection carried no client certificate.
    NoCertificate,
    /// The certificate is not a valid facility certificate: unknown facility, expired, revoked.
    CertificateRefused,
    /// The certificate was issued by a CA that does not serve this attachment (another
    /// tenant's).
    ForeignAuthority,
    /// The client asked for another login than a certificate (answered a form).
    CertificateOnly,
    /// The gateway takes no logins now.
    Unavailable,
}

impl LoginRefusal {
    pub fn message(self) -> &'static str {
        match self {
            LoginRefusal::NoCertificate => {
                "No client certificate was presented: this gateway admits facilities by their \
                 certificate only (openconnect --certificate/--sslkey)."
            }
            LoginRefusal::CertificateRefused => {
                "The facility certificate was refused (unknown facility, expired or revoked)."
            }
            LoginRefusal::ForeignAuthority => {
                "The facility certificate was not issued by a CA this gateway address serves."
            }
            LoginRefusal::CertificateOnly => {
                "Only certificate login is accepted: no user name or password."
            }
            LoginRefusal::Unavailable => "The gateway cannot accept logins now; try again later.",
        }
    }

    /// Whether the certificate is the cause: the answer then also sets the cookie
    /// `ClientCertAuthFailed`, on which openconnect prints "SSL certificate authentication
    /// failed" (Cisco's ASA hint, `http.c`).
    pub fn certificate_related(self) -> bool {
        matches!(
            self,
            LoginRefusal::NoCertificate
                | LoginRefusal::CertificateRefused
                | LoginRefusal::ForeignAuthority
        )
    }
}

const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
/// ocserv's fixed server version element; kept for clients that read it.
const SG_VERSION: &str = "<version who=\"sg\">0.1(1)</version>\n";

/// The answer to a successful login, as ocserv writes it (tests/vectors/cstp/*/
/// auth-response.http) with only what a client uses: the `webvpn` cookie and
/// `<auth id="success">`. Left out: `Connection: Keep-Alive` (HTTP/1.1's default;
/// openconnect closes this connection itself and opens another for CONNECT), the
/// `webvpncontext` cookie (ocserv's own session id, which openconnect ignores) and both
/// `webvpnc` cookies (the profile download of `--write-new-config`).
pub fn write_login_success(out: &mut Vec<u8>, cookie: &SessionCookie) {
    let body = format!(
        "{XML_HEAD}<config-auth client=\"vpn\" type=\"complete\">\n{SG_VERSION}\
         <auth id=\"success\">\n<title>SSL VPN Service</title></auth></config-auth>\n"
    );
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
         X-Transcend-Version: 1\r\nSet-Cookie: webvpn={}; Secure; HttpOnly\r\n\r\n",
        body.len(),
        cookie.as_str()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// The answer refusing a login: `200 OK` and an `<auth>` with an `<error>` but no form, the
/// one shape on which openconnect prints our reason and stops without prompting (see the
/// module doc). `Connection: close`: the server closes after it.
pub fn write_login_refusal(out: &mut Vec<u8>, why: LoginRefusal) {
    let mut body = format!(
        "{XML_HEAD}<config-auth client=\"vpn\" type=\"auth-request\">\n{SG_VERSION}\
         <auth id=\"main\">\n<title>SSL VPN Service</title>\n<error>"
    );
    escape_into(&mut body, why.message());
    body.push_str("</error>\n</auth></config-auth>\n");
    let cert = if why.certificate_related() {
        "Set-Cookie: ClientCertAuthFailed=1; Secure; HttpOnly\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/xml\r\n\
         Content-Length: {}\r\nX-Transcend-Version: 1\r\n{cert}\r\n",
        body.len()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<config-auth client=\"vpn\" \
        type=\"init\" aggregate-auth-version=\"2\"><version who=\"vpn\">v9.01-3</version>\
        <device-id>linux-64</device-id><capabilities><auth-method>single-sign-on-v2</auth-method>\
        <auth-method>single-sign-on-external-browser</auth-method></capabilities>\
        <group-access>https://10.250.40.1/</group-access></config-auth>\n";

    #[test]
    fn openconnects_init_message() {
        let c = parse_config_auth(INIT.as_bytes()).unwrap();
        assert_eq!(
            c,
            ConfigAuth {
                kind: AuthKind::Init,
                aggregate_auth_version: Some("2".into()),
                version: Some("v9.01-3".into()),
                device_id: Some("linux-64".into()),
                group_access: Some("https://10.250.40.1/".into()),
                group_select: None,
                client_cert_fail: false,
            }
        );
    }

    #[test]
    fn quoting_whitespace_entities_comments_and_cdata() {
        let xml =
            "\u{feff}<?xml version='1.0'?>\n<!-- hi -->\n<config-auth\n\ttype = 'auth-reply' \
                   client=\"vpn\" >\n  <group-select> A&amp;B &lt;&#x41;&#66;&gt; </group-select>\
                   <auth><username>u</username><password>&quot;secret&apos;</password></auth>\
                   <device-id><![CDATA[a<b]]></device-id><client-cert-fail/>\
                   <group-access/></config-auth>\n<?pi x?>\n";
        let c = parse_config_auth(xml.as_bytes()).unwrap();
        assert_eq!(c.kind, AuthKind::AuthReply);
        assert_eq!(c.group_select.as_deref(), Some("A&B <AB>"));
        assert_eq!(c.device_id.as_deref(), Some("a<b"));
        assert_eq!(c.group_access.as_deref(), Some(""));
        assert!(c.client_cert_fail);
        let logout = parse_config_auth(b"<config-auth client=\"vpn\" type=\"logout\"/>").unwrap();
        assert_eq!(logout.kind, AuthKind::Logout);
    }

    #[test]
    fn malformed_xml_is_refused() {
        use XmlError::*;
        let cases: &[(&[u8], XmlError)] = &[
            (b"", NotConfigAuth),
            (b"\xff", NotUtf8),
            (b"<config-auth type=\"init\">", Syntax(25)),
            (b"<other type=\"init\"/>", NotConfigAuth),
            (b"<config-auth/>", MissingType),
            (b"<config-auth type=\"x\"/>", UnknownType),
            (
                b"<config-auth type=\"init\" type=\"init\"/>",
                DuplicateAttribute(25),
            ),
            (b"<config-auth type=init/>", Syntax(18)),
            (b"<config-auth type=\"init\"client=\"v\"/>", Syntax(24)),
            (
                b"<config-auth type=\"init\"><a></b></config-auth>",
                Mismatch(28),
            ),
            (b"<config-auth type=\"init\"/><x/>", Trailing(26)),
            (b"<config-auth type=\"init\"/>junk", Trailing(26)),
            (b"junk<config-auth type=\"init\"/>", Syntax(0)),
            (
                b"<!DOCTYPE x [<!ENTITY a \"b\">]><config-auth type=\"init\"/>",
                Doctype(0),
            ),
            (
                b"<config-auth type=\"init\">&foo;</config-auth>",
                Entity(25),
            ),
            (b"<config-auth type=\"init\">&amp</config-auth>", Entity(25)),
            (b"<config-auth type=\"init\">&#0;</config-auth>", Entity(25)),
            (b"<config-auth type=\"init\" a=\"&#xD800;\"/>", Entity(28)),
            (b"<config-auth type=\"init\" a=\"<\"/>", Syntax(28)),
            (
                b"<config-auth type=\"init\"><!-- x</config-auth>",
                Syntax(25),
            ),
            (b"<config-auth type=\"in&amp;it\"/>", UnknownType),
        ];
        for (xml, want) in cases {
            assert_eq!(
                parse_config_auth(xml),
                Err(*want),
                "{}",
                String::from_utf8_lossy(xml)
            );
        }
        let deep = format!(
            "<config-auth type=\"init\">{}{}</config-auth>",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        assert!(matches!(
            parse_config_auth(deep.as_bytes()),
            Err(TooDeep(_))
        ));
    }

    #[test]
    fn cookies_are_cookie_octets() {
        assert!(SessionCookie::new("AGRLAWKcJxPGWb/5SmSsG8GYMh160VxJmITpOh6g7Tk=").is_ok());
        for bad in ["", "a b", "a;b", "a\r\nb", "a\"b", "a,b", "a\\b", "é"] {
            assert_eq!(SessionCookie::new(bad), Err(BadCookie), "{bad:?}");
        }
        assert!(SessionCookie::new(&"a".repeat(MAX_COOKIE + 1)).is_err());
        let c = SessionCookie::new("secret").unwrap();
        assert_eq!(format!("{c:?}"), "SessionCookie(<elided>)");
    }

    #[test]
    fn a_refusal_is_xml_openconnect_reads_as_an_error_without_a_form() {
        let mut out = Vec::new();
        write_login_refusal(&mut out, LoginRefusal::ForeignAuthority);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nSet-Cookie: ClientCertAuthFailed=1; Secure; HttpOnly"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert!(body.starts_with("<?xml"));
        assert!(body.contains("<auth id=\"main\">"));
        assert!(!body.contains("<form"));
        assert!(body.contains(&format!(
            "<error>{}</error>",
            LoginRefusal::ForeignAuthority.message()
        )));
        let mut out = Vec::new();
        write_login_refusal(&mut out, LoginRefusal::CertificateOnly);
        assert!(!String::from_utf8(out)
            .unwrap()
            .contains("ClientCertAuthFailed"));
    }
}
