//! The town's durable state: one sled tree `town` (layout in [`keys`]).
//!
//! A batch of stream messages is folded into an [`Overlay`] and committed
//! with one `apply_batch` (atomic in sled), carrying together the
//! projection changes, each ward's position (`pos/<ward>`), the JetStream
//! stream sequence reached and the outbox entries for the province. Only
//! after the commit is durable ([`TownStore::sync`]) are the messages
//! acknowledged to JetStream.
//!
//! Crash at any line: before the commit, nothing of the batch is stored and
//! JetStream redelivers it; after the commit but before the acks, the
//! redelivered messages are duplicates by ward `seq` and are skipped. So each
//! event takes effect exactly once (invariant 2) and position and projection
//! never disagree (invariant 3).
//!
//! The store-free work of a batch (decoding, hashes, signatures) is done
//! first on every core ([`prepare_batch`]; the consumer prepares the next
//! batch while this one commits), then the fold runs in order over the
//! overlay.
//!
//! The town's own replay commands travel in the same stream and are folded
//! in the same batches ([`crate::replay`]); their results wait in memory for
//! the HTTP request that published them ([`TownStore::take_replay_result`]).
//! A redelivered command finds its record already replayed and changes
//! nothing.
//!
//! Parked records are copied to the dead-letter stream by
//! [`crate::deadletter`], which moves `meta/deadletter_published` forward
//! only after JetStream acknowledged (outside the fold's batches: no other
//! writer touches that key).
//!
//! Durability: sled 0.34's `flush()` ends in `sync_file_range`, which does
//! not force the data to stable storage on every filesystem, nor the file's
//! metadata. After each flush we `fdatasync` sled's data file (`db`) through a
//! handle held open for the store's lifetime; the directory was fsynced once
//! at open so the files themselves are durable.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use treem_proto::subject;

use crate::fold::{self, Ctx, Dirty, Outcome};
use crate::keys;
use crate::kv::{Kv, Overlay};
use crate::parked::Parked;
use crate::replay::{self, ReplayOutcome, ReplayRefusal};

/// A message of the town's stream as the fold takes it: subject, payload
/// and stream sequence.
pub type Input = (String, Vec<u8>, u64);

/// The [`Input`] of a message fetched from the stream.
pub fn input_of(m: &async_nats::jetstream::Message) -> Input {
    let sseq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
    (m.subject.to_string(), m.payload.to_vec(), sseq)
}

/// What came of the replay command at a stream sequence.
pub type ReplayResult = Result<ReplayOutcome, ReplayRefusal>;

/// Results of replay commands not yet taken by their requests; the oldest
/// are dropped past this many (a request that gave up waiting never takes its own).
const REPLAY_RESULTS_KEPT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the town store at {path}: {detail} (is another town process using it?)")]
    Open { path: PathBuf, detail: String },
    #[error("town store write failed: {0}; the batch was not applied and will be redelivered")]
    Write(String),
}

#[derive(Clone)]
pub struct TownStore {
    pub db: sled::Db,
    pub tree: sled::Tree,
    data_file: Arc<File>,
    path: PathBuf,
    replay_results: Arc<Mutex<BTreeMap<u64, ReplayResult>>>,
    /// Moves after every committed batch: views cached at an older value
    /// are stale ([`crate::projection::indicators::FiguresCache`]).
    generation: Arc<AtomicU64>,
    /// Time spent in order so far (see [`InOrderTimes`]).
    in_order: Arc<InOrderNanos>,
}

/// [`InOrderTimes`] as they add up, in nanoseconds.
#[derive(Default)]
struct InOrderNanos {
    fold: AtomicU64,
    commit: AtomicU64,
}

/// Wall-clock time the in-order part of committing batches took in this
/// process since the store was opened: folding them into the overlay, and
/// sled's `apply_batch` of the result (not the `flush` + `fdatasync`).
/// What the benchmark reports for the rebuild (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InOrderTimes {
    pub fold: std::time::Duration,
    pub commit: std::time::Duration,
}

impl TownStore {
    pub fn open(path: &Path) -> Result<TownStore, StoreError> {
        TownStore::open_with_cache(path, CACHE_BYTES)
    }

    /// Opens the store with `cache_bytes` of sled page cache.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<TownStore, StoreError> {
        let open_err = |detail: String| StoreError::Open { path: path.into(), detail };
        std::fs::create_dir_all(path).map_err(|e| open_err(e.to_string()))?;
        let db = open_sled(path, cache_bytes).map_err(|e| open_err(e.to_string()))?;
        let tree = db.open_tree("town").map_err(|e| open_err(e.to_string()))?;
        recount_held(&tree).map_err(|e| open_err(e.to_string()))?;
        db.flush().map_err(|e| open_err(e.to_string()))?;
        let data_file = File::open(path.join("db")).map_err(|e| open_err(format!("sled data file: {e}")))?;
        data_file.sync_all().map_err(|e| open_err(e.to_string()))?;
        File::open(path).and_then(|d| d.sync_all()).map_err(|e| open_err(e.to_string()))?;
        Ok(TownStore {
            db,
            tree,
            data_file: Arc::new(data_file),
            path: path.into(),
            replay_results: Arc::default(),
            generation: Arc::default(),
            in_order: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many batches this process committed: a view computed when this
    /// read `g` is current until it reads more than `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The in-order time of every batch committed through this handle (and its clones).
    pub fn in_order_times(&self) -> InOrderTimes {
        let time = |ns: &AtomicU64| std::time::Duration::from_nanos(ns.load(Ordering::Relaxed));
        InOrderTimes { fold: time(&self.in_order.fold), commit: time(&self.in_order.commit) }
    }

    /// Folds messages `(subject, payload, stream_seq)` and commits them
    /// atomically and durably. Returns the outcome of each ward event (replay
    /// commands leave theirs for [`TownStore::take_replay_result`]).
    pub fn apply_batch(&self, ctx: &Ctx, messages: &[Input]) -> Result<Vec<Outcome>, StoreError> {
        self.apply_prepared_batch(ctx, messages, prepare_batch(ctx, messages))
    }

    /// [`TownStore::apply_batch`] of messages prepared already with [`prepare_batch`]
    /// (the same messages, the same `ctx`).
    pub fn apply_prepared_batch(&self, ctx: &Ctx, messages: &[Input], prepared: PreparedBatch) -> Result<Vec<Outcome>, StoreError> {
        let outcomes = self.commit_prepared_batch(ctx, messages, prepared)?;
        let syncing = std::time::Instant::now();
        self.sync()?;
        tracing::debug!(messages = messages.len(), sync_us = syncing.elapsed().as_micros() as u64, "batch durable");
        Ok(outcomes)
    }

    /// [`TownStore::apply_prepared_batch`] short of making the batch durable:
    /// it is committed (atomic, and what every reader sees) but a crash may
    /// still lose it whole until [`TownStore::sync`] returns. A rebuild
    /// syncs once, at its end. (The consumer syncs each batch before its
    /// acknowledgements; syncing while the next batch folds was tried and
    /// was slower on two cores: BENCHMARKS.md.)
    pub fn commit_prepared_batch(&self, ctx: &Ctx, messages: &[Input], prepared: PreparedBatch) -> Result<Vec<Outcome>, StoreError> {
        let started = std::time::Instant::now();
        let mut overlay = Overlay::new(&self.tree);
        let mut dirty = Dirty::new();
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut replays = Vec::new();
        let mut stream_seq = None;
        let parked_before = fold::get_u64(&overlay, keys::META_PARKED_NEXT);
        assert_eq!(prepared.0.len(), messages.len(), "a batch is applied with its own preparation");
        for ((subject_str, payload, sseq), prepared) in messages.iter().zip(prepared.0) {
            match prepared {
                None => replays.push((*sseq, replay::apply_command(&mut overlay, ctx, subject_str, payload, &mut dirty))),
                Some(p) => outcomes.push(fold::apply_prepared(&mut overlay, ctx, subject_str, payload, p, &mut dirty)),
            }
            stream_seq = stream_seq.max(Some(*sseq));
        }
        if let Some(s) = stream_seq.filter(|&s| s > fold::get_u64(&overlay, keys::META_STREAM_SEQ)) {
            overlay.put(keys::META_STREAM_SEQ.to_vec(), s.to_be_bytes().to_vec());
        }
        let parked_after = fold::get_u64(&overlay, keys::META_PARKED_NEXT);
        if !dirty.is_empty() {
            let mut next = overlay.get(keys::META_OUTBOX_NEXT).map(|v| keys::u64_of(&v)).unwrap_or(0);
            for year in dirty {
                next += 1;
                overlay.put(keys::outbox(next), year.to_be_bytes().to_vec());
            }
            overlay.put(keys::META_OUTBOX_NEXT.to_vec(), next.to_be_bytes().to_vec());
        }
        let folded = started.elapsed();
        let batch = overlay.into_batch();
        self.tree.apply_batch(batch).map_err(|e| StoreError::Write(e.to_string()))?;
        self.generation.fetch_add(1, Ordering::Release);
        let committed = started.elapsed();
        self.in_order.fold.fetch_add(folded.as_nanos() as u64, Ordering::Relaxed);
        self.in_order.commit.fetch_add((committed - folded).as_nanos() as u64, Ordering::Relaxed);
        tracing::debug!(
            messages = messages.len(),
            fold_us = folded.as_micros() as u64,
            commit_us = (committed - folded).as_micros() as u64,
            "batch applied"
        );
        for n in parked_before + 1..=parked_after {
            if let Some(p) = self.parked_record(n) {
                tracing::warn!(parked = n, subject = %p.subject, ward = p.ward, seq = p.seq, reason = %p.reason, "parked a message from the ward stream");
            }
        }
        if !replays.is_empty() {
            let mut results = self.replay_results.lock().expect("replay results lock");
            results.extend(replays);
            while results.len() > REPLAY_RESULTS_KEPT {
                results.pop_first();
            }
        }
        Ok(outcomes)
    }

    /// The result of the replay command folded at stream sequence `sseq`, once.
    pub fn take_replay_result(&self, sseq: u64) -> Option<ReplayResult> {
        self.replay_results.lock().expect("replay results lock").remove(&sseq)
    }

    /// Makes every committed write durable (see the module doc).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| StoreError::Write(e.to_string()))?;
        self.data_file.sync_data().map_err(|e| StoreError::Write(e.to_string()))
    }

    /// Outbox entries `(n, year)` in order.
    pub fn outbox(&self) -> Vec<(u64, u16)> {
        self.tree
            .scan_prefix(keys::OUTBOX_PREFIX)
            .filter_map(Result::ok)
            .map(|(k, v)| (keys::trailing_u64(&k), v.as_ref().try_into().map(u16::from_be_bytes).unwrap_or(0)))
            .collect()
    }

    /// Removes outbox entries up to `n` once the province has them.
    pub fn outbox_done(&self, up_to: u64) -> Result<(), StoreError> {
        let mut b = sled::Batch::default();
        for (n, _) in self.outbox() {
            if n <= up_to {
                b.remove(keys::outbox(n));
            }
        }
        self.tree.apply_batch(b).map_err(|e| StoreError::Write(e.to_string()))?;
        self.sync()
    }

    pub fn stream_seq(&self) -> u64 {
        self.tree.get(keys::META_STREAM_SEQ).ok().flatten().map(|v| keys::u64_of(&v)).unwrap_or(0)
    }

    /// The messages parked now: every record not (yet) replayed. What a
    /// reader sees as "parked", and what `rebuild` compares.
    pub fn parked(&self) -> Vec<Parked> {
        self.parked_all().into_iter().map(|(_, p)| p).filter(|p| p.replayed.is_none()).collect()
    }

    /// Every parked record `(n, record)`, replayed ones too, oldest first.
    pub fn parked_all(&self) -> Vec<(u64, Parked)> {
        self.tree
            .scan_prefix(keys::PARKED_PREFIX)
            .filter_map(Result::ok)
            .filter_map(|(k, v)| Some((keys::trailing_u64(&k), serde_json::from_slice(&v).ok()?)))
            .collect()
    }

    pub fn parked_record(&self, n: u64) -> Option<Parked> {
        self.tree.get(keys::parked(n)).ok().flatten().and_then(|v| serde_json::from_slice(&v).ok())
    }

    /// The number of the last parked record.
    pub fn parked_next(&self) -> u64 {
        self.tree.get(keys::META_PARKED_NEXT).ok().flatten().map(|v| keys::u64_of(&v)).unwrap_or(0)
    }

    /// The last parked record the dead-letter stream acknowledged.
    pub fn deadletter_published(&self) -> u64 {
        self.tree.get(keys::META_DEADLETTER_PUBLISHED).ok().flatten().map(|v| keys::u64_of(&v)).unwrap_or(0)
    }

    /// Moves the dead-letter outbox forward to `n`, durably.
    pub fn set_deadletter_published(&self, n: u64) -> Result<(), StoreError> {
        self.tree.insert(keys::META_DEADLETTER_PUBLISHED, &n.to_be_bytes()).map_err(|e| StoreError::Write(e.to_string()))?;
        self.sync()
    }
}

/// The store-free part of folding a batch ([`fold::Prepared`]), one per
/// message: `None` for the town's replay commands, which are folded whole.
pub struct PreparedBatch(Vec<Option<fold::Prepared>>);

/// Prepares the ward events of a batch `(subject, payload, stream_seq)` on
/// all cores, with the ward keys in force now: the decoding, hashing and
/// signature checks of every event up front, so that the fold in order
/// ([`TownStore::apply_prepared_batch`]) does only the key-value work. Pure;
/// a batch may be prepared while the one before it is folded.
pub fn prepare_batch(ctx: &Ctx, messages: &[Input]) -> PreparedBatch {
    let is_replay: Vec<bool> = messages.iter().map(|(s, _, _)| subject::parse_town_replay_subject(s).is_ok()).collect();
    let events: Vec<(&str, &[u8])> =
        messages.iter().zip(&is_replay).filter(|(_, r)| !**r).map(|((s, p, _), _)| (s.as_str(), p.as_slice())).collect();
    let mut prepared = fold::prepare_batch(ctx, &events).into_iter();
    PreparedBatch(is_replay.into_iter().map(|r| if r { None } else { prepared.next() }).collect())
}

/// Sets every ward's count of held events ([`fold::WardInfo::held`]) to the
/// `held/` entries the store has: a store written before the count was kept
/// holds events it does not count. Reads only the held entries and the
/// wards' records; writes only where a count is wrong.
fn recount_held(tree: &sled::Tree) -> Result<(), sled::Error> {
    let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for entry in tree.scan_prefix(b"held/") {
        let (key, _) = entry?;
        // held/<ward>/<seq: 8 bytes>
        if let Some(ward) = key.len().checked_sub(9).and_then(|end| key.get(5..end)) {
            *counts.entry(ward.to_vec()).or_default() += 1;
        }
    }
    let mut batch = sled::Batch::default();
    let mut wrong = 0;
    for entry in tree.scan_prefix(keys::WARD_INFO_PREFIX) {
        let (key, value) = entry?;
        let Some(mut info) = fold::WardInfo::decode(&value) else { continue };
        let held = counts.remove(&key[keys::WARD_INFO_PREFIX.len()..]).unwrap_or(0);
        if info.held != held {
            info.held = held;
            batch.insert(key.to_vec(), info.encode());
            wrong += 1;
        }
    }
    for (ward, held) in counts {
        let mut key = keys::WARD_INFO_PREFIX.to_vec();
        key.extend_from_slice(&ward);
        batch.insert(key, fold::WardInfo { held, ..Default::default() }.encode());
        wrong += 1;
    }
    if wrong > 0 {
        tracing::info!(wards = wrong, "counted the events held behind gaps");
        tree.apply_batch(batch)?;
    }
    Ok(())
}

/// sled's page cache of a store opened with [`TownStore::open`] (the
/// service uses `Config::store_cache_mb`, the same by default). sled's own
/// default, 1 GiB, is what a town process grew to while applying a large
/// stream (BENCHMARKS.md); the views read through the figures cache and the
/// fold touches recent keys, so a small cache costs the apply rate little.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Opens sled, waiting up to 5 s while a store closed a moment ago in this
/// process still holds its file lock (sled's background flusher lets go of it
/// a few milliseconds after the last handle is dropped).
fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(path).cache_capacity(cache_bytes).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}
