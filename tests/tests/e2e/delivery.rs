//! Duplicate and out-of-order delivery to the town, straight onto the
//! stream (as a redelivering network or a re-sending ward would, outside
//! JetStream's de-duplication window): applied once each, in ward order.
//! Then: a town restarted mid-stream loses and doubles nothing, a malformed
//! message is parked without blocking what follows, and `rebuild` equals the
//! live projection.

use std::collections::BTreeMap;

use async_nats::jetstream;
use bytes::Bytes;
use serde_json::Value;
use treem_proto::event::{Envelope, Event, IndicatorObserved};
use treem_proto::subject::{self, WardPath};
use treem_tests::wait_for;

use crate::system::{System, WAIT, WARDS};

fn event(ward: &str, seq: u64, numerator: u64) -> Envelope {
    Envelope::new(
        &WardPath::new("70", "690", ward),
        seq,
        "test",
        Event::IndicatorObserved(IndicatorObserved {
            indicator: "2".into(),
            year: 2024,
            numerator,
            denominator: Some(1000),
            source: "health_centre".into(),
        }),
    )
}

/// Publishes without `Nats-Msg-Id`, so JetStream keeps every copy: only the
/// town's own de-duplication by ward seq stands between them and a double count.
async fn publish_raw(js: &jetstream::Context, subject: String, payload: Vec<u8>) {
    js.publish(subject, Bytes::from(payload)).await.expect("publish").await.expect("stream ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_reordering_apply_once_in_ward_order_across_town_restart() {
    let sys = System::new().await;
    let town = sys.town().await;
    let js = jetstream::new(sys.nats.connect().await);
    // Wait until the town has created its stream.
    wait_for("town stream exists", WAIT, || {
        let js = js.clone();
        async move { js.get_stream(subject::town_events_stream("70", "690")).await.ok().map(|_| ()) }
    })
    .await;

    // Ward 25320: seqs 1..=40, each numerator = seq, so the last applied
    // value shows which event won; delivered shuffled and duplicated.
    // Signed and chained by the ward's key, as the ward would.
    let mut signer = sys.signer("25320");
    let events: Vec<Envelope> = (1..=40).map(|s| signer.signed(event("25320", s, s))).collect();
    let mut order: Vec<usize> = (0..40).rev().step_by(3).collect(); // 39, 36, …: ahead of gaps
    order.extend([0, 0, 1, 5, 5]);
    for &i in &order {
        publish_raw(&js, subject::event_subject(&events[i]), events[i].encode()).await;
    }
    // A malformed message in the middle: parked, never blocking the rest.
    publish_raw(&js, "treem.v1.events.70.690.25320.indicator.observed".into(), b"{\"schema\":2,\"oops\"".to_vec()).await;
    // Held events show up as a gap in sync status.
    let w = wait_for("a gap shows in sync status", WAIT, || {
        let http = sys.http.clone();
        let url = format!("http://{}/api/v1/sync", town.http_addr);
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let w = v["wards"].as_array()?.iter().find(|w| w["ward"] == "25320")?.clone();
            (w["held"].as_u64()? > 0 && v["parked"].as_u64()? >= 1).then_some(w)
        }
    })
    .await;
    assert!(w["gap"].is_array(), "{w}");
    assert!(w["last_seq_applied"].as_u64().unwrap() < 40);

    // Restart the town mid-stream.
    town.shutdown().await;
    let town = sys.town().await;
    for e in &events {
        publish_raw(&js, subject::event_subject(e), e.encode()).await;
    }
    // And again, the whole lot, in reverse.
    for e in events.iter().rev() {
        publish_raw(&js, subject::event_subject(e), e.encode()).await;
    }
    let w = sys.town_applied(&town, "25320", 40).await;
    assert_eq!(w["applied"], 40, "each of the 40 events applied exactly once: {w}");
    assert_eq!(w["held"], 0);
    assert!(w["gap"].is_null());
    let t = sys.town_indicator(&town, 2024, "2", Some("25320")).await;
    assert_eq!(t["numerator"], 40, "the last event in ward order wins: {t}");
    let parked = sys.get(format!("http://{}/api/v1/parked", town.http_addr)).await;
    assert_eq!(parked.as_array().unwrap().len(), 1, "{parked}");
    assert!(parked[0]["reason"].as_str().unwrap().contains("JSON"), "{parked}");

    // Rebuild from the stream equals the live projection.
    let mut s = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    wait_for("town consumed the whole stream", WAIT, || {
        let store = town.shared.store.clone();
        async move { (store.stream_seq() >= last).then_some(()) }
    })
    .await;
    let ctx = treem_town::fold::Ctx::from_config(&sys.town_config()).unwrap();
    let wards: Vec<String> = WARDS.map(String::from).to_vec();
    let (rebuilt, read) = treem_town::rebuild::rebuild_into(&js, &sys.town_config(), &ctx, &sys.path("rebuilt")).await.unwrap();
    assert_eq!(read, last);
    let live = treem_town::rebuild::views(&town.shared.store, &ctx, &wards);
    let again = treem_town::rebuild::views(&rebuilt, &ctx, &wards);
    assert_eq!(live, again, "rebuild must equal incremental application");
    let counts: BTreeMap<&str, u64> = [("read", read)].into();
    assert!(counts["read"] > 40);
    town.shutdown().await;
}
