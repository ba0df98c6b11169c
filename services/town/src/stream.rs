//! The town's JetStream stream of ward events and its durable pull consumer.
//!
//! The stream keeps every ward event on file storage with no age limit:
//! wards may be offline for weeks, and `rebuild` replays it from the start.
//! Its de-duplication window (`Nats-Msg-Id`) is a first line only; the fold
//! de-duplicates by ward `seq` whatever the window (DESIGN.md §3.2).

use std::time::Duration;

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, consumer, stream};
use treem_proto::subject;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot create or check stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error("cannot create or check consumer {consumer} on {stream}: {detail}")]
    Consumer { stream: String, consumer: String, detail: String },
}

pub fn stream_config(config: &Config) -> stream::Config {
    stream::Config {
        name: subject::town_events_stream(&config.province, &config.town),
        subjects: vec![subject::town_events_filter(&config.province, &config.town)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::ZERO,
        duplicate_window: Duration::from_secs(config.duplicate_window_secs),
        // 3 on the cluster of deploy/nats/cluster: an ack then means a
        // quorum (2 of 3 nodes) holds the event, and the stream survives the
        // loss of any one node. The consumer inherits it (0 = as the stream).
        num_replicas: config.stream_replicas,
        // Wards read the newest message on their own subjects by direct get
        // (its subject form names the filter, which a ward's NATS
        // permissions pin to its own subjects; ward reconcile.rs).
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates the stream, or brings an existing one to our configuration.
pub async fn ensure_stream(js: &jetstream::Context, config: &Config) -> Result<stream::Stream, StreamError> {
    let wanted = stream_config(config);
    let name = wanted.name.clone();
    let err = |e: &dyn std::fmt::Display| StreamError::Stream { stream: name.clone(), detail: e.to_string() };
    match js.get_stream(&name).await {
        Ok(mut s) => {
            let info = s.info().await.map_err(|e| err(&e))?;
            let have = &info.config;
            if have.subjects != wanted.subjects
                || have.duplicate_window != wanted.duplicate_window
                || have.max_age != wanted.max_age
                || have.num_replicas != wanted.num_replicas
                || have.allow_direct != wanted.allow_direct
            {
                js.update_stream(wanted.clone()).await.map_err(|e| err(&e))?;
            }
            ensure_ward_probes(&s, config).await?;
            Ok(s)
        }
        Err(_) => {
            let s = js.get_or_create_stream(wanted.clone()).await.map_err(|e| err(&e))?;
            ensure_ward_probes(&s, config).await?;
            Ok(s)
        }
    }
}

/// Creates (or leaves as they are) the probe consumers of the town's wards:
/// one durable pull consumer per ward, `ward-<ward>-probe`, filtered on that
/// ward's subjects, acknowledging nothing. A ward resets its own and pulls
/// one message to check what the stream still holds of it
/// (services/ward/src/reconcile.rs). The town makes them so that a ward's
/// NATS identity needs no right to create consumers — a create request's
/// body (its deliver subject above all) is beyond what permissions can
/// check (SECURITY.md, "NATS identities and TLS").
pub async fn ensure_ward_probes(stream: &stream::Stream, config: &Config) -> Result<(), StreamError> {
    let hierarchy =
        config.hierarchy().map_err(|e| StreamError::Stream { stream: stream.cached_info().config.name.clone(), detail: e.to_string() })?;
    let Ok(town) = hierarchy.town(&config.province, &config.town) else { return Ok(()) };
    for ward in &town.wards {
        let name = subject::ward_probe_consumer(&ward.code);
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("treem: ward {} reconciles against the stream with it", ward.code)),
                filter_subject: subject::ward_events_filter(&config.province, &config.town, &ward.code),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::None,
                // As the stream (3 on the cluster): a ward can reconcile
                // whichever one node is down.
                num_replicas: 0,
                ..Default::default()
            })
            .await
            .map_err(|e| StreamError::Consumer {
                stream: stream.cached_info().config.name.clone(),
                consumer: name.clone(),
                detail: e.to_string(),
            })?;
    }
    Ok(())
}

/// (Re)creates the town's durable pull consumer so that it starts right
/// after `committed`, the last stream sequence whose effect is in the town
/// store. The store, not the server, holds the position (committed
/// atomically with the projection), so after a crash the messages that
/// were delivered but not acknowledged come again at once instead of after
/// the ack wait, and nothing before `committed` is delivered twice.
///
/// `received`: when the server gives no answer about the old consumer (a
/// cluster that cannot elect the consumer's leader, seen for 30 s after a
/// node and the stream leader died), the position up to which this
/// process received and acknowledged every message since it last created
/// the consumer (`consumer::Received`), if it knows one; the consumer is
/// then deleted and created after that position. Without it the session
/// fails and asks again. Returns the consumer and the stream sequence it
/// starts after.
pub async fn ensure_consumer(
    stream: &stream::Stream,
    config: &Config,
    committed: u64,
    received: Option<u64>,
) -> Result<(consumer::Consumer<consumer::pull::Config>, u64), StreamError> {
    let name = subject::town_consumer(&config.town);
    let err = |e: &dyn std::fmt::Display| StreamError::Consumer {
        stream: subject::town_events_stream(&config.province, &config.town),
        consumer: name.clone(),
        detail: e.to_string(),
    };
    // Start from the old consumer's ack floor if it is lower: every message
    // up to it has its effect in the store (acks follow the commit), but one
    // above it may have been delivered and lost with its connection while
    // later ones arrived and were committed. What comes again is skipped by seq.
    let committed = match stream.consumer_info(&name).await {
        Ok(old) => {
            stream.delete_consumer(&name).await.map_err(|e| err(&e))?;
            committed.min(old.ack_floor.stream_sequence)
        }
        Err(e) if matches!(e.kind(), ConsumerInfoErrorKind::NotFound) => committed,
        // No answer about it (timed out, no responders, unavailable: a
        // cluster electing leaders after a node died): its ack floor is
        // unknown, and a create over it fails ("start sequence can not be
        // updated"). What this process received without a gap is as good a
        // floor; without one the session starts over and asks again.
        Err(e) => match received {
            Some(received) => {
                tracing::warn!(error = %e, received, "no answer about the town's consumer; deleting it and starting after what this process received");
                match stream.delete_consumer(&name).await {
                    Ok(_) => {}
                    Err(d) if matches!(d.kind(), ConsumerErrorKind::JetStream(j) if j.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND) =>
                        {}
                    Err(d) => return Err(err(&d)),
                }
                committed.min(received)
            }
            None => return Err(err(&e)),
        },
    };
    // A stream that lost its tail (a power cut at the server before its
    // periodic fsync, or a restored older store) ends before what we
    // committed; new ward events will be stored from its new end on, so
    // start there. Events the town applied twice over are skipped by seq,
    // and wards re-send what the stream lost (ward reconcile).
    let last = stream.get_info().await.map_err(|e| err(&e))?.state.last_sequence;
    let committed = if committed > last {
        tracing::warn!(
            committed,
            stream_last = last,
            "the ward stream ends before the town's position: it lost messages; resuming at its end"
        );
        last
    } else {
        committed
    };
    let deliver_policy = match committed {
        0 => consumer::DeliverPolicy::All,
        n => consumer::DeliverPolicy::ByStartSequence { start_sequence: n + 1 },
    };
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 100_000,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map(|c| (c, committed))
        .map_err(|e| err(&e))
}
