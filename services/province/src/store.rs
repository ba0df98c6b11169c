//! The province's durable state: the latest snapshot of every town and year,
//! and the dead letters (messages parked because they could not be used).
//!
//! ## Key layout (sled 0.34, directory `<data_dir>/store`)
//!
//! | tree        | key                          | value |
//! | ----------- | ---------------------------- | ----- |
//! | `snapshots` | `<town>/<year>`, e.g. `690/2025` | [`TownSnapshot`] JSON, as the town published it |
//! | `parked`    | `<stream seq>` zero-padded to 20 digits (or `x<uuid v7>` when the message carried no stream sequence) | [`Parked`] JSON; removed if a later start accepts the message |
//! | `meta`      | `layout`                     | `"1"`, the version of this layout |
//!
//! ## Rules
//!
//! - A snapshot replaces the stored one for (town, year) only if its
//!   `version` is greater ([`Store::apply`]); the same or an older version is
//!   left alone. Re-delivery and re-ordering are therefore harmless, and the
//!   stored state is a pure function of the set of snapshots received.
//! - Writes become durable only at [`Store::sync`] (sled flush, then fsync,
//!   see [`crate::durable`]); the consumer acknowledges messages to JetStream
//!   only after that.
//!
//! ## Crash behaviour
//!
//! A crash before `sync` returns may lose the writes of the current batch,
//! but none of those messages was acknowledged, so JetStream redelivers them
//! and they are applied again with the same result. A crash after `sync` but
//! before the acks leads to redelivery of messages already stored: the version
//! rule ignores them (and a parked message is parked again under the same
//! key). Each single write is atomic in sled, so no snapshot is ever half
//! stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use treem_proto::projection::TownSnapshot;

use crate::durable::SyncFiles;

const LAYOUT: &[u8] = b"1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the province store at {path}: {source} (is another treem-province running on this data_dir?)")]
    Open { path: PathBuf, source: sled::Error },
    #[error("cannot prepare the province store at {path} for fsync: {source}")]
    OpenFiles { path: PathBuf, source: std::io::Error },
    #[error("store at {path} has layout {found:?}, this treem-province understands layout \"1\"; use a matching version or a new data_dir")]
    Layout { path: PathBuf, found: String },
    #[error("sled error in the province store: {0}")]
    Sled(#[from] sled::Error),
    #[error("fsync of the province store failed: {0}; data may not be on disk, check the disk")]
    Sync(std::io::Error),
    #[error("stored value under {key:?} in tree {tree} is corrupt: {detail}")]
    Corrupt { tree: &'static str, key: String, detail: String },
}

/// What [`Store::apply`] did with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// First snapshot for this town and year.
    New,
    /// Replaced the stored snapshot of an older version.
    Replaced { previous: u64 },
    /// The stored snapshot is this very version: a duplicate delivery.
    Duplicate,
    /// The stored snapshot is newer; this one arrived late and was ignored.
    Stale { held: u64 },
}

/// A message the province could not use, kept for an operator (dead letter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    /// Sequence of the message in the projections stream, to fetch it whole.
    pub stream_seq: Option<u64>,
    pub subject: String,
    /// The town the subject names, when it names one.
    pub town: Option<String>,
    pub reason: String,
    /// The start of the payload, as text (lossy), for a first look.
    pub payload_head: String,
    pub parked_at: DateTime<Utc>,
    /// Whether a configuration change may make it acceptable (an unknown
    /// town): re-examined from the stream at the next start.
    #[serde(default)]
    pub recheck: bool,
}

/// Longest payload excerpt kept in a [`Parked`] record.
pub const PAYLOAD_HEAD_BYTES: usize = 2048;

impl Parked {
    pub fn new(stream_seq: Option<u64>, subject: &str, town: Option<String>, reason: String, recheck: bool, payload: &[u8]) -> Parked {
        let head = &payload[..payload.len().min(PAYLOAD_HEAD_BYTES)];
        Parked {
            stream_seq,
            subject: subject.to_string(),
            town,
            reason,
            payload_head: String::from_utf8_lossy(head).into_owned(),
            parked_at: Utc::now(),
            recheck,
        }
    }
}

/// Handle on the store; cheap to clone (sled trees are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    snapshots: sled::Tree,
    parked: sled::Tree,
    files: std::sync::Arc<SyncFiles>,
}

fn snapshot_key(town: &str, year: u16) -> String {
    format!("{town}/{year}")
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::OpenFiles { path: dir.to_path_buf(), source })?;
        let db = open_sled(dir)?;
        let snapshots = db.open_tree("snapshots")?;
        let parked = db.open_tree("parked")?;
        let meta = db.open_tree("meta")?;
        match meta.get("layout")? {
            None => {
                meta.insert("layout", LAYOUT)?;
            }
            Some(v) if v.as_ref() == LAYOUT => {}
            Some(v) => {
                return Err(StoreError::Layout { path: dir.to_path_buf(), found: String::from_utf8_lossy(&v).into_owned() });
            }
        }
        db.flush()?;
        let files = SyncFiles::open(dir).map_err(|source| StoreError::OpenFiles { path: dir.to_path_buf(), source })?;
        Ok(Store { db, snapshots, parked, files: std::sync::Arc::new(files) })
    }

    /// Stores `snap` unless a snapshot of the same or a newer version is held
    /// for its town and year. Not durable until [`Store::sync`].
    pub fn apply(&self, snap: &TownSnapshot) -> Result<Applied, StoreError> {
        let key = snapshot_key(&snap.town, snap.year);
        let value = serde_json::to_vec(snap).expect("a snapshot always serialises");
        loop {
            let current = self.snapshots.get(&key)?;
            let outcome = match &current {
                None => Applied::New,
                Some(bytes) => {
                    let held = decode_snapshot(&key, bytes)?.version;
                    match held.cmp(&snap.version) {
                        std::cmp::Ordering::Less => Applied::Replaced { previous: held },
                        std::cmp::Ordering::Equal => return Ok(Applied::Duplicate),
                        std::cmp::Ordering::Greater => return Ok(Applied::Stale { held }),
                    }
                }
            };
            // Compare-and-swap: correct even if two writers ever raced.
            match self.snapshots.compare_and_swap(&key, current, Some(value.as_slice()))? {
                Ok(()) => return Ok(outcome),
                Err(_) => continue,
            }
        }
    }

    /// Records a dead letter. Parking the same stream message twice keeps one
    /// record. Not durable until [`Store::sync`].
    pub fn park(&self, parked: &Parked) -> Result<(), StoreError> {
        let key = match parked.stream_seq {
            Some(seq) => format!("{seq:020}"),
            None => format!("x{}", uuid::Uuid::now_v7()),
        };
        let value = serde_json::to_vec(parked).expect("a parked record always serialises");
        self.parked.insert(key, value)?;
        Ok(())
    }

    /// Removes the dead letter of stream message `stream_seq` (it was
    /// accepted after all). Not durable until [`Store::sync`].
    pub fn unpark(&self, stream_seq: u64) -> Result<(), StoreError> {
        self.parked.remove(format!("{stream_seq:020}"))?;
        Ok(())
    }

    /// Flushes sled and fsyncs its files: everything applied or parked before
    /// this call survives a crash once it returns.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.files.sync().map_err(StoreError::Sync)
    }

    pub fn snapshot(&self, town: &str, year: u16) -> Result<Option<TownSnapshot>, StoreError> {
        let key = snapshot_key(town, year);
        self.snapshots.get(&key)?.map(|v| decode_snapshot(&key, &v)).transpose()
    }

    /// Every stored snapshot, ordered by town then year.
    pub fn all_snapshots(&self) -> Result<Vec<TownSnapshot>, StoreError> {
        self.snapshots
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode_snapshot(&String::from_utf8_lossy(&k), &v)
            })
            .collect()
    }

    /// The stored snapshots of `year`, one per town that reported it.
    pub fn snapshots_for_year(&self, year: u16) -> Result<Vec<TownSnapshot>, StoreError> {
        Ok(self.all_snapshots()?.into_iter().filter(|s| s.year == year).collect())
    }

    /// Every dead letter, oldest stream message first.
    pub fn parked(&self) -> Result<Vec<Parked>, StoreError> {
        self.parked
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    tree: "parked",
                    key: String::from_utf8_lossy(&k).into_owned(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Dead letters per town named by their subject (`None`: no town).
    pub fn parked_counts(&self) -> Result<BTreeMap<Option<String>, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for p in self.parked()? {
            *counts.entry(p.town).or_insert(0) += 1;
        }
        Ok(counts)
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }
}

/// How long [`open_sled`] waits for a previous handle in this process to let
/// go of the lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled, waiting briefly for its file lock. Why: sled 0.34 finishes a
/// dropped `Db`'s last writes on its background threads, which keep the
/// `flock` on `db` for a few milliseconds after the drop; an in-process
/// restart (tests, or `start` after `shutdown`) would otherwise fail at
/// random. Another process holding the store still fails, after the wait.
fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::open(dir) {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => return Err(StoreError::Open { path: dir.to_path_buf(), source }),
        }
    }
}

fn decode_snapshot(key: &str, bytes: &[u8]) -> Result<TownSnapshot, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { tree: "snapshots", key: key.to_string(), detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use treem_proto::judge::Fraction;

    fn snap(town: &str, year: u16, version: u64, n: u64) -> TownSnapshot {
        TownSnapshot {
            province: "70".into(),
            town: town.into(),
            year,
            version,
            produced_at: Utc::now(),
            wards_total: 6,
            indicators: [("4a".to_string(), Fraction { numerator: n, denominator: 100 })].into(),
            wards: BTreeMap::new(),
            cases_counted: BTreeMap::new(),
            suppressed: Default::default(),
        }
    }

    #[test]
    fn newer_version_wins_whatever_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.apply(&snap("690", 2025, 3, 7)).unwrap(), Applied::New);
        assert_eq!(store.apply(&snap("690", 2025, 3, 7)).unwrap(), Applied::Duplicate);
        assert_eq!(store.apply(&snap("690", 2025, 2, 1)).unwrap(), Applied::Stale { held: 3 });
        assert_eq!(store.apply(&snap("690", 2025, 5, 9)).unwrap(), Applied::Replaced { previous: 3 });
        assert_eq!(store.apply(&snap("690", 2024, 4, 2)).unwrap(), Applied::New);
        store.sync().unwrap();
        assert_eq!(store.snapshot("690", 2025).unwrap().unwrap().version, 5);
        assert_eq!(store.snapshots_for_year(2024).unwrap().len(), 1);
        assert_eq!(store.all_snapshots().unwrap().len(), 2);
    }

    #[test]
    fn state_and_dead_letters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.apply(&snap("690", 2025, 3, 7)).unwrap();
            let p = Parked::new(Some(9), "treem.v1.projections.70.690.indicators", Some("690".into()), "bad".into(), false, b"{");
            store.park(&p).unwrap();
            store.park(&p).unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot("690", 2025).unwrap().unwrap().indicators["4a"].numerator, 7);
        assert_eq!(store.parked().unwrap().len(), 1);
        assert_eq!(store.parked_counts().unwrap()[&Some("690".to_string())], 1);
    }
}
