//! The body of the `ike_message` fuzz target, shared with the unit and property tests. Not
//! used by the daemon: it allocates.
//!
//! Any bytes are tried as a whole message, as the same message with its header made to
//! agree (version 2, Length = datagram length, so that the payload parsers are reached), and
//! as a decrypted inner chain (first octet: the first payload type). Nothing may panic; what
//! parses is walked through every accessor, re-encoded, and must parse again to the same
//! canonical bytes (the encoding is canonical once reserved fields are zero).

use super::{
    parse_inner, unpad, Message, Payload, PayloadChain, PayloadType, Selector, HEADER_LEN,
};

/// Runs every check on `data`; panics on a violated property.
pub fn round_trip(data: &[u8]) {
    message(data);
    if data.len() >= HEADER_LEN {
        let mut fixed = data.to_vec();
        fixed[17] = 0x20;
        let len = u32::try_from(fixed.len()).unwrap_or(u32::MAX);
        fixed[24..28].copy_from_slice(&len.to_be_bytes());
        message(&fixed);
    }
    if let Some((&first, chain)) = data.split_first() {
        inner(PayloadType(first), chain);
        if let Ok(chain) = unpad(chain) {
            inner(PayloadType(first), chain);
        }
    }
}

fn message(data: &[u8]) {
    let msg = match Message::parse(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.notify();
            return;
        }
    };
    msg.payloads.iter().for_each(walk);
    if let Some(e) = msg.encrypted() {
        let range = msg
            .encrypted_range()
            .expect("an encrypted payload has a range");
        assert_eq!(&data[range], e.body);
        assert!(msg.aad().expect("and an AAD").len() >= HEADER_LEN + 4);
    }
    let bytes = msg.encode().expect("a parsed message re-encodes");
    assert_eq!(bytes.len(), data.len(), "re-encoding keeps every length");
    let again = Message::parse(&bytes).expect("a re-encoded message parses");
    assert_eq!(again.header, msg.header);
    assert!(again.payload_types().eq(msg.payload_types()));
    assert_eq!(again.encode().expect("and re-encodes"), bytes);
}

fn inner(first: PayloadType, chain: &[u8]) {
    let Ok(payloads) = parse_inner(first, chain) else {
        return;
    };
    payloads.iter().for_each(walk);
    let mut out = PayloadChain::new();
    for p in &payloads {
        out.push(p);
    }
    let bytes = out.bytes().expect("a parsed chain re-encodes");
    assert_eq!(bytes.len(), chain.len());
    let again = parse_inner(out.first_type(), bytes).expect("a re-encoded chain parses");
    assert_eq!(again.len(), payloads.len());
    let mut out2 = PayloadChain::new();
    for p in &again {
        out2.push(p);
    }
    assert_eq!(out2.bytes(), Ok(bytes));
}

/// Calls every accessor of a parsed payload: none may panic.
fn walk(p: &Payload<'_>) {
    match p {
        Payload::Sa(sa) => {
            for proposal in sa.proposals() {
                let mut n = 0;
                for t in proposal.transforms() {
                    let _ = (t.key_length(), t.has_unknown_attributes());
                    for a in t.attributes() {
                        let _ = a.attr_type();
                    }
                    n += 1;
                }
                assert_eq!(n, usize::from(proposal.transform_count()));
                assert_eq!(proposal.to_spec().transforms.len(), n);
            }
        }
        Payload::TsI(ts) | Payload::TsR(ts) => {
            assert_eq!(ts.selectors().count(), ts.len());
            for s in ts.selectors() {
                if let Selector::Ip(t) = s {
                    let _ = t.ts_type();
                }
            }
        }
        Payload::IdI(id) | Payload::IdR(id) => {
            let _ = (id.value(), id.auth_prefix());
        }
        Payload::Auth(a) => {
            if let Some(sig) = a.digital_signature() {
                assert!(!sig.algorithm_oid().is_empty());
            }
        }
        Payload::CertReq(c) => {
            let _ = c.authorities().count();
        }
        Payload::Notify(n) => {
            let _ = (n.accepted_group(), n.hash_algorithms().map(Iterator::count));
        }
        Payload::Delete(d) => {
            let _ = d.spis().count();
        }
        Payload::Cp(cp) => {
            let _ = cp.attributes().count();
        }
        Payload::Encrypted(e) => {
            let _ = e.split(8, 16);
        }
        Payload::Ke(_)
        | Payload::Cert(_)
        | Payload::Nonce(_)
        | Payload::VendorId(_)
        | Payload::Eap(_)
        | Payload::Unknown { .. } => {}
    }
}
