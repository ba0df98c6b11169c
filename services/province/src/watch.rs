//! `treem-province watch`: a live view of the towns' snapshots as they arrive.
//!
//! Reads the projections stream through an ephemeral *ordered* consumer (no
//! durable state, nothing acknowledged, the province's own consumer is not
//! touched), starting with the latest message of every town and then every
//! new one. Prints one line per town-year snapshot:
//!
//! ```text
//! town=690 year=2025 version=7 produced_at=2025-03-01T02:00:00Z 1=2/6 4a=7/100
//! ```
//!
//! and, for a message the province would park, a `refused` line with the
//! reason. The stream is created by `treem-province serve`; watching before
//! it exists is an error that says so.

use std::future::Future;
use std::io::Write;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use treem_proto::projection::TownSnapshot;
use treem_proto::subject;

use crate::config::{Config, ConfigError};
use crate::intake;

/// Indicators shown when none are asked for (those present in a snapshot):
/// child-friendly wards (1), underweight under-5s (4a), abuse (9), child
/// marriage (13), play spaces (21).
pub const KEY_CODES: [&str; 5] = ["1", "4a", "9", "13", "21"];

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Indicator codes to print; empty means [`KEY_CODES`].
    pub codes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot connect to NATS at {url}: {detail}; check nats_url / --nats-url and that nats-server runs")]
    Connect { url: String, detail: String },
    #[error("stream {stream} does not exist on this NATS; start `treem-province serve` first, it creates the stream")]
    NoStream { stream: String },
    #[error("cannot read stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Prints every snapshot arriving on the province's projections stream to
/// `out` until `stop` completes. See the module docs.
pub async fn watch<W: Write>(config: &Config, out: W, stop: impl Future<Output = ()>) -> Result<(), WatchError> {
    watch_with(config, &WatchOptions::default(), out, stop).await
}

/// [`watch`] with options.
pub async fn watch_with<W: Write>(
    config: &Config,
    options: &WatchOptions,
    mut out: W,
    stop: impl Future<Output = ()>,
) -> Result<(), WatchError> {
    let hierarchy = config.hierarchy()?;
    let stream_name = subject::province_projections_stream(&config.province);
    let client = config
        .nats_auth()
        .apply(async_nats::ConnectOptions::new())
        .map_err(|e| WatchError::Connect { url: config.nats_url.clone(), detail: e.to_string() })?
        .name(format!("treem-province-watch-{}", config.province))
        .connect(crate::config::nats_urls(&config.nats_url))
        .await
        .map_err(|e| WatchError::Connect { url: config.nats_url.clone(), detail: e.to_string() })?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&stream_name).await.map_err(|e| {
        if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j) if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
        {
            WatchError::NoStream { stream: stream_name.clone() }
        } else {
            WatchError::Stream { stream: stream_name.clone(), detail: e.to_string() }
        }
    })?;
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject::province_projections_filter(&config.province),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| WatchError::Stream { stream: stream_name.clone(), detail: e.to_string() })?;
    let mut messages = ordered.messages().await.map_err(|e| WatchError::Stream { stream: stream_name.clone(), detail: e.to_string() })?;
    let codes: Vec<String> =
        if options.codes.is_empty() { KEY_CODES.iter().map(|c| c.to_string()).collect() } else { options.codes.clone() };
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            m = messages.next() => m,
            _ = &mut stop => return Ok(()),
        };
        match next {
            None => return Err(WatchError::Stream { stream: stream_name, detail: "the subscription ended".into() }),
            Some(Err(e)) => tracing::warn!(stream = %stream_name, error = %e, "watch interrupted; resuming"),
            Some(Ok(m)) => {
                let line = match intake::examine(&config.province, &hierarchy, &m.subject, &m.payload) {
                    Ok(snap) => format_snapshot(&snap, &codes),
                    Err(reason) => format!("refused subject={} reason={reason}", m.subject),
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
    }
}

/// One line for one snapshot: town, year, version, and the chosen indicators
/// the snapshot carries, as `numerator/denominator`.
pub fn format_snapshot(snap: &TownSnapshot, codes: &[String]) -> String {
    let mut line = format!(
        "town={} year={} version={} produced_at={}",
        snap.town,
        snap.year,
        snap.version,
        snap.produced_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for code in codes {
        if let Some(f) = snap.indicators.get(code) {
            line.push_str(&format!(" {code}={}/{}", f.numerator, f.denominator));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use treem_proto::judge::Fraction;

    #[test]
    fn a_line_shows_the_key_figures_present() {
        let snap = TownSnapshot {
            province: "70".into(),
            town: "690".into(),
            year: 2025,
            version: 7,
            produced_at: "2025-03-01T02:00:00Z".parse().unwrap(),
            wards_total: 6,
            indicators: [("4a".to_string(), Fraction { numerator: 7, denominator: 100 })].into(),
            wards: Default::default(),
            cases_counted: Default::default(),
            suppressed: Default::default(),
        };
        let codes: Vec<String> = KEY_CODES.iter().map(|c| c.to_string()).collect();
        assert_eq!(format_snapshot(&snap, &codes), "town=690 year=2025 version=7 produced_at=2025-03-01T02:00:00Z 4a=7/100");
    }
}
