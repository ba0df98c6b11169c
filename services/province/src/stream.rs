//! The province's JetStream objects: the stream of all towns' projections and
//! the province's durable pull consumer on it. The province owns both: it
//! creates them, checks them at every start, and repairs what can be repaired.
//!
//! - Stream `TREEM_PROJECTIONS_<p>` on `treem.v1.projections.<p>.>`: file
//!   storage, limits retention, nothing ever expires or is capped (subjects
//!   are per town, not per town-year, so a per-subject cap would drop other
//!   years), de-duplication window 10 minutes (towns set `Nats-Msg-Id` to
//!   [`TownSnapshot::msg_id`](treem_proto::projection::TownSnapshot::msg_id);
//!   the version rule in the store is what makes duplicates harmless beyond
//!   that window).
//! - Consumer `province-<p>`: durable, pull, explicit ack, deliver all, never
//!   gives up on a message (`max_deliver` unlimited): a message is only ever
//!   settled by the province, either stored or parked.
//!
//! If the stream exists with a storage type or retention policy other than
//! ours (which JetStream cannot change in place) or the consumer with another
//! ack or deliver policy, [`ensure_stream`]/[`ensure_consumer`] fail with a
//! message saying how to fix it; limits, subjects and the replica count
//! (`stream_replicas`: 3 on the cluster of deploy/nats/cluster) that differ
//! are updated.
//!
//! NATS being down at start is normal: [`connect`] retries with [`Backoff`]
//! until it connects or the node shuts down.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use tokio::sync::watch;
use treem_proto::subject;

/// JetStream de-duplication window of the projections stream.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long the server waits for an ack before redelivering.
pub const ACK_WAIT: Duration = Duration::from_secs(60);
/// Most messages in flight to the province at once.
pub const MAX_ACK_PENDING: i64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot look up stream {stream}: {detail}")]
    Lookup { stream: String, detail: String },
    #[error("cannot create stream {stream}: {detail}")]
    Create { stream: String, detail: String },
    #[error("cannot update stream {stream} to the province's settings: {detail}")]
    Update { stream: String, detail: String },
    #[error(
        "stream {stream} exists with {field} {found}, the province needs {wanted}; JetStream cannot change this in place — move the data out and delete the stream (`nats stream rm {stream}`), it is recreated at next start"
    )]
    Incompatible { stream: String, field: &'static str, found: String, wanted: String },
    #[error("cannot look up or create consumer {consumer} on {stream}: {detail}")]
    Consumer { stream: String, consumer: String, detail: String },
    #[error(
        "consumer {consumer} on {stream} exists with {field} {found}, the province needs {wanted}; delete it (`nats consumer rm {stream} {consumer}`) — it is recreated at next start and redelivers everything, which the store ignores as duplicates"
    )]
    IncompatibleConsumer { stream: String, consumer: String, field: &'static str, found: String, wanted: String },
}

/// The stream configuration the province wants.
pub fn stream_config(province: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: subject::province_projections_stream(province),
        description: Some(format!("treem: town projection snapshots for province {province}")),
        subjects: vec![subject::province_projections_filter(province)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: Duration::ZERO,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// The durable consumer configuration the province wants.
pub fn consumer_config(province: &str) -> consumer::pull::Config {
    let name = subject::province_consumer(province);
    consumer::pull::Config {
        durable_name: Some(name.clone()),
        name: Some(name),
        description: Some(format!("treem province {province}: roll-up of town snapshots")),
        filter_subject: subject::province_projections_filter(province),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_deliver: -1,
        max_ack_pending: MAX_ACK_PENDING,
        ..Default::default()
    }
}

/// Exponential backoff from 100 ms to 10 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Backoff::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        d
    }

    pub fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }
}

/// Sleeps `d` unless shutdown is signalled first; returns false on shutdown.
pub async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

/// Connects to `url` as the province's NATS identity (`auth`: its nkey and
/// TLS; empty for the local setup), retrying with backoff while NATS is
/// unreachable. Returns `None` if shutdown is signalled first. Once
/// connected, the client reconnects by itself for the life of the process.
pub async fn connect(
    url: &str,
    auth: &treem_auth::nats::ClientAuth,
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<async_nats::Client> {
    let mut backoff = Backoff::default();
    loop {
        let attempt = match auth.apply(async_nats::ConnectOptions::new()) {
            Ok(options) => {
                let options = options.name(name).connection_timeout(Duration::from_secs(5)).max_reconnects(None);
                tokio::select! {
                    r = options.connect(crate::config::nats_urls(url)) => r.map_err(|e| e.to_string()),
                    _ = shutdown.changed() => return None,
                }
            }
            Err(e) => Err(format!("cannot use the NATS credentials: {e}")),
        };
        match attempt {
            Ok(client) => {
                tracing::info!(nats_url = url, "connected to NATS");
                return Some(client);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(nats_url = url, error = %e, retry_in_ms = delay.as_millis() as u64, "NATS unreachable; will retry");
                if !pause(delay, shutdown).await {
                    return None;
                }
            }
        }
    }
}

fn unlimited(v: i64) -> bool {
    v <= 0
}

/// Creates the projections stream, or checks and updates an existing one.
pub async fn ensure_stream(js: &jetstream::Context, province: &str, replicas: usize) -> Result<jetstream::stream::Stream, StreamError> {
    let wanted = stream_config(province, replicas);
    let name = wanted.name.clone();
    let existing = match js.get_stream(&name).await {
        Ok(s) => s,
        Err(e) => {
            let not_found = matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            );
            if !not_found {
                return Err(StreamError::Lookup { stream: name, detail: e.to_string() });
            }
            let s = js.create_stream(wanted).await.map_err(|e| StreamError::Create { stream: name.clone(), detail: e.to_string() })?;
            tracing::info!(stream = %name, "created projections stream");
            return Ok(s);
        }
    };
    let have = existing.cached_info().config.clone();
    if have.storage != wanted.storage {
        return Err(StreamError::Incompatible {
            stream: name,
            field: "storage",
            found: format!("{:?}", have.storage),
            wanted: format!("{:?}", wanted.storage),
        });
    }
    if have.retention != wanted.retention {
        return Err(StreamError::Incompatible {
            stream: name,
            field: "retention",
            found: format!("{:?}", have.retention),
            wanted: format!("{:?}", wanted.retention),
        });
    }
    let mut differences = Vec::new();
    if have.subjects != wanted.subjects {
        differences.push(format!("subjects {:?}", have.subjects));
    }
    if have.max_age != wanted.max_age {
        differences.push(format!("max_age {:?}", have.max_age));
    }
    if have.duplicate_window != wanted.duplicate_window {
        differences.push(format!("duplicate_window {:?}", have.duplicate_window));
    }
    if have.num_replicas != wanted.num_replicas {
        differences.push(format!("num_replicas {}", have.num_replicas));
    }
    if !unlimited(have.max_messages) || !unlimited(have.max_bytes) || !unlimited(have.max_messages_per_subject) {
        differences.push(format!(
            "limits max_msgs={} max_bytes={} max_msgs_per_subject={}",
            have.max_messages, have.max_bytes, have.max_messages_per_subject
        ));
    }
    if differences.is_empty() {
        return Ok(existing);
    }
    tracing::warn!(stream = %name, differences = %differences.join("; "), "projections stream differs from the province's settings; updating it");
    let updated = stream::Config {
        subjects: wanted.subjects,
        max_age: wanted.max_age,
        duplicate_window: wanted.duplicate_window,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        num_replicas: wanted.num_replicas,
        ..have
    };
    js.update_stream(updated).await.map_err(|e| StreamError::Update { stream: name.clone(), detail: e.to_string() })?;
    js.get_stream(&name).await.map_err(|e| StreamError::Lookup { stream: name, detail: e.to_string() })
}

/// Creates the province's durable consumer, or checks an existing one.
pub async fn ensure_consumer(stream: &jetstream::stream::Stream, province: &str) -> Result<consumer::PullConsumer, StreamError> {
    let wanted = consumer_config(province);
    let name = subject::province_consumer(province);
    let stream_name = subject::province_projections_stream(province);
    let err = |detail: String| StreamError::Consumer { stream: stream_name.clone(), consumer: name.clone(), detail };
    match stream.consumer_info(&name).await {
        Ok(info) => {
            let have = info.config;
            if have.ack_policy != wanted.ack_policy {
                return Err(StreamError::IncompatibleConsumer {
                    stream: stream_name.clone(),
                    consumer: name.clone(),
                    field: "ack_policy",
                    found: format!("{:?}", have.ack_policy),
                    wanted: format!("{:?}", wanted.ack_policy),
                });
            }
            if have.deliver_policy != wanted.deliver_policy {
                return Err(StreamError::IncompatibleConsumer {
                    stream: stream_name.clone(),
                    consumer: name.clone(),
                    field: "deliver_policy",
                    found: format!("{:?}", have.deliver_policy),
                    wanted: format!("{:?}", wanted.deliver_policy),
                });
            }
            if have.deliver_subject.is_some() {
                return Err(StreamError::IncompatibleConsumer {
                    stream: stream_name.clone(),
                    consumer: name.clone(),
                    field: "type",
                    found: "push".into(),
                    wanted: "pull".into(),
                });
            }
        }
        Err(e) if matches!(e.kind(), jetstream::context::ConsumerInfoErrorKind::NotFound) => {
            tracing::info!(stream = %stream_name, consumer = %name, "creating durable consumer");
        }
        Err(e) => {
            let missing = matches!(
                e.kind(),
                jetstream::context::ConsumerInfoErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
            );
            if !missing {
                return Err(err(e.to_string()));
            }
            tracing::info!(stream = %stream_name, consumer = %name, "creating durable consumer");
        }
    }
    // Create-or-update: applies editable settings (filter, ack wait) to an
    // existing consumer and keeps its position.
    stream.create_consumer(wanted).await.map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_settings_come_from_proto() {
        let s = stream_config("70", 1);
        assert_eq!(s.name, "TREEM_PROJECTIONS_70");
        assert_eq!(s.subjects, ["treem.v1.projections.70.>"]);
        assert_eq!(s.max_messages_per_subject, -1);
        assert_eq!(s.duplicate_window, Duration::from_secs(600));
        let c = consumer_config("70");
        assert_eq!(c.durable_name.as_deref(), Some("province-70"));
        assert_eq!(c.ack_policy, consumer::AckPolicy::Explicit);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(&delays[..4], [100, 200, 400, 800]);
        assert_eq!(delays[9], 10_000);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
