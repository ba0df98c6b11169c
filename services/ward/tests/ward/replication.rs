//! Replication to a real nats-server: events recorded while NATS is down
//! reach the town's stream, in order, exactly once, after NATS comes up;
//! a restarted node resumes from its durable acknowledged seq.

use std::time::Duration;

use futures::StreamExt;
use treem_proto::Envelope;

use crate::common::{NatsServer, config, create_town_stream, free_port, observation, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_offline_reach_the_town_in_order_once() {
    crate::common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut cfg = config(dir.path(), &url);
    cfg.max_in_flight = 64;

    // NATS is down: recording works, nothing is acknowledged.
    let node = treem_ward::start(cfg.clone()).await.unwrap();
    let appends: Vec<_> = (0..10u64)
        .map(|t| {
            let log = node.log.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    log.append("officer-1", observation(t * 50 + i)).await.unwrap();
                }
            })
        })
        .collect();
    for a in appends {
        a.await.unwrap();
    }
    assert_eq!(node.log.last_seq(), 500);
    let log = node.log.clone();
    wait_until("the replicator to note that NATS is unreachable", Duration::from_secs(20), || {
        let log = log.clone();
        async move { log.status().unwrap().last_error.is_some() }
    })
    .await;
    let status = node.log.status().unwrap();
    assert_eq!((status.acked_seq, status.pending), (0, 500));
    assert!(status.last_sync_at.is_none());

    // NATS comes up on the configured port, but the town has not created
    // its stream yet: still nothing acknowledged, and the ward says why.
    let nats = NatsServer::start_on(port, store.path());
    wait_until("the replicator to find no stream", Duration::from_secs(20), || {
        let log = log.clone();
        async move { log.status().unwrap().last_error.is_some_and(|e| e.contains("TREEM_EVENTS_70_690 does not exist yet")) }
    })
    .await;
    assert_eq!(node.log.acked_seq().unwrap(), 0);

    // The town creates its stream.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = create_town_stream(&js).await;

    // The sync time is noted right after the acknowledged position is stored.
    wait_until("the town to acknowledge all 500 events and the sync to be noted", Duration::from_secs(60), || {
        let log = log.clone();
        async move { log.acked_seq().unwrap() == 500 && log.status().unwrap().last_sync_at.is_some() }
    })
    .await;
    let status = node.log.status().unwrap();
    assert_eq!(status.pending, 0);
    assert!(status.last_sync_at.is_some());
    assert!(status.last_error.is_none(), "a successful sync clears the last error");

    assert_eq!(stream.info().await.unwrap().state.messages, 500);
    for seq in 1..=500u64 {
        let msg = stream.get_raw_message(seq).await.unwrap();
        let env = Envelope::decode(&msg.payload).unwrap();
        assert_eq!(env.seq, seq, "stream order is ward order");
        assert_eq!(msg.subject.as_str(), format!("treem.v1.events.70.690.25320.indicator.observed"));
        assert_eq!(msg.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(env.id.to_string().as_str()));
    }

    // Restart: nothing is published again; the next event continues at 501.
    drop(log);
    node.shutdown().await;
    let mut watch = client.subscribe("treem.v1.events.70.690.>").await.unwrap();
    client.flush().await.unwrap();
    let node = treem_ward::start(cfg).await.unwrap();
    assert_eq!(node.log.acked_seq().unwrap(), 500, "acked_seq is durable");
    let env = node.log.append("officer-1", observation(9)).await.unwrap();
    assert_eq!(env.seq, 501);
    let log = node.log.clone();
    wait_until("the town to acknowledge seq 501", Duration::from_secs(30), || {
        let log = log.clone();
        async move { log.acked_seq().unwrap() == 501 }
    })
    .await;
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next()).await.unwrap().unwrap();
    // The ward publishes in seq order from acked_seq + 1: had it published
    // any of 1..=500 again, that would have arrived before 501.
    assert_eq!(Envelope::decode(&first.payload).unwrap().seq, 501, "the restarted node published only the new event");
    assert_eq!(stream.info().await.unwrap().state.messages, 501);
    drop(log);
    node.shutdown().await;
}
