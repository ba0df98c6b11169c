//! `token create | list | revoke`: the subcommand `treem-town token …` and
//! `treem-province token …` share. It works on the service's data dir
//! directly (`<data_dir>/auth/tokens.json`), whether or not the service
//! runs: the store is a file that writers replace atomically under a lock
//! and that the running service re-reads when it changes (see
//! [`crate::store`]). So it must run as a user who may write the data dir
//! — the service's own — which is the point: whoever can mint tokens can
//! already read the data.
//!
//! `create` prints the token alone on stdout (so scripts can capture it)
//! and the explanation on stderr. The token is never shown again.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use crate::role::Role;
use crate::store::{StoreError, TokenStore};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it ONCE (only its hash is kept).
    Create {
        /// Who will hold it: a person or a dashboard (shown in lists and the audit log).
        #[arg(long)]
        name: String,
        /// viewer: indicators and sync; officer: also case summaries (audited); admin: also parked messages and replay.
        #[arg(long, value_enum)]
        role: Role,
    },
    /// List tokens (id, role, status, name); never their secrets.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it is refused from the next request on.
    Revoke {
        /// The token's id (the hex part after `treem_`; see `token list`).
        id: String,
    },
}

/// Runs `command` on the token store of `data_dir`.
pub fn run(data_dir: &Path, command: TokenCommand, out: &mut impl Write, err: &mut impl Write) -> Result<(), CliError> {
    let store = TokenStore::open(&crate::auth_dir(data_dir))?;
    match command {
        TokenCommand::Create { name, role } => {
            let (token, record) = store.create(&name, role)?;
            writeln!(out, "{}", token.expose())?;
            writeln!(
                err,
                "created token {} for {:?} with role {}; it is shown only this once, so keep it now (a password manager).\n\
                 Send it as: Authorization: Bearer <token>. Revoke it with: token revoke {}",
                record.id, record.name, record.role, record.id
            )?;
        }
        TokenCommand::List { json } => {
            let tokens = store.list()?;
            if json {
                let public: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({"id": t.id, "name": t.name, "role": t.role, "created_at": t.created_at, "revoked_at": t.revoked_at})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&public).expect("JSON"))?;
                return Ok(());
            }
            if tokens.is_empty() {
                writeln!(out, "no tokens; create one with: token create --name NAME --role admin")?;
                return Ok(());
            }
            writeln!(out, "{:<16}  {:<7}  {:<7}  {:<20}  NAME", "ID", "ROLE", "STATUS", "CREATED")?;
            for t in &tokens {
                let status = if t.is_revoked() { "revoked" } else { "active" };
                writeln!(out, "{:<16}  {:<7}  {:<7}  {:<20}  {}", t.id, t.role, status, t.created_at.format("%Y-%m-%d %H:%M:%S"), t.name)?;
            }
        }
        TokenCommand::Revoke { id } => {
            let record = store.revoke(id.trim())?;
            writeln!(
                out,
                "revoked token {} ({:?}, {}) at {}",
                record.id,
                record.name,
                record.role,
                record.revoked_at.expect("revoked").format("%Y-%m-%d %H:%M:%S UTC")
            )?;
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;

    #[test]
    fn create_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run(dir.path(), TokenCommand::Create { name: "Lan".into(), role: Role::Officer }, &mut out, &mut err).unwrap();
        let text = String::from_utf8(out).unwrap();
        let token = Token::parse(text.trim_end()).expect("stdout is the token alone");
        assert!(String::from_utf8(err).unwrap().contains("only this once"));

        let mut out = Vec::new();
        run(dir.path(), TokenCommand::List { json: false }, &mut out, &mut Vec::new()).unwrap();
        let list = String::from_utf8(out).unwrap();
        assert!(list.contains(token.id()) && list.contains("officer") && list.contains("active"), "{list}");
        assert!(!list.contains(&text.trim_end()[23..]), "a list never shows a secret");

        run(dir.path(), TokenCommand::Revoke { id: token.id().into() }, &mut Vec::new(), &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        run(dir.path(), TokenCommand::List { json: true }, &mut out, &mut Vec::new()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(json[0]["revoked_at"].is_string(), "{json}");
        assert!(json[0].get("sha256").is_none(), "{json}");
        let e = run(dir.path(), TokenCommand::Revoke { id: "nope".into() }, &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("token list"), "{e}");
    }
}
