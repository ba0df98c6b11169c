//! `treem-nats-auth`: makes treem's NATS identities and the nats-server
//! accounts that confine each of them. See `treem_auth::nats::cli` and
//! SECURITY.md ("NATS identities and TLS").

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let args = treem_auth::nats::cli::Args::parse();
    treem_auth::nats::cli::run(&args, &mut std::io::stdout())?;
    Ok(())
}
