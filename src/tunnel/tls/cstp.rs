//! CSTP framing: the frames the AnyConnect-compatible protocol of `openconnect` and `ocserv`
//! sends inside its TLS connection once CONNECT succeeded.
//!
//! A frame is an 8-byte header — `S` `T` `F` 0x01, the payload length (u16, big-endian), the
//! type, 0x00 — and the payload. Types: DATA 0x00 (an IP packet), DPD request 0x03 and
//! response 0x04, DISCONNECT 0x05 (a reason byte, then text), KEEPALIVE 0x07, COMPRESSED
//! 0x08, TERMINATE 0x09 (openconnect's cstp.c; the bytes of tests/vectors/cstp). openconnect
//! takes exactly one frame per TLS record and drops a record that holds more or less, so a
//! sender writes one frame per record; [`parse`] still reads a byte stream, frame by frame.

/// The header in front of every frame.
pub const HEADER_LEN: usize = 8;
const MAGIC: [u8; 4] = *b"STF\x01";

/// A frame's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    DpdRequest,
    DpdResponse,
    Disconnect,
    Keepalive,
    Compressed,
    Terminate,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Data => 0x00,
            Kind::DpdRequest => 0x03,
            Kind::DpdResponse => 0x04,
            Kind::Disconnect => 0x05,
            Kind::Keepalive => 0x07,
            Kind::Compressed => 0x08,
            Kind::Terminate => 0x09,
        }
    }

    fn of(code: u8) -> Option<Kind> {
        Some(match code {
            0x00 => Kind::Data,
            0x03 => Kind::DpdRequest,
            0x04 => Kind::DpdResponse,
            0x05 => Kind::Disconnect,
            0x07 => Kind::Keepalive,
            0x08 => Kind::Compressed,
            0x09 => Kind::Terminate,
            _ => return None,
        })
    }
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CstpError {
    /// Not all of the frame is there yet (a stream reader waits for more).
    #[error("an incomplete frame")]
    Incomplete,
    #[error("not a CSTP frame header")]
    Header,
    #[error("unknown CSTP frame type {0:#04x}")]
    UnknownType(u8),
    #[error("a payload longer than 65535 bytes or a buffer too small")]
    TooLong,
}

/// One frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: Kind,
    pub payload: &'a [u8],
}

/// The frame at the start of `buf` and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<(Frame<'_>, usize), CstpError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        // A prefix that cannot begin a header is refused at once, not waited for.
        let n = buf.len().min(MAGIC.len());
        return if buf[..n] == MAGIC[..n] {
            Err(CstpError::Incomplete)
        } else {
            Err(CstpError::Header)
        };
    };
    if h[..4] != MAGIC || h[7] != 0 {
        return Err(CstpError::Header);
    }
    let kind = Kind::of(h[6]).ok_or(CstpError::UnknownType(h[6]))?;
    let len = HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
    let payload = buf.get(HEADER_LEN..len).ok_or(CstpError::Incomplete)?;
    Ok((Frame { kind, payload }, len))
}

/// Writes a frame into `buf`; returns its length.
pub fn write(buf: &mut [u8], kind: Kind, payload: &[u8]) -> Result<usize, CstpError> {
    let len = u16::try_from(payload.len()).map_err(|_| CstpError::TooLong)?;
    let total = HEADER_LEN + payload.len();
    let out = buf.get_mut(..total).ok_or(CstpError::TooLong)?;
    out[..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out[6] = kind.code();
    out[7] = 0;
    out[HEADER_LEN..].copy_from_slice(payload);
    Ok(total)
}

/// A DISCONNECT frame's reason: its code byte and text (lossy UTF-8).
pub fn disconnect_reason(payload: &[u8]) -> (u8, String) {
    match payload.split_first() {
        Some((code, text)) => (*code, String::from_utf8_lossy(text).into_owned()),
        None => (0, String::new()),
    }
}

/// The fuzz target's body: any bytes are frames, an incomplete frame or refused, never a
/// panic; every frame parsed writes back to the same bytes.
pub fn fuzz_stream(mut data: &[u8]) {
    let mut buf = vec![0u8; HEADER_LEN + usize::from(u16::MAX)];
    while let Ok((f, n)) = parse(data) {
        let m = write(&mut buf, f.kind, f.payload).expect("a parsed frame writes");
        assert_eq!(&buf[..m], &data[..n]);
        data = &data[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMERS_C2S: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/cstp/timers/cstp-client-to-server.bin"
    ));
    const TIMERS_S2C: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/cstp/timers/cstp-server-to-client.bin"
    ));
    const MAIN_S2C: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/cstp/main/cstp-server-to-client.bin"
    ));

    fn frames(mut s: &[u8]) -> Vec<Frame<'_>> {
        let mut out = Vec::new();
        while !s.is_empty() {
            let (f, n) = parse(s).expect("a frame");
            out.push(f);
            s = &s[n..];
        }
        out
    }

    /// openconnect 9.01's stream with 3 s keepalives and an 8 s DPD (tests/vectors/cstp/
    /// timers/frames.txt): two pings, keepalives, a DPD request, and the DISCONNECT it sends
    /// when stopped; ocserv's: the two echo replies and the DPD response.
    #[test]
    fn the_captured_streams_parse_frame_by_frame_and_write_back_the_same() {
        use Kind::*;
        let c2s = frames(TIMERS_C2S);
        let kinds: Vec<Kind> = c2s.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [Data, Data, Keepalive, Keepalive, DpdRequest, Keepalive, Keepalive, Disconnect]
        );
        assert_eq!(c2s[0].payload.len(), 52);
        assert_eq!(c2s[0].payload[0] >> 4, 4, "an IPv4 packet");
        let (code, text) = disconnect_reason(c2s[7].payload);
        assert_eq!((code, text.as_str()), (0xb0, "Aborted by caller"));
        let s2c: Vec<Kind> = frames(TIMERS_S2C).iter().map(|f| f.kind).collect();
        assert_eq!(s2c, [Data, Data, DpdResponse]);
        for stream in [TIMERS_C2S, TIMERS_S2C, MAIN_S2C] {
            let mut again = Vec::new();
            for f in frames(stream) {
                let mut buf = vec![0u8; HEADER_LEN + f.payload.len()];
                write(&mut buf, f.kind, f.payload).unwrap();
                again.extend_from_slice(&buf);
            }
            assert_eq!(again, stream);
        }
    }

    /// Right after CONNECT ocserv's side of the tunnel sends IPv6 (MLD, router solicitation)
    /// although only IPv4 is configured: DATA frames whose packets are IPv6.
    #[test]
    fn ocserv_sends_ipv6_data_at_once() {
        assert!(frames(MAIN_S2C)
            .iter()
            .any(|f| f.kind == Kind::Data && f.payload.first().is_some_and(|b| b >> 4 == 6)));
    }

    #[test]
    fn partial_and_foreign_bytes() {
        assert_eq!(parse(&[]), Err(CstpError::Incomplete));
        assert_eq!(parse(&TIMERS_C2S[..12]), Err(CstpError::Incomplete));
        assert_eq!(parse(b"ST"), Err(CstpError::Incomplete));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(CstpError::Header));
        assert_eq!(
            parse(b"STF\x01\x00\x05\x00\x00abc"),
            Err(CstpError::Incomplete)
        );
        assert_eq!(parse(b"STF\x01\x00\x00\x07\x01"), Err(CstpError::Header));
        assert_eq!(parse(b"STF\x02\x00\x00\x07\x00"), Err(CstpError::Header));
        assert_eq!(
            parse(b"STF\x01\x00\x00\x06\x00"),
            Err(CstpError::UnknownType(6))
        );
        let mut small = [0u8; 9];
        assert_eq!(
            write(&mut small, Kind::Data, &[0; 2]),
            Err(CstpError::TooLong)
        );
        let big = vec![0u8; 70_000];
        let mut buf = vec![0u8; 70_010];
        assert_eq!(write(&mut buf, Kind::Data, &big), Err(CstpError::TooLong));
        assert_eq!(disconnect_reason(&[]), (0, String::new()));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_frames_or_refused(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            fuzz_stream(&data);
        }
    }
}
