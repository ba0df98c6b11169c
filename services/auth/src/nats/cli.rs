//! `treem-nats-auth`: the operator's command that makes the NATS identities
//! of a hierarchy and the server configuration that lets each of them do
//! only its job (see [`super::plan`]).
//!
//! ```text
//! treem-nats-auth --out /etc/treem/nats generate [--hierarchy FILE]
//! treem-nats-auth --out /etc/treem/nats list
//! treem-nats-auth --out /etc/treem/nats rotate IDENTITY          # add a second key
//! treem-nats-auth --out /etc/treem/nats finish-rotation IDENTITY # drop the old key
//! treem-nats-auth --out /etc/treem/nats revoke IDENTITY          # replace every key now
//! ```
//!
//! Every command rewrites `<out>/accounts.conf` (included by
//! `deploy/nats/secure/treem-secure.conf`) from the hierarchy and the seed
//! files, and says to reload the server (`nats-server --signal reload`, or
//! SIGHUP): nats-server applies the new users to new connections and drops
//! connected clients whose key is gone.
//!
//! The output on stdout names identities, public keys and seed *files*,
//! never a seed.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use treem_proto::hierarchy::Hierarchy;

use super::keys::{KeyDir, KeyError};
use super::plan::{Plan, PlanError};

/// The file the server configuration includes.
pub const ACCOUNTS_FILE: &str = "accounts.conf";

#[derive(Debug, Parser)]
#[command(
    name = "treem-nats-auth",
    version,
    about = "Make treem's NATS identities (nkeys) and the nats-server accounts and permissions for them"
)]
pub struct Args {
    /// Directory of the output: `accounts.conf` and `seeds/` (keep it private; never commit it).
    #[arg(long, short = 'o', env = "TREEM_NATS_AUTH_OUT")]
    pub out: PathBuf,
    /// Hierarchy JSON to use instead of the shipped one.
    #[arg(long, global = true)]
    pub hierarchy: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a key for every identity of the hierarchy that has none, and write accounts.conf.
    Generate,
    /// Every identity, its public key(s) and seed file.
    List,
    /// Add a second key to IDENTITY; both work until `finish-rotation`.
    Rotate { identity: String },
    /// Make the key added by `rotate` the only one.
    FinishRotation { identity: String },
    /// Replace every key of IDENTITY by a new one (a lost or stolen seed).
    Revoke { identity: String },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read hierarchy file {path}: {detail}")]
    Hierarchy { path: PathBuf, detail: String },
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("{0:?} is not an identity of this hierarchy; `treem-nats-auth list` shows them")]
    UnknownIdentity(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Runs one command; what it did goes to `out`.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<(), CliError> {
    let hierarchy = match &args.hierarchy {
        None => Hierarchy::shipped(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::Hierarchy { path: path.clone(), detail: e.to_string() })?;
            Hierarchy::parse(&text).map_err(|e| CliError::Hierarchy { path: path.clone(), detail: e.to_string() })?
        }
    };
    let plan = Plan::from_hierarchy(&hierarchy)?;
    std::fs::create_dir_all(&args.out).map_err(|source| CliError::Write { path: args.out.clone(), source })?;
    let keys = KeyDir::open(&args.out)?;
    let known = |id: &str| plan.identity(id).map(|_| ()).ok_or_else(|| CliError::UnknownIdentity(id.into()));
    let say = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "{line}");
    };
    match &args.command {
        Command::Generate => {
            for id in plan.identities() {
                if keys.ensure(&id.name)? {
                    say(out, format!("new key     {:<24} {}", id.name, keys.seed_file(&id.name).display()));
                }
            }
            for stale in keys.identities()?.into_iter().filter(|n| plan.identity(n).is_none()) {
                say(out, format!("not in the hierarchy, left out of {ACCOUNTS_FILE}: {stale} (delete its seed files when it is retired)"));
            }
        }
        Command::List => {}
        Command::Rotate { identity } => {
            known(identity)?;
            let next = keys.begin_rotation(identity)?;
            say(out, format!("{identity}: second key in {}; both keys work after the reload", next.display()));
            say(out, format!("then give that file to the service (nats_nkey_seed_file), restart it, and run `finish-rotation {identity}`"));
        }
        Command::FinishRotation { identity } => {
            known(identity)?;
            let current = keys.finish_rotation(identity)?;
            say(out, format!("{identity}: the key in {} is now the only one; the old key stops working at the reload", current.display()));
        }
        Command::Revoke { identity } => {
            known(identity)?;
            let current = keys.revoke(identity)?;
            say(out, format!("{identity}: every old key revoked; new key in {}", current.display()));
            say(out, "after the reload the old key is refused and its connections are closed; give the new file to the service".into());
        }
    }
    let text = render(&plan, &keys)?;
    let path = write_accounts(&args.out, &text)?;
    for id in plan.identities() {
        let k = keys.keys(&id.name)?;
        let keys_text = k.public_keys().join(" + ");
        say(out, format!("{:<24} {:<58} {}", id.name, keys_text, keys.seed_file(&id.name).display()));
    }
    say(out, format!("wrote {}; reload the server: nats-server --signal reload (or kill -HUP <pid>)", path.display()));
    Ok(())
}

/// The whole `accounts.conf` text.
pub fn render(plan: &Plan, keys: &KeyDir) -> Result<String, CliError> {
    let mut public = std::collections::HashMap::new();
    for id in plan.identities() {
        public.insert(id.name.clone(), keys.keys(&id.name)?.public_keys());
    }
    let header = "# Generated by `treem-nats-auth` from the hierarchy and the seed files next to it.\n\
                  # Do not edit: run the command again. It holds public keys only (no secret), and\n\
                  # is included by deploy/nats/secure/treem-secure.conf. See SECURITY.md.\n\n";
    Ok(format!("{header}{}", plan.render(|id| public.get(id).cloned().unwrap_or_default())))
}

/// Writes `<out>/accounts.conf` atomically (tmp + fsync + rename).
fn write_accounts(out: &Path, text: &str) -> Result<PathBuf, CliError> {
    let path = out.join(ACCOUNTS_FILE);
    let tmp = out.join(format!("{ACCOUNTS_FILE}.tmp"));
    let err = |source| CliError::Write { path: path.clone(), source };
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(out: &Path, command: Command) -> Args {
        Args { out: out.to_path_buf(), hierarchy: None, command }
    }

    #[test]
    fn generate_is_idempotent_and_prints_no_seed() {
        let dir = tempfile::tempdir().unwrap();
        let mut printed = Vec::new();
        run(&args(dir.path(), Command::Generate), &mut printed).unwrap();
        let first = std::fs::read_to_string(dir.path().join(ACCOUNTS_FILE)).unwrap();
        assert_eq!(first.matches("nkey:").count(), 8, "a province, a town, six wards");
        let printed = String::from_utf8(printed).unwrap();
        assert!(printed.contains("new key"), "{printed}");
        let mut again = Vec::new();
        run(&args(dir.path(), Command::Generate), &mut again).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(ACCOUNTS_FILE)).unwrap(), first, "keys are kept");
        assert!(!String::from_utf8(again).unwrap().contains("new key"));
        for seed in std::fs::read_dir(dir.path().join("seeds")).unwrap() {
            let seed = std::fs::read_to_string(seed.unwrap().path()).unwrap();
            assert!(!first.contains(seed.trim()), "the config holds no seed");
            assert!(!printed.contains(seed.trim()), "the output shows no seed");
        }
    }

    #[test]
    fn rotation_lists_two_keys_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        run(&args(dir.path(), Command::Generate), &mut Vec::new()).unwrap();
        let id = "town-70-690".to_string();
        run(&args(dir.path(), Command::Rotate { identity: id.clone() }), &mut Vec::new()).unwrap();
        let during = std::fs::read_to_string(dir.path().join(ACCOUNTS_FILE)).unwrap();
        assert_eq!(during.matches("nkey:").count(), 9);
        run(&args(dir.path(), Command::FinishRotation { identity: id.clone() }), &mut Vec::new()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(ACCOUNTS_FILE)).unwrap().matches("nkey:").count(), 8);
        let e = run(&args(dir.path(), Command::Revoke { identity: "ward-70-690-99999".into() }), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("not an identity"), "{e}");
    }
}
