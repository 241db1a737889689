//! The `ixgw` command line. Everything it does is a call into the library.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ixgw::config::Config;
use ixgw::tunnel::wireguard::keys;

#[derive(Parser)]
#[command(
    name = "ixgw",
    version,
    about = "IX gateway for Japan's medical networks: WireGuard termination, twice-NAT, policy, metrics"
)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info`, `ixgw=debug`; else RUST_LOG; else
    /// `info` (`warn` for the demo, whose own output is the table).
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration file: exit 0, or print FILE:LINE: KEY: problem and exit 1.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway in the foreground. SIGHUP reloads the file, SIGTERM drains and exits.
    Run {
        #[arg(long, short)]
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
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin, print its public key, like `wg pubkey`.
    Pubkey,
    /// Print the facility side's configuration of a peer: wg-quick for a WireGuard peer,
    /// swanctl.conf for an IPsec peer.
    PeerConfig {
        #[arg(long, short)]
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ixgw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { config } => match Config::load(&config)
            .map_err(|e| e.to_string())
            .and_then(|c| match ixgw::runtime::preflight(&c) {
                Ok(()) => Ok(c),
                Err(e) => Err(format!("{}: {e}", config.display())),
            }) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("{w}");
                }
                let peers: usize = c
                    .tenants
                    .iter()
                    .flat_map(|t| &t.attachments)
                    .map(|a| match &a.kind {
                        ixgw::config::AttachmentKind::WireGuard(wg) => wg.peers.len(),
                        ixgw::config::AttachmentKind::Ipsec(ipsec) => ipsec.peers.len(),
                        ixgw::config::AttachmentKind::Plain(_) => 0,
                    })
                    .sum();
                println!(
                    "{}: ok ({} tenants, {} peers, {} services, {} policies)",
                    config.display(),
                    c.tenants.len(),
                    peers,
                    c.services.len(),
                    c.policies.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
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
    }
}
