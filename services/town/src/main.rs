//! `treem-town`: the town aggregator binary. Thin: flags, logs, then the library.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

mod parked_cli;
mod provenance_cli;

#[derive(Parser)]
#[command(
    name = "treem-town",
    version,
    about = "treem town aggregator (thị xã): applies ward events, serves projections, forwards to the province"
)]
struct Cli {
    /// TOML config file (see deploy/config/town.toml); TREEM_TOWN_* variables override it.
    #[arg(long, short, global = true, env = "TREEM_TOWN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the aggregator until SIGTERM or Ctrl-C.
    Serve,
    /// Check the configuration and exit.
    CheckConfig,
    /// Replay the ward stream into a fresh store at DIR and compare it with the
    /// live store (the town must be stopped, since sled allows one process).
    Rebuild {
        /// Where to build the new store (must not exist).
        #[arg(long)]
        into: PathBuf,
    },
    /// List, show and replay the messages the RUNNING town parked (dead
    /// letters), through its HTTP API.
    Parked {
        /// The town's HTTP address, e.g. http://127.0.0.1:7420 (default: the
        /// address the town wrote to <data_dir>/http.addr).
        #[arg(long, global = true)]
        url: Option<String>,
        /// An admin token (`treem-town token create --role admin`); prefer
        /// the environment variable, which `ps` does not show.
        #[arg(long, global = true, env = "TREEM_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(subcommand)]
        command: parked_cli::ParkedCommand,
    },
    /// Create, list and revoke the API's tokens, in <data_dir>/auth/tokens.json
    /// (works whether or not the town runs; a running town sees changes at
    /// its next request).
    Token {
        #[command(subcommand)]
        command: treem_auth::cli::TokenCommand,
    },
    /// Register, list and remove the wards' public signing keys, in
    /// ward_keys_file (works whether or not the town runs; a running town
    /// uses a change from its next batch).
    Keys {
        #[command(subcommand)]
        command: provenance_cli::KeysCommand,
    },
}

#[global_allocator]
static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    treem_heap::configure();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let config = treem_town::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::CheckConfig => {
            config.validate()?;
            println!("configuration is valid: town {}/{} data_dir {}", config.province, config.town, config.data_dir.display());
        }
        Command::Serve => {
            let node = treem_town::start(config).await?;
            wait_for_signal().await;
            node.shutdown().await;
        }
        Command::Parked { url, token, command } => parked_cli::run(&config, url, token, command).await?,
        Command::Keys { command } => provenance_cli::run(&config, command, &mut std::io::stdin().lock(), &mut std::io::stdout())?,
        Command::Token { command } => treem_auth::cli::run(&config.data_dir, command, &mut std::io::stdout(), &mut std::io::stderr())?,
        Command::Rebuild { into } => {
            if into.exists() {
                bail!("{} already exists; give a new directory for the rebuilt store", into.display());
            }
            let hierarchy = config.validate()?;
            let town = hierarchy.town(&config.province, &config.town)?;
            let wards: Vec<String> = town.wards.iter().map(|w| w.code.clone()).collect();
            let ctx = treem_town::fold::Ctx::from_config(&config)?;
            let client = config
                .nats_auth()
                .apply(async_nats::ConnectOptions::new())?
                .connect(treem_town::config::nats_urls(&config.nats_url))
                .await
                .context("connecting to NATS")?;
            let js = async_nats::jetstream::new(client);
            let (rebuilt, read) = treem_town::rebuild::rebuild_into(&js, &config, &ctx, &into).await?;
            println!("rebuilt {} from {read} messages", into.display());
            let live = treem_town::store::TownStore::open(&config.data_dir.join("store"))?;
            let a = treem_town::rebuild::views(&live, &ctx, &wards);
            let b = treem_town::rebuild::views(&rebuilt, &ctx, &wards);
            if a == b {
                println!("rebuilt projection equals the live one");
            } else {
                bail!(
                    "rebuilt projection DIFFERS from the live one (has the live town applied every message? is it at the same stream position?)"
                );
            }
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
