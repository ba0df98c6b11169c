//! Self-test of `treem_tests`: if these fail, no other scenario means much.
//!
//! They pin what every scenario relies on: the server loads
//! `deploy/nats/treem.conf`, picks its own port, de-duplicates publishes by
//! `Nats-Msg-Id`, and keeps acknowledged messages across a graceful restart
//! and across kill -9, on the same port with the same store.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use treem_tests::{NatsServer, init_tracing, wait_for};

/// Deadline for conditions that settle in milliseconds on an idle machine.
const SETTLE: Duration = Duration::from_secs(30);

const STREAM: &str = "HARNESS_SELFTEST";
const SUBJECT: &str = "harness.selftest.events";

async fn stream_messages(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream(STREAM).await.expect("get the self-test stream");
    stream.info().await.expect("stream info").state.messages
}

async fn publish(js: &jetstream::Context, msg_id: &str, payload: &'static str) -> jetstream::publish::PublishAck {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    // The first await sends; the second awaits the ack, the point at which
    // the message is stored.
    js.publish_with_headers(SUBJECT, headers, payload.into()).await.expect("publish").await.expect("publish ack")
}

#[tokio::test]
async fn server_runs_the_deploy_config_on_its_own_port() {
    init_tracing();
    let (a, b) = tokio::join!(NatsServer::start(), NatsServer::start());
    assert_ne!(a.port(), b.port(), "two servers got the same port");
    assert_ne!(a.port(), 4222, "the harness must not use the config's fixed port");
    assert_ne!(a.store_dir(), b.store_dir());

    let client = a.connect().await;
    let info = client.server_info();
    // Both come from deploy/nats/treem.conf, proving the harness loads it.
    assert_eq!(info.server_name, "treem_local");
    assert_eq!(info.max_payload, 1024 * 1024);
    assert!(info.jetstream, "JetStream must be on");
    assert!(a.store_dir().join("jetstream").is_dir(), "the store lives where -sd says");
}

#[tokio::test]
async fn dedups_and_keeps_messages_across_restart_and_kill() {
    init_tracing();
    let mut server = NatsServer::start().await;
    let port = server.port();
    let long_lived = server.connect().await;

    let js = jetstream::new(server.connect().await);
    js.create_stream(stream::Config {
        name: STREAM.to_string(),
        subjects: vec![SUBJECT.to_string()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create a file stream");

    // The same Nats-Msg-Id twice: stored once.
    let first = publish(&js, "m-1", "one").await;
    assert_eq!((first.sequence, first.duplicate), (1, false));
    let again = publish(&js, "m-1", "one").await;
    assert!(again.duplicate, "the second publish with the same id is a duplicate");
    assert_eq!(again.sequence, 1);
    assert_eq!(stream_messages(&js).await, 1);

    // Graceful restart: same port, same store, message still there.
    server.restart().await;
    assert_eq!(server.port(), port);
    let js = jetstream::new(server.connect().await);
    assert_eq!(stream_messages(&js).await, 1);
    let stored = js.get_stream(STREAM).await.expect("get stream").get_raw_message(1).await.expect("message 1 after restart");
    assert_eq!(&stored.payload[..], b"one");
    assert_eq!(stored.headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("m-1"));
    // The de-duplication window is rebuilt from the store.
    assert!(publish(&js, "m-1", "one").await.duplicate);

    // kill -9 right after an ack: the acked message survives.
    let second = publish(&js, "m-2", "two").await;
    assert_eq!((second.sequence, second.duplicate), (2, false));
    server.kill().await;
    assert!(!server.is_running());
    server.restart().await;
    assert_eq!(server.port(), port);
    let js = jetstream::new(server.connect().await);
    assert_eq!(stream_messages(&js).await, 2);
    let stream = js.get_stream(STREAM).await.expect("get stream");
    assert_eq!(&stream.get_raw_message(1).await.expect("message 1").payload[..], b"one");
    assert_eq!(&stream.get_raw_message(2).await.expect("message 2").payload[..], b"two");

    // A client made by `connect()` rides out both restarts on its own.
    wait_for("the long-lived client to reconnect", SETTLE, || {
        let state = long_lived.connection_state();
        async move { (state == async_nats::connection::State::Connected).then_some(()) }
    })
    .await;
    long_lived.flush().await.expect("flush over the reconnected client");
}

#[tokio::test]
async fn stop_is_graceful_and_idempotent() {
    init_tracing();
    let mut server = NatsServer::start().await;
    assert!(server.is_running());
    server.stop().await;
    assert!(!server.is_running());
    server.stop().await;
    server.kill().await;
    let log = std::fs::read_to_string(server.log_path()).expect("read the server log");
    assert!(log.contains("Server Exiting"), "SIGTERM lets the server shut down cleanly:\n{log}");
    server.restart().await;
    assert!(server.is_running());
}

#[tokio::test]
async fn wait_for_returns_the_value_once_the_condition_holds() {
    let mut calls = 0;
    let got = wait_for("the third call", SETTLE, || {
        calls += 1;
        let n = calls;
        async move { (n >= 3).then_some(n) }
    })
    .await;
    assert_eq!(got, 3);
}

#[tokio::test]
#[should_panic(expected = "waiting for a condition that never holds")]
async fn wait_for_names_what_timed_out() {
    wait_for("a condition that never holds", Duration::from_millis(200), || async { None::<()> }).await;
}

#[tokio::test]
async fn restart_waits_for_its_port_to_be_free() {
    init_tracing();
    let mut server = NatsServer::start().await;
    let port = server.port();
    let dir = server.log_path().parent().expect("logs live in the server's directory").to_path_buf();
    server.kill().await;

    // Someone else holds the port when the restart begins...
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the server's port");
    let release = async move {
        // ...until a start attempt has failed on it; then it lets go.
        wait_for("a start attempt to find the port busy", SETTLE, || {
            let dir = dir.clone();
            async move {
                let logs = std::fs::read_dir(&dir).ok()?;
                logs.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|log| log.contains("address already in use")))
                    .then_some(())
            }
        })
        .await;
        drop(squatter);
    };
    tokio::join!(server.restart(), release);

    assert_eq!(server.port(), port);
    assert!(server.is_running());
    server.connect().await.flush().await.expect("the restarted server answers");
}
