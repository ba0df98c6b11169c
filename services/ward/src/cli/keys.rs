//! `treem-ward keys init|show|rotate`: the ward's signing key (provenance;
//! how an operator provisions and rotates it is in SECURITY.md).
//!
//! `show --public` prints one JSON object per key, exactly what
//! `treem-town keys add` reads; the secret is never printed.

use anyhow::{Context, bail};
use clap::Subcommand;
use treem_proto::catalogue::Catalogue;

use crate::config::Config;
use crate::keys::WardKeys;
use crate::log::{LogError, WardLog};

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCmd {
    /// Make the ward's signing key if it has none yet (the node also makes
    /// one at its first start) and print what the town must register.
    Init,
    /// Show the ward's keys. With --public: one JSON line per key, for
    /// `treem-town keys add` at the town.
    Show {
        #[arg(long)]
        public: bool,
    },
    /// Replace the signing key by a new one that signs from the next event
    /// on, erasing the old secret. Stop `treem-ward serve` first.
    Rotate,
}

pub fn run(config: &Config, cmd: KeysCmd) -> anyhow::Result<()> {
    let ward = config.ward_path();
    match cmd {
        KeysCmd::Init => {
            let keys = match WardKeys::load(&config.data_dir, &ward)? {
                Some(keys) => {
                    println!("ward {} already has a signing key: {} (signs from seq {})", ward.ward, keys.key_id(), keys.valid_from_seq());
                    keys
                }
                None => match WardLog::open(&config.data_dir, ward.clone(), Catalogue::shipped()) {
                    Ok(log) => {
                        drop(log);
                        let keys = WardKeys::load(&config.data_dir, &ward)?.context("the key was just made")?;
                        println!(
                            "made the signing key of ward {}: {} (signs from seq {})",
                            ward.ward,
                            keys.key_id(),
                            keys.valid_from_seq()
                        );
                        keys
                    }
                    // A node started meanwhile: it made the key.
                    Err(LogError::Locked { .. }) => WardKeys::load(&config.data_dir, &ward)?.context("the running node has no key file")?,
                    Err(e) => return Err(e.into()),
                },
            };
            print_next_step(&keys);
        }
        KeysCmd::Show { public } => {
            let Some(keys) = WardKeys::load(&config.data_dir, &ward)? else {
                bail!("ward {} has no signing key yet in {}; run `treem-ward keys init`", ward.ward, config.data_dir.display());
            };
            if public {
                for reg in keys.registrations() {
                    println!("{}", serde_json::to_string(&reg).expect("a registration serialises"));
                }
            } else {
                println!("ward {}.{}.{}", ward.province, ward.town, ward.ward);
                println!(
                    "signing key:  {} (signs from seq {}, made {})",
                    keys.key_id(),
                    keys.valid_from_seq(),
                    keys.created_at().to_rfc3339()
                );
                for r in keys.retired() {
                    println!(
                        "retired key:  {} (signed seqs {}–{}, retired {}; its secret is erased)",
                        r.key_id,
                        r.valid_from_seq,
                        r.until_seq,
                        r.retired_at.to_rfc3339()
                    );
                }
                println!("key file:     {} (keep it private; back it up with the ward log)", keys.file_path().display());
                println!("for the town: treem-ward keys show --public");
            }
        }
        KeysCmd::Rotate => {
            let log = match WardLog::open(&config.data_dir, ward.clone(), Catalogue::shipped()) {
                Ok(log) => log,
                Err(LogError::Locked { .. }) => bail!(
                    "the ward log is in use by `treem-ward serve`; stop the node first, so that the new key starts between two events, then rotate and start it again"
                ),
                Err(e) => return Err(e.into()),
            };
            let next = log.last_seq() + 1;
            let mut keys = WardKeys::load(&config.data_dir, &ward)?.context("opening the log made a key")?;
            let old = keys.key_id().to_owned();
            keys.rotate(next)?;
            drop(log);
            println!(
                "rotated the signing key of ward {}: {old} → {} (signs from seq {next}); the old secret is erased",
                ward.ward,
                keys.key_id()
            );
            print_next_step(&keys);
        }
    }
    Ok(())
}

fn print_next_step(keys: &WardKeys) {
    println!("register it at the town (events it signs are refused until then), e.g.:");
    println!("  treem-ward keys show --public | treem-town keys add");
    println!("the lines to register:");
    for reg in keys.registrations() {
        println!("{}", serde_json::to_string(&reg).expect("a registration serialises"));
    }
}
