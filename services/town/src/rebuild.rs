//! `rebuild`: replays the ward event stream from its first message into a
//! fresh store with the same fold, and compares its views with the live
//! store's. Projections are a pure fold (invariant 3), so the two must be
//! equal once both have read the same messages.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::{Value, json};
use treem_proto::event::{FIRST_YEAR, LAST_YEAR};

use crate::fold::Ctx;
use crate::projection::{cases, indicators};
use crate::store::{self, TownStore};
use crate::{config::Config, keys, stream};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("{0}")]
    Stream(#[from] stream::StreamError),
    #[error("reading the stream failed: {0}")]
    Read(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// Every view a reader can see, as one JSON value, for comparisons.
pub fn views(store: &TownStore, ctx: &Ctx, wards: &[String]) -> Value {
    let mut years = serde_json::Map::new();
    for year in FIRST_YEAR..=LAST_YEAR {
        let f = indicators::figures(&store.tree, &ctx.catalogue, wards, year);
        let mut per_ward = serde_json::Map::new();
        for w in wards {
            per_ward.insert(w.clone(), json!(cases::summary(&store.tree, year, Some(w))));
        }
        years.insert(year.to_string(), json!({ "figures": f, "cases": cases::summary(&store.tree, year, None), "ward_cases": per_ward }));
    }
    let positions: serde_json::Map<String, Value> = wards
        .iter()
        .map(|w| {
            let pos = store.tree.get(keys::pos(w)).ok().flatten().map(|v| keys::u64_of(&v)).unwrap_or(0);
            (w.clone(), json!(pos))
        })
        .collect();
    let parked: Vec<Value> = store.parked().into_iter().map(|p| json!([p.subject, p.reason])).collect();
    json!({ "years": years, "positions": positions, "parked": parked })
}

/// Replays the whole stream into a new store at `into` (which must not hold one).
/// Returns the store and the number of messages read.
pub async fn rebuild_into(js: &jetstream::Context, config: &Config, ctx: &Ctx, into: &Path) -> Result<(TownStore, u64), RebuildError> {
    let store = TownStore::open_with_cache(into, config.store_cache_mb << 20)?;
    let mut s = stream::ensure_stream(js, config).await?;
    let last = s.info().await.map_err(|e| RebuildError::Read(e.to_string()))?.state.last_sequence;
    if last == 0 {
        return Ok((store, 0));
    }
    let consumer = s
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| RebuildError::Read(e.to_string()))?;
    // Batches are fetched by a task of their own while the one before is
    // folded here, in order; and each batch is prepared (decoding, hashes,
    // signatures: store-free, on every core) while the one before commits,
    // as the live consumer does.
    let (tx, mut batches) = tokio::sync::mpsc::channel(1);
    let fetcher = tokio::spawn(fetch_all(consumer, config.batch_size, last, tx));
    let mut read = 0u64;
    let result = async {
        let Some(first) = batches.recv().await.transpose()? else { return Ok(()) };
        let prepared = store::prepare_batch(ctx, &first);
        let mut pending = Some((first, prepared));
        while let Some((input, prepared)) = pending.take() {
            let next = batches.recv().await.transpose()?;
            read += input.len() as u64;
            let next_prepared = std::thread::scope(|s| {
                let preparing = next.as_ref().map(|n| s.spawn(|| store::prepare_batch(ctx, n)));
                // Made durable once, at the end: a rebuild cut short starts over.
                let committed = store.commit_prepared_batch(ctx, &input, prepared);
                let next_prepared = preparing.map(|p| p.join().expect("a batch's preparation does not panic"));
                committed.map(|_| next_prepared)
            })?;
            pending = next.zip(next_prepared);
        }
        Ok::<(), RebuildError>(())
    }
    .await;
    fetcher.abort();
    result?;
    store.sync()?;
    Ok((store, read))
}

/// Messages as [`TownStore::apply_batch`] takes them.
type Batch = Vec<crate::store::Input>;

/// Fetches every message up to stream sequence `last` into `tx`, in order,
/// as `(subject, payload, stream_seq)` batches; a failure is sent last.
async fn fetch_all(
    consumer: consumer::Consumer<consumer::pull::Config>,
    batch_size: usize,
    last: u64,
    tx: tokio::sync::mpsc::Sender<Result<Batch, RebuildError>>,
) {
    let mut reached = 0u64;
    while reached < last {
        let batch = async {
            let mut batch = consumer
                .fetch()
                .max_messages(batch_size)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .map_err(|e| RebuildError::Read(e.to_string()))?;
            let mut input = Vec::new();
            while let Some(m) = batch.next().await {
                let m = crate::store::input_of(&m.map_err(|e| RebuildError::Read(e.to_string()))?);
                reached = reached.max(m.2);
                input.push(m);
            }
            Ok(input)
        }
        .await;
        let failed = batch.is_err();
        if matches!(&batch, Ok(input) if input.is_empty()) {
            continue;
        }
        if tx.send(batch).await.is_err() || failed {
            return;
        }
    }
}
