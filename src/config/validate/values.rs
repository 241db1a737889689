//! The grammar of single values (prefixes, sockets, durations, port rules, facility codes,
//! keys and key files) and the generic checks (ranges, uniqueness, overlaps), each error
//! naming its key.

use super::*;

impl Validator {
    /// The first overlap among `items`, reported at the later of the two in file order.
    pub(super) fn no_overlap(&self, items: &[Keyed]) -> Result<(), ConfigError> {
        match first_overlap(items) {
            None => Ok(()),
            Some((later, earlier)) => {
                let (value, key) = &items[later];
                let (other, other_key) = &items[earlier];
                Err(self.err(
                    key,
                    Problem::Overlap {
                        value: *value,
                        other: *other,
                        other_key: other_key.clone(),
                        other_line: self.lines.line(other_key),
                    },
                ))
            }
        }
    }

    /// Takes `socket` for `key` among the `taken` listeners (UDP, or TCP, each its own
    /// list), or names the key that has it.
    pub(super) fn claim_socket(
        &self,
        taken: &mut Vec<(SocketAddr, String)>,
        socket: SocketAddr,
        key: String,
    ) -> Result<(), ConfigError> {
        if let Some((_, other)) = taken.iter().find(|(l, _)| same_socket(*l, socket)) {
            return Err(self.err(
                &key,
                Problem::SameListen {
                    value: socket.to_string(),
                    other_key: other.clone(),
                    other_line: self.lines.line(other),
                },
            ));
        }
        taken.push((socket, key));
        Ok(())
    }

    pub(super) fn unique(
        &self,
        names: &mut Names,
        what: &'static str,
        name: &str,
        key: &str,
    ) -> Result<(), ConfigError> {
        self.nonempty(key, name)?;
        if let Some(first) = names.0.get(name) {
            return Err(self.err(
                key,
                Problem::DuplicateName {
                    what,
                    name: name.to_string(),
                    first_key: first.clone(),
                    first_line: self.lines.line(first),
                },
            ));
        }
        names.0.insert(name.to_string(), key.to_string());
        Ok(())
    }

    pub(super) fn nonempty(&self, key: &str, value: &str) -> Result<(), ConfigError> {
        if value.trim().is_empty() {
            return Err(self.err(key, Problem::Empty));
        }
        Ok(())
    }

    pub(super) fn required<'v, T>(
        &self,
        ak: &str,
        key: &'static str,
        value: &'v Option<T>,
        kind: &'static str,
    ) -> Result<&'v T, ConfigError> {
        value.as_ref().ok_or_else(|| {
            self.err(
                &format!("{ak}.{key}"),
                Problem::MissingForKind { key, kind },
            )
        })
    }

    pub(super) fn in_range(
        &self,
        key: &str,
        value: u64,
        range: RangeInclusive<u64>,
    ) -> Result<(), ConfigError> {
        if !range.contains(&value) {
            return Err(self.err(key, out_of_range(value, range)));
        }
        Ok(())
    }

    pub(super) fn mtu(
        &self,
        ak: &str,
        value: Option<u64>,
        kind: &'static str,
        range: RangeInclusive<u16>,
        default: u16,
    ) -> Result<u16, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        match u16::try_from(v) {
            Ok(m) if range.contains(&m) => Ok(m),
            _ => Err(self.err(
                &format!("{ak}.mtu"),
                Problem::Mtu {
                    value: v,
                    kind,
                    min: *range.start(),
                    max: *range.end(),
                },
            )),
        }
    }

    /// A network prefix without host bits.
    pub(super) fn prefix(&self, key: &str, s: &str) -> Result<Ipv4Network, ConfigError> {
        let net = self.prefix_with_host(key, s)?;
        if net.ip() != net.network() {
            let network = Ipv4Network::new(net.network(), net.prefix()).unwrap_or(net);
            return Err(self.err(
                key,
                Problem::HostBits {
                    value: net,
                    network,
                },
            ));
        }
        Ok(net)
    }

    /// An address with its prefix length (an interface address; host bits expected).
    pub(super) fn prefix_with_host(&self, key: &str, s: &str) -> Result<Ipv4Network, ConfigError> {
        s.trim().parse::<Ipv4Network>().map_err(|e| {
            self.err(
                key,
                Problem::Prefix {
                    value: s.to_string(),
                    reason: e.to_string(),
                },
            )
        })
    }

    pub(super) fn socket(&self, key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
        s.trim().parse().map_err(|_| {
            self.err(
                key,
                Problem::SocketAddr {
                    value: s.to_string(),
                },
            )
        })
    }

    pub(super) fn duration(&self, key: &str, s: &str) -> Result<Duration, ConfigError> {
        parse_duration(s).ok_or_else(|| {
            self.err(
                key,
                Problem::Duration {
                    value: s.to_string(),
                },
            )
        })
    }

    pub(super) fn port_rule(&self, key: &str, s: &str) -> Result<PortRule, ConfigError> {
        parse_port_rule(s).map_err(|reason| {
            self.err(
                key,
                Problem::PortRule {
                    value: s.to_string(),
                    reason,
                },
            )
        })
    }

    /// A peer's `facility`, which every peer must have.
    pub(super) fn peer_facility(
        &self,
        pk: &str,
        peer: &str,
        facility: &Option<String>,
    ) -> Result<FacilityCode, ConfigError> {
        let fk = format!("{pk}.facility");
        match facility {
            Some(s) => self.facility(&fk, s),
            None => Err(self.err(
                &fk,
                Problem::MissingFacility {
                    peer: peer.to_string(),
                },
            )),
        }
    }

    pub(super) fn facility(&self, key: &str, s: &str) -> Result<FacilityCode, ConfigError> {
        FacilityCode::parse(s).map_err(|reason| {
            let lost_zero = s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit());
            if lost_zero && self.lines.is_plain(key) {
                self.err(
                    key,
                    Problem::FacilityUnquoted {
                        value: s.to_string(),
                        digits: s.len(),
                        padded: format!("0{s}"),
                    },
                )
            } else {
                self.err(
                    key,
                    Problem::FacilityCode {
                        value: s.to_string(),
                        reason,
                    },
                )
            }
        })
    }

    pub(super) fn public_key(&self, key: &str, s: &str) -> Result<Key32, ConfigError> {
        decode_key(s.trim()).ok_or_else(|| {
            self.err(
                key,
                Problem::PublicKey {
                    value: s.to_string(),
                },
            )
        })
    }

    /// Reads at most `limit + 1` bytes of the file that key `key` names (`s`; a relative path
    /// is relative to the configuration's directory), so that callers can tell a file over
    /// the limit. The bytes are zeroed when dropped: the file may hold a secret.
    pub(super) fn read_file(
        &self,
        key: &str,
        s: &str,
        what: &'static str,
        limit: u64,
    ) -> Result<(PathBuf, Zeroizing<Vec<u8>>), ConfigError> {
        let given = Path::new(s);
        let secret = matches!(what, "key" | "private key" | "pre-shared key");
        // A secret with a relative path is looked up in systemd's credentials directory
        // first (`LoadCredential=`), then beside the configuration. A credential loaded from
        // a directory (`LoadCredential=keys:/etc/ixgw/keys`) is named with `_` for `/`
        // (`keys_ajisai-wg.key`), so `keys/ajisai-wg.key` names the same key in the service
        // and, beside the configuration, for `ixgw check` run by root outside it.
        let flattened = (given.components())
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("_");
        let in_credentials = self
            .credentials
            .as_ref()
            .filter(|_| secret && given.is_relative())
            .and_then(|d| {
                [d.join(given), d.join(&flattened)]
                    .into_iter()
                    .find(|p| p.exists())
            });
        let path = match in_credentials {
            Some(p) => p,
            None if given.is_relative() => self.dir.join(given),
            None => given.to_path_buf(),
        };
        if secret {
            self.warn_if_readable_by_others(key, &path);
        }
        let mut bytes = Zeroizing::new(Vec::new());
        std::fs::File::open(&path)
            .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
            .map_err(|source| {
                self.err(
                    key,
                    Problem::KeyFileRead {
                        what,
                        file: path.display().to_string(),
                        source,
                    },
                )
            })?;
        Ok((path, bytes))
    }

    /// Warns when the secret at `path` is readable by users other than its owner and group.
    fn warn_if_readable_by_others(&self, key: &str, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            self.file_warnings.borrow_mut().push(crate::config::Warning {
                file: self.file.clone(),
                line: Some(self.lines.line(key)),
                key: key.to_string(),
                message: format!(
                    "{} is readable by every user (mode {mode:04o}): chmod o-r it (0600, or 0640 with the ixgw group), or pass it with systemd's LoadCredential=",
                    path.display()
                ),
            });
        }
    }

    /// Reads a WireGuard key file: one base64 32-byte key.
    pub(super) fn key_file(&self, key: &str, s: &str) -> Result<(PathBuf, Key32), ConfigError> {
        let (path, bytes) = self.read_file(key, s, "key", KEY_FILE_LIMIT)?;
        let file = path.display().to_string();
        let malformed = |reason| {
            self.err(
                key,
                Problem::KeyFileMalformed {
                    file: file.clone(),
                    reason,
                },
            )
        };
        if bytes.len() as u64 > KEY_FILE_LIMIT {
            return Err(malformed("the file is too large"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| malformed("not text"))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(malformed("the file is empty"));
        }
        if text.lines().count() > 1 {
            return Err(malformed("more than one line"));
        }
        let key32 = decode_key(text).ok_or_else(|| malformed("not base64 of 32 bytes"))?;
        Ok((path, key32))
    }
}

pub(super) fn out_of_range(value: u64, range: RangeInclusive<u64>) -> Problem {
    Problem::OutOfRange {
        value,
        min: *range.start(),
        max: *range.end(),
    }
}

pub(super) fn decode_key(s: &str) -> Option<Key32> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Key32)
}

pub(super) fn join(nets: &[Ipv4Network]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds two overlapping prefixes as `(later, earlier)` indices in file order. Prefixes are
/// either nested or disjoint, so after sorting by start address a prefix overlaps an earlier
/// one exactly when it starts before the furthest end seen so far.
pub(super) fn first_overlap(items: &[Keyed]) -> Option<(usize, usize)> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (u32::from(items[i].0.network()), items[i].0.prefix(), i));
    let mut furthest: Option<(u32, usize)> = None;
    for &i in &order {
        let net = items[i].0;
        let start = u32::from(net.network());
        let end = u32::from(net.broadcast());
        if let Some((f_end, f_idx)) = furthest {
            if start <= f_end {
                return Some((i.max(f_idx), i.min(f_idx)));
            }
        }
        if furthest.is_none_or(|(f_end, _)| end > f_end) {
            furthest = Some((end, i));
        }
    }
    None
}

/// `25s`, `5m`, `2h`, or a whole number of seconds.
pub(super) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b's' => (&s[..s.len() - 1], 1),
        b'm' => (&s[..s.len() - 1], 60),
        b'h' => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(unit)
        .map(Duration::from_secs)
}

/// `tcp/443`, `tcp/1000-2000`, `udp/53`, `tcp`, `udp` (all ports), `icmp`, `any`.
pub(super) fn parse_port_rule(s: &str) -> Result<PortRule, &'static str> {
    let s = s.trim().to_ascii_lowercase();
    let (proto, ports) = match s.split_once('/') {
        Some((p, r)) => (p, Some(r)),
        None => (s.as_str(), None),
    };
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        "any" => Protocol::Any,
        _ => return Err("unknown protocol"),
    };
    let Some(range) = ports else {
        return Ok(PortRule {
            protocol,
            ports: None,
        });
    };
    if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
        return Err("only tcp and udp take ports");
    }
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(0) => Err("port 0 is not a destination port"),
        Ok(n) => Ok(n),
        Err(_) => Err("a port is a number in 1..=65535"),
    };
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(range)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err("the range's first port is above its last");
    }
    Ok(PortRule {
        protocol,
        ports: Some((lo, hi)),
    })
}
