//! A ward records while NATS is down; NATS comes up; everything arrives,
//! exactly once.

use async_nats::jetstream;
use treem_proto::subject;
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_records_offline_and_everything_arrives_once() {
    let mut sys = System::new().await;
    // The town creates its stream, then the network goes away.
    let town = sys.town().await;
    let js = jetstream::new(sys.nats.connect().await);
    wait_for("town stream exists", WAIT, || {
        let js = js.clone();
        async move { js.get_stream(subject::town_events_stream("70", "690")).await.ok().map(|_| ()) }
    })
    .await;
    drop(js);
    sys.nats.stop().await;

    let ward = sys.ward("25325").await;
    let n = 300u64;
    for i in 0..n {
        // Recording never waits for the network.
        sys.record(&ward, "indicator.observed", observed("15", 2021 + (i % 4) as u16, i % 90, 100)).await;
    }
    let status = sys.get(format!("http://{}/api/v1/status", ward.http_addr)).await;
    assert_eq!(status["last_seq"], n, "{status}");
    assert_eq!(status["acked_seq"], 0, "nothing can be acknowledged while NATS is down: {status}");
    assert_eq!(status["pending"], n, "{status}");

    sys.nats.restart().await;
    let w = sys.town_applied(&town, "25325", n).await;
    assert_eq!(w["applied"], n, "{w}");
    let url = format!("http://{}/api/v1/status", ward.http_addr);
    wait_for("ward sees every event acknowledged", WAIT, || {
        let http = sys.http.clone();
        let url = url.clone();
        async move {
            let v: serde_json::Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            (v["acked_seq"] == n && v["pending"] == 0 && v["last_sync_at"].is_string()).then_some(())
        }
    })
    .await;
    let js = jetstream::new(sys.nats.connect().await);
    let mut stream = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, n, "the stream holds each event once");
    // The last observation per year wins: year 2024 got i = 3, 7, …, 299 → 299 % 90 = 29.
    let t = sys.town_indicator(&town, 2024, "15", Some("25325")).await;
    assert_eq!(t["numerator"], 299 % 90, "{t}");
    ward.shutdown().await;
    town.shutdown().await;
}
