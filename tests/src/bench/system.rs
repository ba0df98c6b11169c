//! The system-level stages, with every service as its own process
//! ([`Service`]) on one nats-server, as in a town office:
//!
//! 1. **Fill**: the six Bình Long wards each record `per_ward` events while
//!    offline ([`fill_ward_log`], in this process, before their binaries
//!    start). Every envelope is also written to the PostgreSQL load file.
//! 2. **Catch-up**: the province and the town start; then the six ward
//!    binaries start at once. The figure is the time from their start until
//!    the town's `/api/v1/sync` shows every event of every ward applied.
//! 3. **Latency**: the wards record `indicator.observed` events over HTTP at
//!    `rate` per second in all (each ward its own indicator of
//!    [`LATENCY_CODES`], numerator 1, 2, 3…). "Visible at the town" is the
//!    first `/api/v1/sync` answer whose `last_seq_applied` covers the event's
//!    seq; "visible at the province" the first province
//!    `/api/v1/indicators?town=690` answer whose numerator for the ward's
//!    indicator reached the event's. Both from the moment the record request
//!    was sent; polled back to back (2 ms and 5 ms apart), and timed at the
//!    poll's answer, so a figure is late by at most one poll.
//! 4. **Town API**: `clients` concurrent clients, each with its own
//!    connections, ask for the indicator overview of one year — the town's
//!    (`/api/v1/indicators?year=2025`) and one ward's (`&ward=25320`) at
//!    once, as a dashboard page does — again and again. The figure is the
//!    time until both answers are read.
//! 5. **Memory** of the running processes: `VmHWM` of the wards (they
//!    caught up and recorded), the town and the province.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use treem_proto::subject::{self, WardPath};

use super::postgres::CopyFile;
use super::procs::{Service, Viewer};
use super::stats::{Latencies, rate};
use super::workload::{CURRENT_YEAR, LATENCY_CODES, fill_ward_log};
use super::{Options, Scratch, wait_until};

/// The six wards of Bình Long.
pub const WARDS: [&str; 6] = ["25320", "25324", "25325", "25326", "25333", "25336"];
/// The ward of the overview the API stage asks for.
pub const OVERVIEW_WARD: &str = "25320";

/// What the live-system stages measured.
#[derive(Debug, Default)]
pub struct LiveFigures {
    pub events: u64,
    pub catch_up: Duration,
    pub latency_rate: f64,
    pub latency_town: Latencies,
    pub latency_province: Latencies,
    /// Events never seen within the wait (counted, not hidden).
    pub latency_missing: usize,
    pub api: Latencies,
    pub api_per_sec: f64,
    /// Overviews that failed (timed out after [`API_TIMEOUT`] or an error status).
    pub api_failed: usize,
    /// Lines of the town's log during the catch-up: fetches abandoned as
    /// stalled, and events held behind a gap in a ward's seqs.
    pub catch_up_stalls: usize,
    pub catch_up_held: usize,
    pub rss_wards: u64,
    pub rss_town: u64,
    pub rss_province: u64,
}

/// The running system of the stages.
pub struct Live {
    pub town: Service,
    pub province: Service,
    pub wards: Vec<Service>,
    pub viewer: Viewer,
}

/// Step 1: fills the six wards' logs, and registers their signing keys
/// for the town ([`keys_file`]) as an operator does with `treem-town keys
/// add`. Returns the events per ward.
pub async fn fill(opts: &Options, scratch: &Scratch, copy: &mut CopyFile) -> anyhow::Result<u64> {
    let mut keys = treem_town::provenance::KeysFile::new();
    for (i, ward) in WARDS.iter().enumerate().take(opts.wards) {
        let path = WardPath { province: "70".into(), town: "690".into(), ward: (*ward).into() };
        let dir = ward_dir(scratch, ward);
        let mut sink = |env: &treem_proto::Envelope| copy.push(env);
        let last = fill_ward_log(&dir, path.clone(), opts.per_ward, 1000 + i as u64, &mut sink).await?;
        if last != opts.per_ward {
            bail!("ward {ward}'s log ends at seq {last}, expected {}", opts.per_ward);
        }
        let registered = treem_ward::keys::WardKeys::load(&dir, &path)?.context("the ward made its signing key")?;
        keys.insert((*ward).into(), registered.registrations().iter().map(|r| r.key()).collect());
        eprintln!("  filled ward {ward}: {last} events");
    }
    std::fs::write(keys_file(scratch), serde_json::to_vec_pretty(&keys)?)?;
    Ok(opts.per_ward)
}

/// The town's registry of the wards' public keys (`ward_keys_file`).
pub fn keys_file(scratch: &Scratch) -> PathBuf {
    scratch.path("ward_keys.json")
}

fn town_env(dir: &Path, nats_url: &str, keys: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("TREEM_TOWN_DATA_DIR", dir.display().to_string()),
        ("TREEM_TOWN_HTTP_ADDR", "127.0.0.1:0".into()),
        ("TREEM_TOWN_NATS_URL", nats_url.into()),
        ("TREEM_TOWN_WARD_KEYS_FILE", keys.display().to_string()),
    ]
}

/// Starts a town binary with a fresh data dir `dir` (the viewer token given to it).
pub async fn start_town(opts: &Options, scratch: &Scratch, name: &str, viewer: &Viewer, nats_url: &str) -> anyhow::Result<Service> {
    let dir = scratch.path(name);
    viewer.provision(&dir)?;
    Service::start(&opts.bin_dir, "treem-town", name, &dir, &scratch.path("logs"), &town_env(&dir, nats_url, &keys_file(scratch))).await
}

pub fn ward_env(dir: &Path, ward: &str, town: &str, nats_url: &str, hierarchy: Option<&Path>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TREEM_WARD_WARD", ward.to_string()),
        ("TREEM_WARD_TOWN", town.to_string()),
        ("TREEM_WARD_DATA_DIR", dir.display().to_string()),
        ("TREEM_WARD_HTTP_ADDR", "127.0.0.1:0".into()),
        ("TREEM_WARD_NATS_URL", nats_url.into()),
    ];
    if let Some(h) = hierarchy {
        env.push(("TREEM_WARD_HIERARCHY_FILE", h.display().to_string()));
    }
    env
}

/// `GET` a JSON answer, failing on a status other than 2xx.
pub async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http.get(url).send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        bail!("GET {url} → {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {url}: not JSON: {body}"))
}

/// `last_seq_applied` of each of `wards` in the town's `/api/v1/sync`, and its `stream_seq`.
pub async fn town_positions(http: &reqwest::Client, town_addr: &str, wards: &[&str]) -> anyhow::Result<(Vec<u64>, u64)> {
    let v = get_json(http, &format!("http://{town_addr}/api/v1/sync")).await?;
    let listed = v["wards"].as_array().context("sync has wards")?;
    let positions =
        wards.iter().map(|w| listed.iter().find(|x| x["ward"] == *w).and_then(|x| x["last_seq_applied"].as_u64()).unwrap_or(0)).collect();
    Ok((positions, v["stream_seq"].as_u64().unwrap_or(0)))
}

/// How long one overview request may take before it counts as failed.
pub const API_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of `path` containing `needle`.
pub fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| l.contains(needle)).count()).unwrap_or(0)
}

/// Step 2: starts the province and the town, then the wards, and times the catch-up.
pub async fn catch_up(opts: &Options, scratch: &Scratch, nats_url: &str, figures: &mut LiveFigures) -> anyhow::Result<Live> {
    let per_ward = opts.per_ward;
    let viewer = Viewer::new()?;
    let logs = scratch.path("logs");
    let pdir = scratch.path("province");
    viewer.provision(&pdir)?;
    let province_env = vec![
        ("TREEM_PROVINCE_DATA_DIR", pdir.display().to_string()),
        ("TREEM_PROVINCE_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("TREEM_PROVINCE_NATS_URL", nats_url.to_string()),
    ];
    let province = Service::start(&opts.bin_dir, "treem-province", "province", &pdir, &logs, &province_env).await?;
    let town = start_town(opts, scratch, "town", &viewer, nats_url).await?;
    let js = super::jetstream::context(async_nats::connect(nats_url).await?);
    let stream = subject::town_events_stream("70", "690");
    wait_until("the town created its stream", Duration::from_secs(60), Duration::from_millis(20), || {
        let (js, stream) = (js.clone(), stream.clone());
        async move { js.get_stream(&stream).await.ok().map(|_| ()) }
    })
    .await?;

    let wards: Vec<&str> = WARDS.iter().take(opts.wards).copied().collect();
    let started = Instant::now();
    let mut running = Vec::new();
    for w in &wards {
        let dir = ward_dir(scratch, w);
        running.push(Service::spawn(
            &opts.bin_dir,
            "treem-ward",
            &format!("ward-{w}"),
            &dir,
            &logs,
            &ward_env(&dir, w, "690", nats_url, None),
        )?);
    }
    let http = viewer.client()?;
    let addr = town.addr.clone();
    wait_until("the town applied every ward's backlog", Duration::from_secs(3600), Duration::from_millis(20), || {
        let (http, addr, wards) = (http.clone(), addr.clone(), wards.clone());
        async move {
            let (positions, _) = town_positions(&http, &addr, &wards).await.ok()?;
            positions.iter().all(|&p| p >= per_ward).then_some(())
        }
    })
    .await?;
    figures.catch_up = started.elapsed();
    figures.events = per_ward * wards.len() as u64;
    figures.catch_up_stalls = count_lines(&town.log_path, "stalled");
    figures.catch_up_held = count_lines(&town.log_path, "held behind a gap");
    eprintln!(
        "  catch-up of {} events: {:.2} s (town log: {} stalled fetches, {} events held behind a gap)",
        figures.events,
        figures.catch_up.as_secs_f64(),
        figures.catch_up_stalls,
        figures.catch_up_held
    );
    for w in &mut running {
        w.wait_http().await?;
    }
    Ok(Live { town, province, wards: running, viewer })
}

/// One event of the latency stage.
#[derive(Debug)]
struct Probe {
    ward: usize,
    value: u64,
    started: Instant,
    seq: Option<u64>,
    town: Option<Duration>,
    province: Option<Duration>,
}

/// Step 3: records at `rate` events/s for `secs` and times their way up.
pub async fn latency(live: &Live, rate_per_sec: f64, secs: f64, figures: &mut LiveFigures) -> anyhow::Result<()> {
    let wards: Vec<&str> = WARDS.iter().take(live.wards.len()).copied().collect();
    let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let http = live.viewer.client()?;

    let town_poller = {
        let (probes, recording, http, addr, wards) =
            (probes.clone(), recording.clone(), http.clone(), live.town.addr.clone(), wards.clone());
        tokio::spawn(async move {
            loop {
                let (positions, _) = town_positions(&http, &addr, &wards).await?;
                let now = Instant::now();
                let mut all = true;
                for p in probes.lock().expect("lock").iter_mut() {
                    if p.town.is_none() && p.seq.is_some_and(|s| s <= positions[p.ward]) {
                        p.town = Some(now - p.started);
                    }
                    all &= p.town.is_some();
                }
                if all && !recording.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok::<_, anyhow::Error>(());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let province_poller = {
        let (probes, recording, http) = (probes.clone(), recording.clone(), http.clone());
        let url = format!("http://{}/api/v1/indicators?year={CURRENT_YEAR}&town=690", live.province.addr);
        let n = wards.len();
        tokio::spawn(async move {
            loop {
                let v = get_json(&http, &url).await?;
                let now = Instant::now();
                let list = v["indicators"].as_array().context("indicators")?;
                let seen: Vec<u64> = (0..n)
                    .map(|w| list.iter().find(|i| i["code"] == LATENCY_CODES[w]).and_then(|i| i["numerator"].as_u64()).unwrap_or(0))
                    .collect();
                let mut all = true;
                for p in probes.lock().expect("lock").iter_mut() {
                    if p.province.is_none() && p.value <= seen[p.ward] {
                        p.province = Some(now - p.started);
                    }
                    all &= p.province.is_some();
                }
                if all && !recording.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok::<_, anyhow::Error>(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let total = (rate_per_sec * secs).ceil().max(wards.len() as f64) as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate_per_sec));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut values = vec![0u64; wards.len()];
    let mut requests = Vec::new();
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let ward = i as usize % wards.len();
        values[ward] += 1;
        let index = {
            let mut list = probes.lock().expect("lock");
            list.push(Probe { ward, value: values[ward], started: Instant::now(), seq: None, town: None, province: None });
            list.len() - 1
        };
        let body = json!({"kind": "indicator.observed", "body": {
            "indicator": LATENCY_CODES[ward], "year": CURRENT_YEAR, "numerator": values[ward], "denominator": 1_000_000_000u64, "source": "bench"}});
        let (http, url, probes) = (http.clone(), format!("http://{}/api/v1/events", live.wards[ward].addr), probes.clone());
        requests.push(tokio::spawn(async move {
            let r = http.post(&url).json(&body).send().await.with_context(|| format!("POST {url}"))?;
            let status = r.status();
            let v: Value = r.json().await?;
            if status.as_u16() != 201 {
                bail!("recording at {url} → {status}: {v}");
            }
            probes.lock().expect("lock")[index].seq = v["seq"].as_u64();
            Ok(())
        }));
    }
    for r in requests {
        r.await??;
    }
    figures.latency_rate = rate(total, started.elapsed());
    recording.store(false, std::sync::atomic::Ordering::SeqCst);
    let wait = Duration::from_secs(120);
    let town_done = tokio::time::timeout(wait, town_poller).await;
    let province_done = tokio::time::timeout(wait, province_poller).await;
    for (what, done) in [("town", town_done), ("province", province_done)] {
        match done {
            Ok(joined) => joined??,
            Err(_) => eprintln!("  latency: some events were not visible at the {what} within {wait:?}; counted as missing"),
        }
    }
    if probes.lock().expect("lock").iter().any(|p| p.town.is_none() || p.province.is_none()) {
        let url = format!("http://{}/api/v1/indicators?year={CURRENT_YEAR}&town=690", live.province.addr);
        let seen = get_json(&http, &url).await.map(|v| v["indicators"].clone()).unwrap_or_default();
        let (positions, stream_seq) = town_positions(&http, &live.town.addr, &wards).await.unwrap_or_default();
        for (w, ward) in wards.iter().enumerate() {
            let at_province =
                seen.as_array().and_then(|l| l.iter().find(|i| i["code"] == LATENCY_CODES[w])).map(|i| i["numerator"].clone());
            eprintln!(
                "  ward {ward}: recorded up to {} (indicator {}), province shows {:?}; town applied seq {:?} (stream_seq {stream_seq})",
                values[w],
                LATENCY_CODES[w],
                at_province,
                positions.get(w)
            );
        }
    }
    for p in probes.lock().expect("lock").iter() {
        match (p.town, p.province) {
            (Some(t), Some(pr)) => {
                figures.latency_town.push(t);
                figures.latency_province.push(pr);
            }
            _ => figures.latency_missing += 1,
        }
    }
    let (t, p) = (figures.latency_town.p50_p99(), figures.latency_province.p50_p99());
    eprintln!(
        "  {total} events at {:.0}/s: to the town p50 {:.1} / p99 {:.1} ms; to the province p50 {:.1} / p99 {:.1} ms; {} never seen",
        figures.latency_rate, t.0, t.1, p.0, p.1, figures.latency_missing
    );
    Ok(())
}

/// Step 4: `clients` dashboards ask for the overview for `secs`. An
/// overview that fails (after [`API_TIMEOUT`] at most) is counted, and its
/// time kept among the latencies: a failure is never left out of them.
pub async fn api(live: &Live, clients: usize, secs: f64, figures: &mut LiveFigures) -> anyhow::Result<()> {
    let town_url = format!("http://{}/api/v1/indicators?year={CURRENT_YEAR}", live.town.addr);
    let ward_url = format!("{town_url}&ward={OVERVIEW_WARD}");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, town_url, ward_url) = (live.viewer.client()?, town_url.clone(), ward_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut failed = 0;
            let mut last_error = None;
            while Instant::now() < deadline {
                let t = Instant::now();
                let (a, b) = tokio::join!(fetch(&http, &town_url), fetch(&http, &ward_url));
                latencies.push(t.elapsed());
                if let Err(e) = a.and(b) {
                    failed += 1;
                    last_error = Some(e);
                }
            }
            (latencies, failed, last_error)
        }));
    }
    for t in tasks {
        let (latencies, failed, last_error) = t.await?;
        figures.api.extend(latencies);
        figures.api_failed += failed;
        if let Some(e) = last_error {
            eprintln!("  an overview failed: {e:#}");
        }
    }
    figures.api_per_sec = rate(figures.api.len() as u64, started.elapsed());
    let (p50, p99) = figures.api.p50_p99();
    eprintln!("  API overview p50 {p50:.1} / p99 {p99:.1} ms, {:.1}/s, {} failed", figures.api_per_sec, figures.api_failed);
    Ok(())
}

/// One GET, read to the end; fails unless 200.
async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let r = http.get(url).timeout(API_TIMEOUT).send().await.with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        bail!("GET {url} → {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// Step 5: peak memory of the running processes, then stops them all.
pub async fn measure_and_stop(live: Live, figures: &mut LiveFigures) -> anyhow::Result<()> {
    for w in &live.wards {
        figures.rss_wards = figures.rss_wards.max(w.peak_rss()?);
    }
    figures.rss_town = live.town.peak_rss()?;
    figures.rss_province = live.province.peak_rss()?;
    for w in live.wards {
        w.stop().await?;
    }
    live.town.stop().await?;
    live.province.stop().await?;
    Ok(())
}

/// The data dir of ward `ward` in the run.
pub fn ward_dir(scratch: &Scratch, ward: &str) -> PathBuf {
    scratch.path(&format!("ward-{ward}"))
}
