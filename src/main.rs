//! The `ixgw` command line. Everything it does is a call into the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, Parser, Subcommand};

use ixgw::ca::{self, store, KeyType, Reason};
use ixgw::config::Config;
use ixgw::tunnel::wireguard::keys;

/// `ixgw --version`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("IXGW_COMMIT"), ")");

#[derive(Parser)]
#[command(
    name = "ixgw",
    version = VERSION,
    about = "IX gateway for Japan's medical networks: WireGuard/IPsec termination, twice-NAT, policy, metrics",
    long_about = "IX gateway for Japan's medical networks: WireGuard and IPsec termination, \
        twice-NAT, policy, metrics.\n\n\
        `ixgw run` is the daemon (the systemd unit ixgw.service runs it); the other commands \
        check its configuration, show its attachments and peers, print the facility side's \
        tunnel configuration, make keys, judge facility certificates and run a lab CA. \
        check, run, peer-config and show read /etc/ixgw/ixgw.yaml unless given another file."
)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `ixgw=debug`; else RUST_LOG; else
    /// `info` (`warn` for the demo, whose own output is the table).
    #[arg(long, global = true)]
    log: Option<String>,
    /// Log lines as `text` (without colour codes unless stderr is a terminal, so that
    /// journald shows them as they are) or `json` (one object per line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where the daemon's configuration lives unless told otherwise.
const DEFAULT_CONFIG: &str = "/etc/ixgw/ixgw.yaml";

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file: exit 0, or print FILE:LINE: KEY: problem and exit 1.
    /// The file is FILE, or --config, or /etc/ixgw/ixgw.yaml.
    Check {
        /// The configuration file (the same as --config).
        #[arg(value_name = "FILE", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// The configuration file (the same as FILE).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the gateway in the foreground. SIGHUP reloads the file, SIGTERM drains and exits.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run a self-contained demo: the gateway plus simulated facilities over loopback.
    Demo {
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
        /// Where to serve /metrics (default: a free port on 127.0.0.1).
        #[arg(long, default_value = "127.0.0.1:0")]
        metrics_listen: std::net::SocketAddr,
    },
    /// Show the running daemon's attachments and peers, like `wg show`: facility, endpoint,
    /// state, latest handshake, transfer, drops. NAME keeps one attachment, tenant, peer or
    /// facility code. Asks the daemon on its admin socket (metrics.admin_socket).
    Show {
        /// An attachment, tenant, peer or facility code.
        name: Option<String>,
        /// Print the daemon's JSON report (for scripts) instead of text.
        #[arg(long)]
        json: bool,
        /// The admin socket [default: metrics.admin_socket of --config or of
        /// /etc/ixgw/ixgw.yaml if readable, else /run/ixgw/ixgw.sock].
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// The configuration whose metrics.admin_socket to ask.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin, print its public key, like `wg pubkey`.
    Pubkey,
    /// Print a new WireGuard preshared key (base64), like `wg genpsk`.
    Genpsk,
    /// Print the facility side's configuration of a peer: wg-quick for a WireGuard peer,
    /// swanctl.conf for an IPsec peer.
    PeerConfig {
        /// The configuration file.
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The peer's name in the configuration.
        #[arg(long)]
        peer: String,
        /// WireGuard: the facility's private key file, to fill in `PrivateKey` (else a
        /// placeholder).
        #[arg(long)]
        private_key: Option<PathBuf>,
        /// IPsec with `auth: psk`: write the pre-shared key from the peer's `psk_file` (else a
        /// placeholder).
        #[arg(long)]
        with_psk: bool,
    },
    /// Usage for cost sharing: packets and inner IP bytes each way per tenant pair, or per
    /// facility, over [--from, --to), from the records the daemon writes to `usage.dir`.
    /// Dates (YYYY-MM-DD) are midnight in Japan (JST, UTC+09:00); RFC 3339 times are taken as
    /// written. Rows go to stdout (CSV with a header line, or JSON); with CSV the coverage
    /// (gaps, partial records, skipped lines) goes to stderr, with JSON into the document.
    Usage {
        /// Read `usage.dir` from this configuration [default: /etc/ixgw/ixgw.yaml].
        #[arg(long, short, conflicts_with = "dir")]
        config: Option<PathBuf>,
        /// The records' directory itself (no configuration needed).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The period's first instant: YYYY-MM-DD (00:00 JST) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        from: String,
        /// The instant after the period (exclusive): YYYY-MM-DD (00:00 JST) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        to: String,
        /// Rows per tenant pair or per facility.
        #[arg(long, value_enum, default_value_t = UsageBy::Tenant)]
        by: UsageBy,
        #[arg(long, value_enum, default_value_t = UsageFormat::Csv)]
        format: UsageFormat,
    },
    /// Facility certificates.
    Facility {
        #[command(subcommand)]
        command: FacilityCommand,
    },
    /// A small lab CA for facility certificates and CRLs (no OpenSSL).
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Print the shell completion script for SHELL on stdout.
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page ixgw(1) on stdout; with --dir, write it and one page per subcommand
    /// (ixgw-check.1, ixgw-ca-init.1, ...) into DIR.
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UsageBy {
    Tenant,
    Facility,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UsageFormat {
    Csv,
    Json,
}

#[derive(Subcommand)]
enum FacilityCommand {
    /// Read a facility certificate (PEM: the leaf, then intermediates) and print the facility
    /// code it names, its chain and WireGuard keys; with --config, judge it as the daemon
    /// would for that facility (the tenant's CAs, their CRLs as on disk now, the binding to
    /// its peers' keys) and print the verdict. Exit 0 only for a valid certificate.
    Verify {
        /// The certificate (PEM: the leaf, then intermediates).
        cert: PathBuf,
        /// The configuration to judge the certificate by.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Make a CA in DIR: ca.crt, ca.key (0600), an empty crl.pem, revoked.txt, crl_number.
    /// With --parent, an intermediate CA signed by the CA in PARENT_DIR, and chain.pem (it,
    /// then the parent). Refuses to overwrite an existing CA.
    Init {
        /// The new CA's directory (created 0700 if missing).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's CN.
        #[arg(long)]
        name: String,
        /// The CA's O, which its facility certificates carry too [default: ixgw lab].
        #[arg(long)]
        org: Option<String>,
        /// Make an intermediate CA signed by the (root) CA in this directory.
        #[arg(long, value_name = "PARENT_DIR")]
        parent: Option<PathBuf>,
        /// Validity in days from now (or from --not-before).
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        #[command(flatten)]
        bounds: Bounds,
        /// ec256, ec384 or ed25519.
        #[arg(long, default_value = "ec256")]
        key_type: KeyType,
        /// How long the first CRL is valid: 7d, 1h, 30s, ...
        #[arg(long, default_value = "7d", value_parser = ca::duration)]
        next_update: Duration,
    },
    /// Issue a facility certificate: PREFIX.crt (with the CA's certificate after it when the CA
    /// is an intermediate) and PREFIX.key (0600). The facility code goes into the subject's
    /// serialNumber and a SAN URI urn:ixgw:facility:CODE.
    Issue {
        /// The CA's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The 10-digit facility code (医療機関コード).
        #[arg(long, value_name = "CODE", value_parser = ca::facility)]
        facility: ixgw::ids::FacilityCode,
        /// The subject's CN.
        #[arg(long)]
        name: String,
        /// A WireGuard public key (base64) the certificate vouches for: a SAN URI
        /// urn:ixgw:wireguard-key:KEY. Repeatable.
        #[arg(long, value_name = "BASE64", value_parser = ca::wireguard_key)]
        wireguard_key: Vec<[u8; 32]>,
        /// A SAN dNSName (an IKE or TLS identity). Repeatable.
        #[arg(long, value_name = "NAME")]
        dns: Vec<String>,
        /// A SAN rfc822Name. Repeatable.
        #[arg(long, value_name = "ADDR")]
        email: Vec<String>,
        /// Validity in days from now (or from --not-before).
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        #[command(flatten)]
        bounds: Bounds,
        /// ec256, ec384 or ed25519.
        #[arg(long, default_value = "ec256")]
        key_type: KeyType,
        /// Where to write: PREFIX.crt and PREFIX.key.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Revoke a certificate the CA issued: add its serial to revoked.txt and sign a new CRL.
    Revoke {
        /// The CA's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate (PEM; the first certificate of a chain file).
        cert: PathBuf,
        /// unspecified, key-compromise, superseded or cessation-of-operation.
        #[arg(long, default_value = "unspecified")]
        reason: Reason,
        /// How long the new CRL is valid: 7d, 1h, 30s, ...
        #[arg(long, default_value = "7d", value_parser = ca::duration)]
        next_update: Duration,
    },
    /// Sign the CRL again with the next CRL number (to refresh its nextUpdate).
    Crl {
        /// The CA's directory.
        #[arg(long)]
        dir: PathBuf,
        /// How long the CRL is valid from its thisUpdate: 7d, 1h, 30s, ...
        #[arg(long, default_value = "7d", value_parser = ca::duration)]
        next_update: Duration,
        /// thisUpdate instead of now (RFC 3339); a past one makes a stale CRL for tests.
        #[arg(long, value_parser = ca::time)]
        this_update: Option<SystemTime>,
    },
}

/// Overrides of a certificate's validity.
#[derive(clap::Args)]
struct Bounds {
    /// notBefore instead of now (RFC 3339, e.g. 2026-04-01T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = ca::time)]
    not_before: Option<SystemTime>,
    /// notAfter instead of --days after notBefore (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = ca::time)]
    not_after: Option<SystemTime>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    let filter = match &cli.log {
        Some(f) => tracing_subscriber::EnvFilter::try_new(f),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .or_else(|_| tracing_subscriber::EnvFilter::try_new(default)),
    }
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only for a person at a terminal: under journald (or piped) they would
    // show as `[… blob data]`.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ixgw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// UNIX seconds now, for certificate validity.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { file, config } => {
            let config = file
                .or(config)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            check(&config)
        }
        Command::Run { config } => {
            runtime()?.block_on(ixgw::runtime::run(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            duration,
            metrics_listen,
        } => {
            runtime()?.block_on(ixgw::demo::run(
                metrics_listen,
                duration.map(std::time::Duration::from_secs),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Genkey => {
            println!("{}", keys::encode(&keys::generate_private_key()?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            name,
            json,
            socket,
            config,
        } => {
            // Only the socket's path is read from the file: no key or CA file is opened.
            let socket = match (socket, config) {
                (Some(s), _) => Some(s),
                (None, Some(c)) => match ixgw::config::operator_paths(&c) {
                    Ok(p) => p.admin_socket,
                    Err(e) => {
                        eprintln!("{e}");
                        return Ok(ExitCode::FAILURE);
                    }
                },
                (None, None) => {
                    match ixgw::config::operator_paths(std::path::Path::new(DEFAULT_CONFIG)) {
                        Ok(p) => p.admin_socket,
                        Err(_) => Some(PathBuf::from(ixgw::config::DEFAULT_ADMIN_SOCKET)),
                    }
                }
            };
            let Some(socket) = socket else {
                eprintln!("the configuration has no admin socket (metrics.admin_socket: none)");
                return Ok(ExitCode::FAILURE);
            };
            let report = match ixgw::runtime::fetch_show(&socket) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let report = match &name {
                None => report,
                Some(n) => match report.only(n) {
                    Some(r) => r,
                    None => {
                        eprintln!("no attachment, tenant, peer or facility named `{n}`");
                        return Ok(ExitCode::FAILURE);
                    }
                },
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                print!("{}", report.render(now));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Genpsk => {
            // 32 random bytes, as `wg genpsk` (a private key's generation is exactly that).
            println!("{}", keys::encode(&keys::generate_private_key()?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Pubkey => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            let k = keys::decode(&s)
                .map_err(|e| anyhow::anyhow!("invalid private key on stdin: {e}"))?;
            println!("{}", keys::encode(&keys::public_key(&k)));
            Ok(ExitCode::SUCCESS)
        }
        Command::PeerConfig {
            config,
            peer,
            private_key,
            with_psk,
        } => {
            let c = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let key = match private_key {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                ),
                None => None,
            };
            let secrets = ixgw::peer_config::Secrets {
                private_key: key.as_deref(),
                psk: with_psk,
            };
            print!("{}", ixgw::peer_config::render(&c, &peer, secrets)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Facility {
            command: FacilityCommand::Verify { cert, config },
        } => {
            let bytes =
                std::fs::read(&cert).map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
            let config = match config.as_deref().map(Config::load).transpose() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let (report, valid) =
                ixgw::runtime::verify_certificate(&bytes, config.as_ref(), unix_now())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
            print!("{report}");
            Ok(if valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Ca { command } => {
            println!("{}", run_ca(command, SystemTime::now())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Usage {
            config,
            dir,
            from,
            to,
            by,
            format,
        } => usage(config, dir, &from, &to, by, format),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ixgw", &mut out);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            let pages = man_pages()?;
            match dir {
                None => {
                    if let Some((_, top)) = pages.first() {
                        std::io::Write::write_all(&mut std::io::stdout().lock(), top)?;
                    }
                }
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
                    for (name, page) in &pages {
                        let path = dir.join(name);
                        std::fs::write(&path, page)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The man pages as (file name, roff): ixgw.1 first, with the sections clap does not know
/// (environment, files, signals), then one page per visible subcommand, nested ones included.
fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    use clap_mangen::roff::{bold, roman, Roff};

    fn subcommand_pages(
        cmd: &clap::Command,
        pages: &mut Vec<(String, Vec<u8>)>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let man = clap_mangen::Man::new(sub.clone()).source(format!("ixgw {VERSION}"));
            let mut page = Vec::new();
            man.render(&mut page)?;
            pages.push((man.get_filename(), page));
            subcommand_pages(sub, pages)?;
        }
        Ok(())
    }

    // Built once so that subcommands carry their display names (`ixgw-check`).
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut top = Vec::new();
    man.render(&mut top)?;
    let mut extra = Roff::new();
    let entries = |roff: &mut Roff, heading: &str, items: &[(&str, &str)]| {
        roff.control("SH", [heading]);
        for (term, text) in items {
            roff.control("TP", [])
                .text([bold(*term)])
                .text([roman(*text)]);
        }
    };
    entries(
        &mut extra,
        "ENVIRONMENT",
        &[
            (
                "RUST_LOG",
                "The log filter when --log is not given (tracing EnvFilter syntax).",
            ),
            (
                "CREDENTIALS_DIRECTORY",
                "Set by systemd (LoadCredential=). A relative key, private key or pre-shared \
                 key file path in the configuration is looked up there first, then relative \
                 to the configuration file's directory.",
            ),
        ],
    );
    entries(
        &mut extra,
        "FILES",
        &[
            (
                DEFAULT_CONFIG,
                "The configuration: the default of --config for check, run, peer-config and \
                 show.",
            ),
            (
                ixgw::config::DEFAULT_ADMIN_SOCKET,
                "The admin socket (metrics.admin_socket) ixgw show asks; the unit's \
                 RuntimeDirectory= makes /run/ixgw.",
            ),
            (
                "/etc/ixgw/keys/",
                "Private and pre-shared keys (root, 0700). The systemd unit hands each file \
                 NAME to the service as the credential keys_NAME; write \
                 private_key_file: keys/NAME in the configuration (found as keys_NAME in \
                 the service, as /etc/ixgw/keys/NAME outside it).",
            ),
            (
                "/usr/lib/systemd/system/ixgw.service",
                "The hardened systemd unit; systemctl reload ixgw checks the file, then \
                 sends SIGHUP.",
            ),
            (
                "/var/log/ixgw/",
                "The audit trail's file, when the configuration names one there.",
            ),
            (
                "/var/lib/ixgw/usage/",
                "Usage records for cost sharing (usage.dir), one file of JSON lines per UTC \
                 day, which ixgw usage sums for a period.",
            ),
            (
                "/usr/share/doc/ixgw/",
                "README.md (the reference of every configuration key and metric), example \
                 configurations, Prometheus alert rules and a Grafana dashboard.",
            ),
        ],
    );
    entries(
        &mut extra,
        "SIGNALS",
        &[
            (
                "SIGHUP",
                "ixgw run reads, validates and switches to the configuration file again; a \
                 rejected file keeps the running one. The audit file is reopened.",
            ),
            ("SIGTERM, SIGINT", "ixgw run drains and exits 0."),
        ],
    );
    extra.control("SH", ["SEE ALSO"]).text([roman(
        "ixgw-check(1), ixgw-run(1), ixgw-peer-config(1), ixgw-ca(1), systemd.exec(5), wg(8), \
         swanctl.conf(5)",
    )]);
    extra.to_writer(&mut top)?;
    let mut pages = vec![(man.get_filename(), top)];
    subcommand_pages(&cmd, &mut pages)?;
    Ok(pages)
}

/// `ixgw usage`: the report of a period.
fn usage(
    config: Option<PathBuf>,
    dir: Option<PathBuf>,
    from: &str,
    to: &str,
    by: UsageBy,
    format: UsageFormat,
) -> anyhow::Result<ExitCode> {
    use ixgw::usage;
    let period = usage::Period::parse(from, to)?;
    let dir = match dir {
        Some(d) => d,
        None => {
            // Only the directory is read from the file: no key or CA file is opened.
            let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            let paths = match ixgw::config::operator_paths(&path) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            match paths.usage_dir {
                Some(d) => d,
                None => anyhow::bail!(
                    "{}: no `usage:` section, so the daemon writes no usage records",
                    path.display()
                ),
            }
        }
    };
    let report = usage::read_dir(&dir, period, unix_now() as i64)?;
    let by = match by {
        UsageBy::Tenant => usage::By::Tenant,
        UsageBy::Facility => usage::By::Facility,
    };
    match format {
        UsageFormat::Csv => {
            print!("{}", usage::to_csv(&report, by));
            eprint!("{}", usage::coverage_text(&report));
        }
        UsageFormat::Json => print!("{}", usage::to_json(&report, by)),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_ca(command: CaCommand, now: SystemTime) -> anyhow::Result<String> {
    let mut rng = ixgw::crypto::SystemRandom::new();
    Ok(match command {
        CaCommand::Init {
            dir,
            name,
            org,
            parent,
            days,
            bounds,
            key_type,
            next_update,
        } => {
            let req = ca::CaRequest {
                name,
                org,
                validity: ca::Validity::new(now, days, bounds.not_before, bounds.not_after)?,
                key_type,
            };
            store::init(&dir, &req, parent.as_deref(), next_update, now, &mut rng)?.to_string()
        }
        CaCommand::Issue {
            dir,
            facility,
            name,
            wireguard_key,
            dns,
            email,
            days,
            bounds,
            key_type,
            out,
        } => {
            let req = ca::LeafRequest {
                facility,
                name,
                wireguard_keys: wireguard_key,
                dns,
                email,
                validity: ca::Validity::new(now, days, bounds.not_before, bounds.not_after)?,
                key_type,
            };
            store::issue(&dir, &req, &out, &mut rng)?.to_string()
        }
        CaCommand::Revoke {
            dir,
            cert,
            reason,
            next_update,
        } => store::revoke(&dir, &cert, reason, next_update, now)?.to_string(),
        CaCommand::Crl {
            dir,
            next_update,
            this_update,
        } => store::crl(&dir, this_update.unwrap_or(now), next_update)?.to_string(),
    })
}

/// `ixgw check`: validation, the preflight the daemon does, and warnings.
fn check(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Config::load(config)
        .map_err(|e| e.to_string())
        .and_then(|c| match ixgw::runtime::preflight(&c) {
            Ok(()) => Ok(c),
            Err(e) => Err(format!("{}: {e}", config.display())),
        }) {
        Ok(c) => {
            for w in &c.warnings {
                eprintln!("{w}");
            }
            // What the daemon would start with: each certificate judged now.
            for f in ixgw::runtime::facility_report(&c, unix_now()) {
                use ixgw::facility::FacilityState as S;
                if matches!(f.state, S::Valid | S::NotRequired | S::NotPresented) {
                    continue;
                }
                eprintln!(
                    "{}: facilities: warning: facility {} ({}, tenant {}) is {}: {}",
                    config.display(),
                    f.code,
                    f.name,
                    f.tenant,
                    f.state,
                    f.detail
                );
            }
            let peers: usize = c
                .tenants
                .iter()
                .flat_map(|t| &t.attachments)
                .map(|a| match &a.kind {
                    ixgw::config::AttachmentKind::WireGuard(wg) => wg.peers.len(),
                    ixgw::config::AttachmentKind::Ipsec(ipsec) => ipsec.peers.len(),
                    ixgw::config::AttachmentKind::Tls(tls) => tls.peers.len(),
                    ixgw::config::AttachmentKind::Plain(_)
                    | ixgw::config::AttachmentKind::Ethernet(_) => 0,
                })
                .sum();
            // Agreements that grant nothing right now (validation warned of those lacking
            // an approval).
            let now = unix_now();
            for a in c
                .agreements
                .iter()
                .filter(|a| a.approved() && !a.in_force_at(now))
            {
                eprintln!(
                    "{}: agreements: warning: agreement `{}` is not in force now (valid {} .. {})",
                    config.display(),
                    a.name,
                    a.valid_from
                        .map(ixgw::facility::format_unix)
                        .unwrap_or_else(|| "-".into()),
                    a.valid_until
                        .map(ixgw::facility::format_unix)
                        .unwrap_or_else(|| "-".into()),
                );
            }
            println!(
                "{}: ok ({} tenants, {} peers, {} services, {} policies, {} agreements)",
                config.display(),
                c.tenants.len(),
                peers,
                c.services.len(),
                c.policies.len(),
                c.agreements.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page<'a>(pages: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
        let (_, page) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no page {name}"));
        std::str::from_utf8(page).unwrap()
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn man_pages_cover_the_visible_subcommands_and_the_default_file() {
        let pages = man_pages().unwrap();
        assert_eq!(pages[0].0, "ixgw.1");
        let top = page(&pages, "ixgw.1");
        assert!(top.contains(".TH ixgw 1"), "{top}");
        assert!(top.contains("ixgw\\-check(1)"), "{top}");
        assert!(top.contains("/etc/ixgw/ixgw.yaml"), "{top}");
        assert!(top.contains("CREDENTIALS_DIRECTORY"), "{top}");
        assert!(!top.contains("completions"), "{top}");
        let check = page(&pages, "ixgw-check.1");
        assert!(check.contains("/etc/ixgw/ixgw.yaml"), "{check}");
        for name in [
            "ixgw-run.1",
            "ixgw-peer-config.1",
            "ixgw-ca.1",
            "ixgw-ca-init.1",
        ] {
            page(&pages, name);
        }
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for hidden in ["ixgw-man.1", "ixgw-completions.1", "ixgw-help.1"] {
            assert!(!names.contains(&hidden), "{names:?}");
        }
    }

    fn completion(shell: clap_complete::Shell) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ixgw", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn completions_name_the_subcommands() {
        let bash = completion(clap_complete::Shell::Bash);
        assert!(bash.contains("complete -F _ixgw"), "{bash}");
        for sub in ["check", "run", "peer-config", "facility", "ca", "genkey"] {
            assert!(bash.contains(sub), "bash: {sub}");
        }
        let zsh = completion(clap_complete::Shell::Zsh);
        assert!(zsh.starts_with("#compdef ixgw"), "{zsh}");
        assert!(zsh.contains("peer-config"));
        let fish = completion(clap_complete::Shell::Fish);
        assert!(fish.contains("complete -c ixgw"), "{fish}");
        assert!(fish.contains("peer-config"));
    }
}
