//! Why the data path dropped a packet. Every drop has exactly one reason and every reason is
//! a value of the `reason` label of `ixgw_drops_total`.

macro_rules! reasons {
    ($($(#[$m:meta])* $variant:ident => $label:literal,)*) => {
        /// The cause of one dropped packet. `Copy`, no payload: garbage must cost nothing.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$m])* $variant,)*
        }

        impl DropReason {
            /// Every reason, in label order of the metric.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The `reason` label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $label,)*
                }
            }
        }
    };
}

reasons! {
    /// Not a well-formed IPv4 packet (truncated, bad header length, bad total length, a
    /// transport header that does not fit, an ICMP error whose quoted packet is unusable or
    /// that is larger than the 576 bytes routers send).
    Malformed => "malformed",
    /// An IPv6 packet: ixgw does not translate IPv6 yet.
    Ipv6 => "ipv6",
    /// The source address is not one the peer or attachment may send from.
    Spoofed => "spoofed",
    /// The destination is in no tenant's exchange prefix, or no attachment of the destination
    /// tenant routes it.
    NoRoute => "no_route",
    /// The destination is the network or the broadcast address of the prefix that routes it
    /// (a prefix of length 30 or less), and that route does not accept directed broadcasts
    /// [RFC 1812 § 4.2.3.1, RFC 2644].
    DirectedBroadcast => "directed_broadcast",
    /// No policy allows the flow (default deny).
    Policy => "policy",
    /// The certificate state of the facility at either end forbids traffic (revoked,
    /// expired, not yet valid, unknown CA, binding mismatch, stale CRL, ...).
    Certificate => "certificate",
    /// TTL would reach zero at this hop.
    Ttl => "ttl",
    /// A non-first IPv4 fragment: it carries no ports, so no flow can be admitted for it.
    Fragment => "fragment",
    /// An IPv4 option that records or dictates addresses: record route, loose or strict source
    /// route, or a timestamp with addresses [RFC 791 § 3.1]. Such a packet would carry one
    /// tenant's internal numbering to another, or choose its own path through a facility.
    IpOptions => "ip_options",
    /// An ICMP message type that is neither echo nor a supported error, or an echo request or
    /// reply with a code other than 0 [RFC 792].
    IcmpUnsupported => "icmp_unsupported",
    /// The flow table is full of live conversations (nothing transient left to evict); a new
    /// flow cannot be admitted.
    FlowTableFull => "flow_table_full",
    /// A packet that may only continue a tracked flow found none: a TCP SYN-ACK, RST or FIN
    /// or a segment without SYN or ACK, an ICMP echo reply, an ICMP error about no known flow.
    NoFlow => "no_flow",
    /// A new flow whose opener's tenant already holds `dataplane.max_flows_per_tenant` flows.
    TenantFlowQuota => "tenant_flow_quota",
    /// A new flow whose opener's facility already holds `dataplane.max_flows_per_facility`
    /// flows.
    FacilityFlowQuota => "facility_flow_quota",
    /// The packet does not fit the egress tunnel's MTU and may not be fragmented.
    TooBig => "too_big",
    /// The destination WireGuard peer has no known endpoint (never connected, none configured).
    NoEndpoint => "no_endpoint",
    /// The destination WireGuard peer has no session: the packets waiting for its handshake
    /// exceeded the queue, the handshake timed out, or the peer was removed or re-keyed.
    NoSession => "no_session",
    /// A WireGuard datagram that could not be parsed.
    WgMalformed => "wg_malformed",
    /// A WireGuard datagram for a receiver index that belongs to no live session.
    WgUnknownIndex => "wg_unknown_index",
    /// A WireGuard datagram that failed authentication (MAC, AEAD tag, handshake decryption).
    WgAuth => "wg_auth",
    /// A WireGuard data packet with a replayed or too old counter.
    WgReplay => "wg_replay",
    /// A WireGuard handshake message refused while the attachment is under load (a cookie
    /// was sent), or because its handshake queue was full.
    WgUnderLoad => "wg_under_load",
    /// A WireGuard handshake initiation from a public key that is not a configured peer.
    WgUnknownPeer => "wg_unknown_peer",
    /// Any other WireGuard protocol error reported by the tunnel state machine.
    WgProtocol => "wg_protocol",
    /// An ESP packet whose SPI belongs to no installed inbound SA (never installed, or
    /// deleted after a rekey or by the peer).
    EspUnknownSpi => "esp_unknown_spi",
    /// An ESP packet with sequence number 0, one seen before, or one left of the replay
    /// window [RFC 4303 § 3.4.3].
    EspReplay => "esp_replay",
    /// An ESP packet whose ICV (GCM tag or HMAC) did not verify.
    EspIntegrity => "esp_integrity",
    /// An ESP packet too short or misaligned for its SA, with bad padding, a next header
    /// other than IPv4, or an inner packet that is not IPv4; or an IKE/ESP datagram that is
    /// neither.
    EspMalformed => "esp_malformed",
    /// A frame on an `ethernet` attachment's port that is not well formed: too short, an
    /// 802.1Q tag with VLAN 0xfff or a second tag (QinQ), a malformed ARP packet.
    EthMalformed => "eth_malformed",
    /// A frame of another VLAN than the attachment's (or untagged on a tagged attachment).
    EthOtherVlan => "eth_other_vlan",
    /// An IPv4 frame addressed to another MAC than the gateway's on the link.
    EthNotForUs => "eth_not_for_us",
    /// A frame of an EtherType the link does not carry (neither IPv4, ARP nor IPv6).
    EthOtherType => "eth_ethertype",
    /// ARP that neither asks for nor answers the gateway's address (other hosts' chatter).
    ArpIgnored => "arp_ignored",
    /// The next hop's MAC could not be resolved: ARP went unanswered, or too many packets
    /// were already waiting for answers.
    ArpUnresolved => "arp_unresolved",
    /// A packet for a TLS client found its connection's queue full (the client or its link
    /// is slower than the traffic sent to it).
    TlsClientQueueFull => "tls_client_queue_full",
    /// A packet found the socket pair between the TLS thread and the worker full: a TLS
    /// client's packet when the worker is behind, or one for a TLS client when the TLS
    /// thread is (the worker never waits for it).
    TlsRelayFull => "tls_relay_full",
    /// An IKE message that found the queue to the IKE thread full.
    IkeQueueFull => "ike_queue_full",
    /// A datagram larger than the data path's 2048-byte packet buffers: no tunnel packet of
    /// a 1500-byte path is. Also a TUN device's super-packet that cannot be cut into such
    /// packets (counted once).
    Oversized => "oversized",
    /// A packet for another data-path worker found the queue to it full (that worker is
    /// behind): dropped at once, before any more work is spent on it.
    WorkerQueueFull => "worker_queue_full",
    /// A packet handed between workers while a reload switched them from one plan to the
    /// next (its peer numbers belong to the other plan).
    HandoffStale => "handoff_stale",
    /// The transmit batch was full for this wake-up.
    TxQueueFull => "tx_queue_full",
    /// The operating system refused to send the packet.
    SendFailed => "send_failed",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            let l = r.as_str();
            assert!(seen.insert(l), "duplicate label {l}");
            assert!(
                l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{l}"
            );
        }
        assert_eq!(
            DropReason::ALL[DropReason::Policy as usize],
            DropReason::Policy
        );
    }
}
