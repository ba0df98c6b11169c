//! The one table of a run: stage | treem figure | raw limit measured in the
//! same run | ratio | goal | met?, built from every stage's figures, plus
//! the machine and the failures of stages that did not run to the end.

use std::fmt::Write as _;

use serde::Serialize;

use super::Options;
use super::disk::{BATCH, DiskFigures, WRITERS};
use super::jetstream::{IN_FLIGHT, Replication};
use super::postgres::PgFigures;
use super::scale::{ScaleFigures, Setup};
use super::stats::{Cpu, Latencies, cores, count, num, rate};
use super::system::LiveFigures;
use super::town::StreamFigures;

/// Every figure of a run, by stage group (`None`: the group failed or was not run).
#[derive(Debug, Default)]
pub struct Figures {
    pub disk: Option<DiskFigures>,
    pub replication: Option<Replication>,
    pub live: Option<LiveFigures>,
    pub stream: Option<StreamFigures>,
    pub ward_memory: Option<(u64, u64)>,
    pub postgres: Option<PgFigures>,
    pub scale: Vec<ScaleFigures>,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub stage: String,
    pub treem: String,
    pub raw: String,
    pub ratio: Option<f64>,
    pub goal: String,
    pub met: Option<bool>,
    /// The row's main figure; positive when the stage ran.
    pub figure: f64,
}

impl Row {
    /// treem's rate against a raw rate, with a goal as a share of it (`None`: no goal).
    fn rate(stage: String, treem: f64, raw_label: &str, raw: f64, goal: Option<f64>) -> Row {
        let ratio = treem / raw.max(f64::MIN_POSITIVE);
        Row {
            stage,
            treem: format!("{}/s", num(treem)),
            raw: format!("{raw_label}: {}/s", num(raw)),
            ratio: Some(ratio),
            goal: goal.map_or("—".into(), |g| format!("≥ {:.0} % of raw", g * 100.0)),
            met: goal.map(|g| ratio >= g),
            figure: treem,
        }
    }

    /// p50/p99 latencies against a p99 limit in ms (`None`: no limit).
    fn latency(stage: String, l: &Latencies, extra: &str, raw: String, limit_ms: Option<f64>) -> Row {
        let (p50, p99) = l.p50_p99();
        Row {
            stage,
            treem: format!("p50 {} ms, p99 {} ms{extra}", num(p50), num(p99)),
            raw,
            ratio: None,
            goal: limit_ms.map_or("—".into(), |m| format!("p99 < {} ms", num(m))),
            met: limit_ms.map(|m| p99 < m),
            figure: p99,
        }
    }

    /// Peak memory against a limit in MB (`None`: no limit).
    fn memory(stage: &str, bytes: u64, limit_mb: Option<f64>) -> Row {
        let mb = bytes as f64 / 1e6;
        Row {
            stage: stage.into(),
            treem: format!("{} MB", num(mb)),
            raw: "—".into(),
            ratio: None,
            goal: limit_mb.map_or("—".into(), |m| format!("< {m:.0} MB")),
            met: limit_mb.map(|m| mb < m),
            figure: mb,
        }
    }

    fn info(stage: String, treem: String, raw: String, figure: f64) -> Row {
        Row { stage, treem, raw, ratio: None, goal: "—".into(), met: None, figure }
    }
}

/// A run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: String,
    pub rows: Vec<Row>,
    /// Stages that failed, with the error.
    pub failures: Vec<String>,
}

impl Report {
    pub fn new(machine: String) -> Report {
        Report { machine, rows: Vec::new(), failures: Vec::new() }
    }

    /// The table as Markdown, with the machine and any failures under it.
    pub fn table(&self) -> String {
        let mut out =
            String::from("| stage | treem | raw limit (same run) | ratio | goal | met? |\n| --- | --- | --- | --- | --- | --- |\n");
        for r in &self.rows {
            let ratio = r.ratio.map_or("—".into(), |x| format!("{:.0} %", x * 100.0));
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(out, "| {} | {} | {} | {ratio} | {} | {met} |", r.stage, r.treem, r.raw, r.goal);
        }
        let _ = writeln!(out, "\nMachine: {}", self.machine);
        for f in &self.failures {
            let _ = writeln!(out, "\nFAILED: {f}");
        }
        out
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{} s", num(d.as_secs_f64()))
}

/// The rows of every figure that was measured.
pub fn rows(opts: &Options, f: &Figures) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(d) = &f.disk {
        rows.push(Row::rate(
            "ward: durable records/s, 1 writer".into(),
            d.ward_1,
            "sled insert+flush+fdatasync, each",
            d.sled_1,
            Some(0.8),
        ));
        rows.push(Row::rate(
            format!("ward: durable records/s, {WRITERS} writers"),
            d.ward_16,
            &format!("sled per {BATCH}"),
            d.sled_100,
            Some(0.5),
        ));
        rows.push(Row::rate(
            format!("ward: durable records/s, batches of {BATCH} (CSV import)"),
            d.ward_batch_100,
            &format!("sled per {BATCH}"),
            d.sled_100,
            None,
        ));
        rows.push(Row::info(
            "disk: write+fdatasync (1 per sync / per 100)".into(),
            "—".into(),
            format!("{}/s / {}/s of {} B records", num(d.write_1), num(d.write_100), d.payload_bytes),
            d.write_1,
        ));
        let (ward_us, _) = d.cpu_ward_16.per_event_us(d.records_ward_16);
        let signing_us = d.cpu_signing.per_event_us(d.signed).0;
        rows.push(Row::info(
            format!("ward: CPU per record, {WRITERS} writers; signing alone ({} cores)", cores()),
            format!("{} µs ({} cores busy)", num(ward_us), num(d.cpu_ward_16.cores().0)),
            format!(
                "ed25519 signing as the ward signs a record, every core: {}/s, {} µs of CPU each",
                num(rate(d.signed, d.cpu_signing.wall)),
                num(signing_us)
            ),
            ward_us,
        ));
    }
    if let Some(r) = &f.replication {
        rows.push(Row::rate(
            format!("ward → town replication, events/s (backlog of {})", count(r.events)),
            r.ward,
            &format!("JetStream publish, Nats-Msg-Id, {IN_FLIGHT} in flight"),
            r.raw,
            Some(0.6),
        ));
    }
    if let Some(s) = &f.stream {
        rows.push(Row::rate(
            format!("town: events applied/s from a full stream ({}), durably", count(s.messages)),
            s.town_apply,
            "pull fetch + explicit ack",
            s.raw_consume_ack,
            Some(0.5),
        ));
    }
    if let (Some(l), Some(s)) = (&f.live, &f.stream) {
        let slower = f.replication.map_or(s.raw_consume_ack, |r| r.raw.min(s.raw_consume_ack));
        let bound = l.events as f64 / slower;
        let treem = l.catch_up.as_secs_f64();
        rows.push(Row {
            stage: format!("catch-up: {} wards × {} unsynced events → town complete", opts.wards, count(opts.per_ward)),
            treem: format!(
                "{} ({} stalled fetches, {} events held behind a gap)",
                secs(l.catch_up),
                l.catch_up_stalls,
                count(l.catch_up_held as u64)
            ),
            raw: format!("{} s at the slower raw rate ({}/s)", num(bound), num(slower)),
            ratio: Some(bound / treem),
            goal: "within 2× of raw".into(),
            met: Some(treem <= 2.0 * bound),
            figure: treem,
        });
    }
    if let Some(s) = &f.stream {
        rows.push(Row::rate(
            "projection rebuild from the stream, events/s".into(),
            s.rebuild,
            "pull fetch, no ack",
            s.raw_consume_no_ack,
            Some(0.5),
        ));
    }
    if let Some(s) = &f.stream {
        let cpu = |label: &str, c: &Cpu| {
            let ((p, n), (pc, nc)) = (c.per_event_us(s.messages), c.cores());
            format!("{label} {} + nats-server {} µs ({} + {} cores busy)", num(p), num(n), num(pc), num(nc))
        };
        rows.push(Row::info(
            format!("CPU per event over the full stream ({} cores)", cores()),
            format!("{}; {}", cpu("apply: town", &s.cpu_apply), cpu("rebuild:", &s.cpu_rebuild)),
            format!("{}; {}", cpu("fetch + ack: client", &s.cpu_raw_ack), cpu("no ack: client", &s.cpu_raw_no_ack)),
            s.cpu_apply.per_event_us(s.messages).0,
        ));
    }
    if let Some(s) = f.stream.as_ref().filter(|s| s.rebuild_in_order.commit > std::time::Duration::ZERO) {
        let per_event = |d: std::time::Duration| d.as_secs_f64() * 1e6 / s.messages.max(1) as f64;
        let (fold, commit) = (per_event(s.rebuild_in_order.fold), per_event(s.rebuild_in_order.commit));
        rows.push(Row::info(
            "rebuild: in-order time per event (one thread)".into(),
            format!(
                "fold {} µs + sled `apply_batch` {} µs = {} µs of the rebuild's {} µs per event",
                num(fold),
                num(commit),
                num(fold + commit),
                num(1e6 / s.rebuild.max(f64::MIN_POSITIVE))
            ),
            "—".into(),
            fold + commit,
        ));
    }
    if let Some(s) = f.stream.as_ref().filter(|s| s.signatures.checked > 0) {
        let g = &s.signatures;
        rows.push(Row::info(
            "town: the stream's signatures checked alone (ed25519, every event has one), per s".into(),
            "—".into(),
            format!(
                "`verify_all` in shares of batches of {} on {} cores: {}/s, {} µs of CPU each",
                count(treem_town::Config::default().batch_size as u64),
                g.cores,
                num(g.rate()),
                num(g.cpu.per_event_us(g.checked).0)
            ),
            g.rate(),
        ));
    }
    if let Some(l) = f.live.as_ref().filter(|l| !l.latency_town.is_empty()) {
        let extra = if l.latency_missing > 0 { format!(" ({} events never seen)", l.latency_missing) } else { String::new() };
        let rate = format!("at {}/s recorded over HTTP", num(l.latency_rate));
        rows.push(Row::latency("latency: record → visible at the town".into(), &l.latency_town, &extra, rate.clone(), Some(100.0)));
        rows.push(Row::latency("latency: record → visible at the province".into(), &l.latency_province, &extra, rate, Some(500.0)));
    }
    if let Some(l) = f.live.as_ref().filter(|l| !l.api.is_empty()) {
        let failed = if l.api_failed > 0 { format!(", {} failed or timed out", l.api_failed) } else { String::new() };
        rows.push(Row::latency(
            format!("town API: indicator overview (town + 1 ward, 1 year), {} clients", opts.api_clients),
            &l.api,
            &format!(", {} overviews/s{failed}", num(l.api_per_sec)),
            format!("over {} events", count(l.events)),
            Some(10.0),
        ));
    }
    if let Some((idle, recording)) = f.ward_memory {
        rows.push(Row::memory("memory: ward idle (peak RSS)", idle, Some(30.0)));
        rows.push(Row::memory(&format!("memory: ward recording {} events over HTTP", opts.rss_records), recording, None));
    }
    if let Some(l) = f.live.as_ref().filter(|l| l.rss_town > 0) {
        rows.push(Row::memory(&format!("memory: ward after catching up {} events and recording", count(opts.per_ward)), l.rss_wards, None));
    }
    if let Some(s) = &f.stream {
        rows.push(Row::memory(&format!("memory: town after applying {} events", count(s.messages)), s.rss_town_applied, Some(200.0)));
    }
    if let Some(l) = f.live.as_ref().filter(|l| l.rss_town > 0) {
        rows.push(Row::memory("memory: town after catch-up, latency and API stages", l.rss_town, None));
        rows.push(Row::memory("memory: province", l.rss_province, None));
    }
    if let Some(p) = &f.postgres {
        let pg = format!("PostgreSQL {}", p.version);
        if let Some(d) = &f.disk {
            rows.push(Row::rate(
                "vs PostgreSQL: insert 1 event/txn, 1 client (treem: ward, 1 writer)".into(),
                d.ward_1,
                &pg,
                p.insert_1,
                None,
            ));
            rows.push(Row::rate(
                format!("vs PostgreSQL: insert 1 event/txn, 16 clients (treem: {WRITERS} writers)"),
                d.ward_16,
                &pg,
                p.insert_16,
                None,
            ));
            rows.push(Row::rate(
                format!("vs PostgreSQL: insert {BATCH} events/txn (treem: batches of {BATCH})"),
                d.ward_batch_100,
                &pg,
                p.insert_batch,
                None,
            ));
        } else {
            rows.push(Row::info(
                "PostgreSQL: insert 1 event/txn, 1 / 16 clients".into(),
                "—".into(),
                format!("{}/s / {}/s", num(p.insert_1), num(p.insert_16)),
                p.insert_1,
            ));
        }
        rows.push(Row::info(
            format!("PostgreSQL: COPY-load of the catch-up's {} events", count(p.loaded)),
            "—".into(),
            format!("{}/s", num(p.load_rate)),
            p.load_rate,
        ));
        let (q50, q99) = p.query.p50_p99();
        let treem = f.live.as_ref().filter(|l| !l.api.is_empty()).map(|l| l.api.p50_p99());
        rows.push(Row {
            stage: format!("vs PostgreSQL: overview as SQL, {} clients", opts.api_clients),
            treem: treem.map_or("—".into(), |(a, b)| format!("p50 {} ms, p99 {} ms", num(a), num(b))),
            raw: format!("{pg}: p50 {} ms, p99 {} ms, {}/s", num(q50), num(q99), num(p.query_per_sec)),
            ratio: None,
            goal: "—".into(),
            met: None,
            figure: q99,
        });
    }
    for s in &f.scale {
        let (p50, p99) = s.probes.p50_p99();
        rows.push(Row::info(
            format!("scale: {} — one-month backlog, {} events", s.name, count(s.events)),
            format!("towns applied {}/s (all done in {}); wards published {}/s", num(s.town_rate), secs(s.towns_done), num(s.publish_rate)),
            "—".into(),
            s.town_rate,
        ));
        rows.push(Row::info(
            format!("scale: {} — province roll-up", s.name),
            format!("complete {} after the last town; live p50 {} ms, p99 {} ms", secs(s.rollup_after_towns), num(p50), num(p99)),
            "—".into(),
            s.rollup_done.as_secs_f64(),
        ));
        let needed = (s.wards as u64 * s.per_day) as f64;
        let whose = match s.setup {
            Setup::Single => "one server's",
            Setup::Cluster => "the R3 cluster's",
        };
        rows.push(Row::info(
            format!("scale: {} — {whose} headroom", s.name),
            format!(
                "sustains {} events/day, i.e. {} communes at {}/day each; the communes record {}/day (×{} headroom); \
                 a month offline everywhere catches up in {}; CPU over those {}: services + wards {}, nats-server{} {} ({} cores)",
                num(s.per_day_capacity),
                num(s.communes_capacity()),
                s.per_day,
                num(needed),
                num(s.per_day_capacity / needed.max(1.0)),
                secs(s.rollup_done),
                secs(s.timed),
                secs(s.cpu_services),
                if s.setup == Setup::Cluster { "s" } else { "" },
                secs(s.cpu_nats),
                std::thread::available_parallelism().map_or(0, |n| n.get()),
            ),
            "—".into(),
            s.per_day_capacity,
        ));
        // The same scenario on both setups: what the three replicas cost.
        let one = f.scale.iter().find(|o| o.setup == Setup::Single && o.scenario == s.scenario && o.events == s.events);
        if let (Setup::Cluster, Some(one)) = (s.setup, one) {
            let c = s;
            let (c50, c99) = c.probes.p50_p99();
            let (o50, o99) = one.probes.p50_p99();
            rows.push(Row {
                stage: format!("scale: {} — R3 cluster vs one nats-server", c.name),
                treem: format!(
                    "towns applied {}/s; roll-up complete {} after the last town; live p50 {} ms, p99 {} ms",
                    num(c.town_rate),
                    secs(c.rollup_after_towns),
                    num(c50),
                    num(c99)
                ),
                raw: format!(
                    "one nats-server: {}/s; {}; p50 {} ms, p99 {} ms",
                    num(one.town_rate),
                    secs(one.rollup_after_towns),
                    num(o50),
                    num(o99)
                ),
                ratio: Some(c.town_rate / one.town_rate.max(f64::MIN_POSITIVE)),
                goal: "—".into(),
                met: None,
                figure: c.town_rate,
            });
        }
    }
    rows
}
