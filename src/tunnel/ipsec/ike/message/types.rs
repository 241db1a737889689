//! The IANA registries the codec names, as newtypes over the wire integer: a value the
//! registry does not know still parses and round-trips, and the layer above decides what an
//! unknown transform or identity type means. `Debug` prints the registry name when there is one.

/// Defines a `Copy` newtype over a wire integer with named constants.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $value:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: $name = $name($value); )*

            /// The registry name of this value, if the codec knows it.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

pub(crate) use registry;

registry! {
    /// Payload type [RFC 7296 § 3.2], [RFC 7383 § 2.5].
    PayloadType(u8) {
        /// "No Next Payload": the end of a chain.
        NONE = 0,
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR_ID = 43,
        TSI = 44,
        TSR = 45,
        /// Encrypted and Authenticated [RFC 7296 § 3.14].
        SK = 46,
        CP = 47,
        EAP = 48,
        /// Encrypted and Authenticated Fragment [RFC 7383 § 2.5].
        SKF = 53,
    }
}

impl PayloadType {
    /// Whether this codec parses the payload type (an unknown one with the critical bit set
    /// makes the message fail [RFC 7296 § 2.5]).
    pub fn is_known(self) -> bool {
        self.name().is_some() && self != PayloadType::NONE
    }
}

registry! {
    /// Exchange type [RFC 7296 § 3.1].
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
    }
}

registry! {
    /// Protocol ID of proposals, Notify and Delete payloads [RFC 7296 § 3.3.1]; 0 in a Notify
    /// about the IKE SA itself [RFC 7296 § 3.10].
    ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
    }
}

registry! {
    /// Transform type [RFC 7296 § 3.3.2].
    TransformType(u8) {
        ENCR = 1,
        PRF = 2,
        INTEG = 3,
        /// Diffie-Hellman group ("Key Exchange Method" since RFC 9370).
        DH = 4,
        ESN = 5,
    }
}

/// Transform IDs [RFC 7296 § 3.3.2] and the IANA "IKEv2 Transform Type N" registries, by type.
pub mod transform_id {
    pub const ENCR_3DES: u16 = 3;
    pub const ENCR_NULL: u16 = 11;
    pub const ENCR_AES_CBC: u16 = 12;
    pub const ENCR_AES_CTR: u16 = 13;
    /// AES-GCM with an 8-octet ICV [RFC 5282].
    pub const ENCR_AES_GCM_8: u16 = 18;
    /// AES-GCM with a 12-octet ICV [RFC 5282].
    pub const ENCR_AES_GCM_12: u16 = 19;
    /// AES-GCM with a 16-octet ICV [RFC 5282].
    pub const ENCR_AES_GCM_16: u16 = 20;
    /// [RFC 7634].
    pub const ENCR_CHACHA20_POLY1305: u16 = 28;

    pub const PRF_HMAC_SHA1: u16 = 2;
    /// [RFC 4868].
    pub const PRF_HMAC_SHA2_256: u16 = 5;
    pub const PRF_HMAC_SHA2_384: u16 = 6;
    pub const PRF_HMAC_SHA2_512: u16 = 7;

    pub const AUTH_NONE: u16 = 0;
    pub const AUTH_HMAC_SHA1_96: u16 = 2;
    /// [RFC 4868].
    pub const AUTH_HMAC_SHA2_256_128: u16 = 12;
    pub const AUTH_HMAC_SHA2_384_192: u16 = 13;
    pub const AUTH_HMAC_SHA2_512_256: u16 = 14;

    pub const ESN_NO: u16 = 0;
    pub const ESN_YES: u16 = 1;
}

registry! {
    /// Diffie-Hellman group: a DH transform's ID and the KE payload's group [RFC 7296 § 3.4].
    DhGroup(u16) {
        NONE = 0,
        MODP_2048 = 14,
        MODP_3072 = 15,
        MODP_4096 = 16,
        /// NIST P-256 [RFC 5903].
        ECP_256 = 19,
        ECP_384 = 20,
        ECP_521 = 21,
        /// [RFC 8031].
        CURVE25519 = 31,
        CURVE448 = 32,
    }
}

registry! {
    /// Identification type [RFC 7296 § 3.5].
    IdType(u8) {
        IPV4_ADDR = 1,
        FQDN = 2,
        RFC822_ADDR = 3,
        IPV6_ADDR = 5,
        DER_ASN1_DN = 9,
        DER_ASN1_GN = 10,
        KEY_ID = 11,
    }
}

registry! {
    /// Certificate encoding of CERT and CERTREQ payloads [RFC 7296 § 3.6].
    CertEncoding(u8) {
        PKCS7_X509 = 1,
        PGP = 2,
        DNS_SIGNED_KEY = 3,
        X509_SIGNATURE = 4,
        KERBEROS = 6,
        CRL = 7,
        ARL = 8,
        SPKI = 9,
        X509_ATTRIBUTE = 10,
        RAW_RSA_KEY = 11,
        HASH_URL_X509 = 12,
        HASH_URL_X509_BUNDLE = 13,
        /// [RFC 7670].
        RAW_PUBLIC_KEY = 15,
    }
}

registry! {
    /// Authentication method [RFC 7296 § 3.8].
    AuthMethod(u8) {
        RSA_SIGNATURE = 1,
        SHARED_KEY_MIC = 2,
        DSS_SIGNATURE = 3,
        /// [RFC 4754].
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        /// [RFC 6467].
        GENERIC_SECURE_PASSWORD = 12,
        /// [RFC 7619].
        NULL = 13,
        /// [RFC 7427 § 3].
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// Hash algorithm of a SIGNATURE_HASH_ALGORITHMS notification [RFC 7427 § 4], [RFC 8420].
    HashAlgorithm(u16) {
        SHA1 = 1,
        SHA2_256 = 2,
        SHA2_384 = 3,
        SHA2_512 = 4,
        IDENTITY = 5,
    }
}

registry! {
    /// Traffic selector type [RFC 7296 § 3.13.1].
    TsType(u8) {
        IPV4_ADDR_RANGE = 7,
        IPV6_ADDR_RANGE = 8,
    }
}

registry! {
    /// Configuration payload type [RFC 7296 § 3.15].
    CfgType(u8) {
        REQUEST = 1,
        REPLY = 2,
        SET = 3,
        ACK = 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_known_values_and_numbers_unknown_ones() {
        assert_eq!(format!("{:?}", PayloadType::SKF), "SKF");
        assert_eq!(format!("{:?}", PayloadType(99)), "PayloadType(99)");
        assert_eq!(format!("{:?}", DhGroup::ECP_256), "ECP_256");
        assert!(PayloadType::EAP.is_known());
        assert!(!PayloadType::NONE.is_known());
        assert!(!PayloadType(49).is_known());
    }
}
