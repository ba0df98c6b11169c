//! `treem-province`: the province node's command line. Parses flags, sets up
//! logs, and calls the library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use treem_province::{Config, WatchOptions};

#[derive(Parser)]
#[command(name = "treem-province", version, about = "treem province roll-up (Sở LĐ-TB&XH)")]
struct Cli {
    /// TOML configuration; every field can be overridden by TREEM_PROVINCE_<FIELD>.
    #[arg(long, short, global = true, env = "TREEM_PROVINCE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node: consume town snapshots, serve the read API, until SIGTERM or ctrl-c.
    Serve,
    /// Load and validate the configuration, print it, and exit.
    CheckConfig,
    /// Print town snapshots live as they arrive on the projections stream.
    Watch {
        /// NATS to watch, instead of nats_url from the configuration.
        #[arg(long)]
        nats_url: Option<String>,
        /// Indicator codes to show, comma separated (default: 1,4a,9,13,21).
        #[arg(long, value_delimiter = ',')]
        codes: Vec<String>,
    },
    /// Create, list and revoke the API's tokens, in <data_dir>/auth/tokens.json
    /// (works whether or not the node runs; a running node sees changes at
    /// its next request).
    Token {
        #[command(subcommand)]
        command: treem_auth::cli::TokenCommand,
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
    let mut config = Config::load(cli.config.as_deref()).context("loading the configuration")?;
    match cli.command {
        Command::CheckConfig => {
            config.validate().context("checking the configuration")?;
            println!("configuration is valid: {config:#?}");
        }
        Command::Serve => {
            let node = treem_province::start(config).await.context("starting the province node")?;
            wait_for_signal().await;
            tracing::info!("stopping");
            node.shutdown().await;
        }
        Command::Watch { nats_url, codes } => {
            if let Some(url) = nats_url {
                config.nats_url = url;
            }
            config.validate().context("checking the configuration")?;
            let options = WatchOptions { codes };
            treem_province::watch_with(&config, &options, std::io::stdout(), wait_for_signal()).await?;
        }
        Command::Token { command } => treem_auth::cli::run(&config.data_dir, command, &mut std::io::stdout(), &mut std::io::stderr())?,
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
