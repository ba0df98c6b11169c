//! The audit log (nhật ký truy cập): `<data_dir>/auth/audit.jsonl`, one
//! JSON object per line for every request to a route that serves
//! case-level data — the reads that were served and the attempts that were
//! refused. Append-only: the service opens it with `O_APPEND` and never
//! rewrites or truncates it; rotation and archiving are the operator's
//! (copy it away, then truncate it while the service is stopped).
//!
//! A line:
//!
//! ```json
//! {"at":"2025-05-01T08:00:00.123Z","outcome":"served","status":200,
//!  "token_id":"1f0c…","token_name":"Lan, town office","role":"officer",
//!  "method":"GET","path":"/api/v1/cases","query":"year=2025&ward=25320"}
//! ```
//!
//! `outcome` is `served` (the handler ran; `status` is its answer, 2xx or
//! not), `unauthenticated` (401; `reason` says why — missing, malformed,
//! unknown or revoked — and `token_id` is the id the caller presented, if
//! the token parsed) or `forbidden` (403). No line ever holds a token's
//! secret or any of the data served.
//!
//! Each line is written with one `write` call and made durable
//! (`fdatasync`) before the answer leaves; a crash can lose at most the
//! line of a request that was never answered. Writers in one process are
//! serialised by a mutex, so lines never interleave.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::role::Role;

pub const FILE: &str = "audit.jsonl";
/// Longest query string recorded, in bytes; longer ones are cut (and marked).
const QUERY_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "cannot {action} the audit log {path}: {source} (is the disk full or read-only? case data is not served until it can be recorded)"
    )]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Served,
    Unauthenticated,
    Forbidden,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub outcome: Outcome,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    pub role: Option<Role>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
}

impl AuditEntry {
    /// The query string as recorded: anything shaped like a token
    /// (`treem_` and what follows it) replaced by `treem_<redacted>` — a
    /// caller who puts a token in the URL must not get it written to the
    /// log — and cut at a character boundary past [`QUERY_MAX`] bytes.
    pub fn query_of(query: Option<&str>) -> Option<String> {
        query.map(|q| {
            let q = redact_tokens(q);
            if q.len() <= QUERY_MAX {
                return q;
            }
            let mut end = QUERY_MAX;
            while !q.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…(cut)", &q[..end])
        })
    }
}

fn redact_tokens(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    let mut rest = q;
    while let Some(at) = rest.find(crate::token::PREFIX).filter(|&at| rest[at + crate::token::PREFIX.len()..].starts_with('_')) {
        out.push_str(&rest[..at]);
        out.push_str("treem_<redacted>");
        let after = &rest[at + crate::token::PREFIX.len() + 1..];
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '%')).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The open audit log; clones share the file.
#[derive(Clone)]
pub struct AuditLog {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl AuditLog {
    /// Opens (creating, mode 0600) `<dir>/audit.jsonl` for appending.
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        let path = dir.join(FILE);
        let io = |action, source| AuditError::Io { action, path: path.clone(), source };
        crate::store::create_private_dir(dir).map_err(|e| io("create the directory of", std::io::Error::other(e.to_string())))?;
        let existed = path.exists();
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(|e| io("open", e))?;
        if !existed {
            // The new file's directory entry must survive a crash too.
            crate::store::sync_dir(dir).map_err(|e| io("fsync the directory of", std::io::Error::other(e.to_string())))?;
        }
        Ok(AuditLog { path, file: Arc::new(Mutex::new(file)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` as one line and fsyncs it (blocking; call from
    /// `spawn_blocking` in async code, or use [`AuditLog::record`]).
    pub fn append(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(entry).expect("an audit entry serialises");
        line.push(b'\n');
        let io = |action, source| AuditError::Io { action, path: self.path.clone(), source };
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line).map_err(|e| io("append to", e))?;
        file.sync_data().map_err(|e| io("fsync", e))
    }

    /// [`AuditLog::append`] off the async runtime's threads.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let log = self.clone();
        match tokio::task::spawn_blocking(move || log.append(&entry)).await {
            Ok(result) => result,
            Err(e) => Err(AuditError::Io { action: "append to", path: self.path.clone(), source: std::io::Error::other(e.to_string()) }),
        }
    }

    /// Every line so far, parsed (for tests and the operator's tools).
    pub fn read_all(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io { action: "read", path: path.to_path_buf(), source })?;
        text.lines()
            .map(|l| {
                serde_json::from_str(l).map_err(|e| AuditError::Io {
                    action: "parse",
                    path: path.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u16) -> AuditEntry {
        AuditEntry {
            at: Utc::now(),
            outcome: Outcome::Served,
            status: 200,
            reason: None,
            token_id: Some(format!("{i:016x}")),
            token_name: Some("Lan".into()),
            role: Some(Role::Officer),
            method: "GET".into(),
            path: "/api/v1/cases".into(),
            query: Some(format!("year=2025&i={i}")),
        }
    }

    #[test]
    fn lines_are_appended_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&entry(1)).unwrap();
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(&entry(2)).unwrap();
        let all = AuditLog::read_all(log.path()).unwrap();
        assert_eq!(all.iter().map(|e| e.query.clone().unwrap()).collect::<Vec<_>>(), ["year=2025&i=1", "year=2025&i=2"]);
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(log.path()).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let threads: Vec<_> = (0..4u16)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || (0..25).for_each(|i| log.append(&entry(t * 100 + i)).unwrap()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(AuditLog::read_all(log.path()).unwrap().len(), 100);
    }

    #[test]
    fn long_queries_are_cut_on_a_character_boundary() {
        let q = "ả".repeat(QUERY_MAX);
        let cut = AuditEntry::query_of(Some(&q)).unwrap();
        assert!(cut.ends_with("…(cut)") && cut.len() <= QUERY_MAX + "…(cut)".len());
        assert_eq!(AuditEntry::query_of(Some("year=2025")).as_deref(), Some("year=2025"));
    }

    #[test]
    fn tokens_in_a_query_are_redacted() {
        let t = crate::token::Token::generate().unwrap().expose();
        let q = AuditEntry::query_of(Some(&format!("year=2025&access_token={t}&ward=25320&x=treem_&y=treemx"))).unwrap();
        assert_eq!(q, "year=2025&access_token=treem_<redacted>&ward=25320&x=treem_<redacted>&y=treemx");
    }
}
