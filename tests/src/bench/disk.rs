//! Stage 1: the ward's durable appends, against the raw limits of the parts
//! under them, on the same disk in the same run.
//!
//! - treem: [`WardLog::append`] (validation, a sled transaction over the
//!   `log` and `ids` trees, group commit: `flush` + `fdatasync`), from 1
//!   writer and from 16 concurrent writers, each for the stage's duration.
//! - raw sled: `insert` of the same envelope bytes into one tree, then
//!   `flush` and `fdatasync` of sled's `db` and `conf` files (what the
//!   ward's group commit does), once per record, once per 16 (the most
//!   16 writers can share) and once per 100 records.
//! - the CPU time of this process over the 16 writers' run, per record;
//!   and ed25519 signing alone as the ward signs each record, on every core
//!   for the stage's duration (every record is signed: a floor under the
//!   ward's CPU per record).
//! - raw disk: `write` of the same bytes to a plain file, then `fdatasync`,
//!   once per record and once per 100.
//!
//! Goals (issue 5): 1 writer ≥ 80 % of raw sled one at a time; 16 writers
//! ≥ 50 % of raw sled per 100.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use treem_proto::catalogue::Catalogue;
use treem_proto::provenance::{Seal, SigningKey};
use treem_proto::subject::WardPath;
use treem_ward::WardLog;

use super::Scratch;
use super::stats::{Cpu, cores, rate};
use super::workload::{AUTHOR, Mix, envelope};

/// Concurrent writers of the second ward figure.
pub const WRITERS: usize = 16;
/// Records per sync of the batched raw figures.
pub const BATCH: usize = 100;

/// What the stage measured, records per second.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskFigures {
    pub payload_bytes: usize,
    pub write_1: f64,
    pub write_100: f64,
    pub sled_1: f64,
    pub sled_100: f64,
    /// sled per [`WRITERS`] records: the batching 16 writers can reach at best
    /// (each has one record waiting for the group commit).
    pub sled_16: f64,
    pub ward_1: f64,
    pub ward_16: f64,
    /// `append_all` of 100 events at a time from 1 writer (what the CSV import does).
    pub ward_batch_100: f64,
    /// CPU of this process (the ward log runs in it) over the 16 writers' run,
    /// and the records they appended.
    pub cpu_ward_16: Cpu,
    pub records_ward_16: u64,
    /// ed25519 signing alone as the ward signs each record, on every core.
    pub signed: u64,
    pub cpu_signing: Cpu,
}

/// Runs the stage: raw disk, raw sled, then the ward log, each for `secs`.
pub async fn run(scratch: &Scratch, secs: f64) -> anyhow::Result<DiskFigures> {
    let duration = Duration::from_secs_f64(secs);
    let ward = WardPath { province: "70".into(), town: "690".into(), ward: "25320".into() };
    let payload = envelope(&ward, 1, Utc::now(), Mix::new(1).next_event()).encode();
    let mut f = DiskFigures { payload_bytes: payload.len(), ..Default::default() };

    let dir = scratch.dir("disk-raw")?;
    let p = payload.clone();
    (f.write_1, f.write_100) = tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64)> {
        Ok((raw_write(&dir.join("one"), &p, 1, duration)?, raw_write(&dir.join("hundred"), &p, BATCH, duration)?))
    })
    .await??;
    let dir = scratch.dir("disk-sled")?;
    let p = payload.clone();
    (f.sled_1, f.sled_100, f.sled_16) = tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64, f64)> {
        Ok((
            raw_sled(&dir.join("one"), &p, 1, duration)?,
            raw_sled(&dir.join("hundred"), &p, BATCH, duration)?,
            raw_sled(&dir.join("sixteen"), &p, WRITERS, duration)?,
        ))
    })
    .await??;
    f.ward_1 = ward_appends(&scratch.dir("disk-ward-1")?, &ward, 1, 1, duration).await?.0;
    let (sixteen, cpu) = Cpu::of(ward_appends(&scratch.dir("disk-ward-16")?, &ward, WRITERS, 1, duration)).await;
    (f.ward_16, f.records_ward_16) = sixteen?;
    f.cpu_ward_16 = cpu;
    f.ward_batch_100 = ward_appends(&scratch.dir("disk-ward-batch")?, &ward, 1, BATCH, duration).await?.0;
    let (signed, cpu) = Cpu::of(async { signing_alone(&ward, duration) }).await;
    (f.signed, f.cpu_signing) = (signed, cpu);
    eprintln!(
        "  raw write+fdatasync {:.0}/s, per {BATCH} {:.0}/s; sled {:.0}/s, per {BATCH} {:.0}/s, per {WRITERS} {:.0}/s; ward 1 writer {:.0}/s, {WRITERS} writers {:.0}/s, batches of {BATCH} {:.0}/s",
        f.write_1, f.write_100, f.sled_1, f.sled_100, f.sled_16, f.ward_1, f.ward_16, f.ward_batch_100
    );
    eprintln!(
        "  {WRITERS} writers: {:.1} µs of CPU a record; signing alone: {:.0}/s on {} cores, {:.1} µs of CPU each",
        f.cpu_ward_16.per_event_us(f.records_ward_16).0,
        rate(f.signed, f.cpu_signing.wall),
        cores(),
        f.cpu_signing.per_event_us(f.signed).0
    );
    Ok(f)
}

/// Signs for `duration` on every core, one thread each, as the ward signs a
/// record (`SigningKey::sign_sealed`: ed25519 over the record's signing
/// bytes, the signature written into the envelope as hex). Signatures made.
fn signing_alone(ward: &WardPath, duration: Duration) -> u64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores())
            .map(|t| {
                scope.spawn(move || {
                    let mut env = envelope(ward, 1, Utc::now(), Mix::new(7 + t as u64).next_event());
                    let seal = Seal::of_envelope(&env);
                    let key = SigningKey::from_secret(&[t as u8 + 1; 32]);
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        for _ in 0..64 {
                            env.sig = None;
                            key.sign_sealed(&mut env, &seal);
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("a signing thread does not panic")).sum()
    })
}

/// Appends `payload` to a new file for `duration`, `fdatasync` every `batch` records. Records per second.
fn raw_write(path: &Path, payload: &[u8], batch: usize, duration: Duration) -> anyhow::Result<f64> {
    let mut file = OpenOptions::new().create_new(true).append(true).open(path).with_context(|| format!("create {}", path.display()))?;
    let started = Instant::now();
    let mut records = 0u64;
    while started.elapsed() < duration {
        for _ in 0..batch {
            file.write_all(payload)?;
        }
        file.sync_data()?;
        records += batch as u64;
    }
    Ok(rate(records, started.elapsed()))
}

/// Inserts `payload` under increasing keys into a new sled database for
/// `duration`; every `batch` inserts, `flush` and `fdatasync` its files.
fn raw_sled(dir: &Path, payload: &[u8], batch: usize, duration: Duration) -> anyhow::Result<f64> {
    let db = sled::Config::new().path(dir).open().with_context(|| format!("open sled in {}", dir.display()))?;
    let tree = db.open_tree("log")?;
    db.flush()?;
    let (data, conf) = (File::open(dir.join("db"))?, File::open(dir.join("conf"))?);
    let started = Instant::now();
    let mut seq = 0u64;
    while started.elapsed() < duration {
        for _ in 0..batch {
            seq += 1;
            tree.insert(seq.to_be_bytes(), payload)?;
        }
        db.flush()?;
        data.sync_data()?;
        conf.sync_data()?;
    }
    Ok(rate(seq, started.elapsed()))
}

/// `writers` tasks append events of the mix (`batch` per `append_all`, or
/// one `append` when 1) to a new ward log until `duration` has passed.
/// Records per second, and records appended.
async fn ward_appends(dir: &Path, ward: &WardPath, writers: usize, batch: usize, duration: Duration) -> anyhow::Result<(f64, u64)> {
    let log = WardLog::open(dir, ward.clone(), Catalogue::shipped()).context("open a ward log")?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mix = Mix::new(100 + w as u64);
            let mut n = 0u64;
            while started.elapsed() < duration {
                if batch == 1 {
                    log.append(AUTHOR, mix.next_event()).await?;
                } else {
                    log.append_all(AUTHOR, (0..batch).map(|_| mix.next_event()).collect()).await?;
                }
                n += batch as u64;
            }
            Ok::<_, treem_ward::LogError>((n, started.elapsed()))
        }));
    }
    let mut total = 0u64;
    let mut elapsed = Duration::ZERO;
    for t in tasks {
        let (n, e) = t.await??;
        total += n;
        elapsed = elapsed.max(e);
    }
    Ok((rate(total, elapsed), total))
}
