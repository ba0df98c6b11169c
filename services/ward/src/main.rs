//! `treem-ward`: the ward node's binary. Parses flags, sets up logging and
//! hands over to [`treem_ward::cli::run`]; all behaviour lives in the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;

#[tokio::main]
async fn main() {
    treem_heap::configure();
    let cli = treem_ward::cli::Cli::parse();
    // A serving node logs at info; one-shot commands only warn, so their
    // own output stays readable.
    let default = if matches!(cli.command, treem_ward::cli::Command::Serve) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = treem_ward::cli::run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
