//! Poison and unknown input on the ward stream (DESIGN.md §3.6): a malformed
//! message, an unknown future schema version, a ward not in the hierarchy, a
//! ward publishing for another, an event refused by the rules. Each is
//! parked with its reason, listed by the API and by `treem-town parked`,
//! copied to the dead-letter stream (read back with a JetStream consumer),
//! and never blocks the good events behind it. Once the town is fixed
//! (fuller hierarchy or catalogue, given as files), a replay applies the
//! event exactly once and the figures change; a second replay is refused; a
//! replay that still fails says why and changes nothing; rebuild = live.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::process::Command;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::*;
use treem_proto::hierarchy::Hierarchy;
use treem_proto::subject::{self, WardPath};
use treem_tests::wait_for;
use uuid::Uuid;

use crate::crash::bin;
use crate::system::{System, WAIT};

fn envelope(ward: &str, seq: u64, event: Event) -> Envelope {
    Envelope::new(&WardPath::new("70", "690", ward), seq, "test", event)
}

fn observed(ward: &str, seq: u64, code: &str, numerator: u64, denominator: u64) -> Envelope {
    let body = IndicatorObserved { indicator: code.into(), year: 2024, numerator, denominator: Some(denominator), source: "school".into() };
    envelope(ward, seq, Event::IndicatorObserved(body))
}

fn ward_subject(ward: &str) -> String {
    format!("treem.v1.events.70.690.{ward}.indicator.observed")
}

/// Straight onto the stream, as a ward (or a broken client) would.
async fn publish(js: &jetstream::Context, subject: String, payload: Vec<u8>) {
    js.publish(subject, Bytes::from(payload)).await.expect("publish").await.expect("stream ack");
}

async fn stream_ready(js: &jetstream::Context) {
    wait_for("town stream exists", WAIT, || {
        let js = js.clone();
        async move { js.get_stream(subject::town_events_stream("70", "690")).await.ok().map(|_| ()) }
    })
    .await;
}

fn without_ward(sys: &System, ward: &str) -> PathBuf {
    let mut h = Hierarchy::shipped();
    h.provinces.iter_mut().flat_map(|p| p.towns.iter_mut()).for_each(|t| t.wards.retain(|w| w.code != ward));
    let path = sys.path(&format!("hierarchy-without-{ward}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&h).unwrap()).unwrap();
    path
}

fn without_indicator(sys: &System, code: &str) -> PathBuf {
    let mut c = Catalogue::shipped();
    c.indicators.retain(|i| i.code != code);
    let path = sys.path(&format!("catalogue-without-{code}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    path
}

/// `treem-town parked …` against the running town: (success, stdout, stderr).
async fn cli(sys: &System, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("treem-town"))
        .arg("parked")
        .args(args)
        .env("TREEM_TOWN_DATA_DIR", sys.path("town"))
        .env("TREEM_TOKEN", treem_tests::auth::token().expose())
        .env_remove("TREEM_TOWN_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("treem-town runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out.status.success(), stdout, stderr)
}

async fn parked(sys: &System, town: &treem_town::Node) -> Vec<Value> {
    sys.get(format!("http://{}/api/v1/parked", town.http_addr)).await.as_array().unwrap().clone()
}

async fn replay(sys: &System, town: &treem_town::Node, n: u64) -> (u16, Value) {
    sys.post(format!("http://{}/api/v1/parked/{n}/replay", town.http_addr), json!({})).await
}

/// Every dead letter of the town, read with a JetStream consumer, once there are `count`.
async fn dead_letters(js: &jetstream::Context, count: u64) -> Vec<async_nats::jetstream::Message> {
    let name = subject::deadletter_stream("70", "690");
    wait_for(&format!("{count} messages in {name}"), WAIT, || {
        let js = js.clone();
        let name = name.clone();
        async move { (js.get_stream(&name).await.ok()?.info().await.ok()?.state.messages >= count).then_some(()) }
    })
    .await;
    let stream = js.get_stream(&name).await.unwrap();
    let config = stream.cached_info().config.clone();
    assert_eq!(config.storage, jetstream::stream::StorageType::File);
    assert_eq!(config.max_age, Duration::ZERO, "dead letters are kept for ever");
    let reader =
        stream.create_consumer(consumer::pull::Config { ack_policy: consumer::AckPolicy::None, ..Default::default() }).await.unwrap();
    let mut batch = reader.fetch().max_messages(count as usize).expires(Duration::from_secs(5)).messages().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = batch.next().await {
        out.push(m.unwrap());
    }
    assert_eq!(out.len() as u64, count, "the dead-letter stream holds each parked message once");
    out
}

fn header<'a>(m: &'a async_nats::jetstream::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

/// Waits until the town has folded every message in its stream; returns the last stream seq.
async fn caught_up(js: &jetstream::Context, town: &treem_town::Node) -> u64 {
    let mut s = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    wait_for("town consumed the whole stream", WAIT, || {
        let store = town.shared.store.clone();
        async move { (store.stream_seq() >= last).then_some(()) }
    })
    .await;
    last
}

/// Live and rebuilt views are equal once the town has read the whole stream.
async fn rebuild_equals_live(sys: &System, js: &jetstream::Context, town: &treem_town::Node) {
    let last = caught_up(js, town).await;
    let ctx = &town.shared.ctx;
    let (rebuilt, read) = treem_town::rebuild::rebuild_into(js, &town.shared.config, ctx, &sys.path("rebuilt")).await.unwrap();
    assert_eq!(read, last);
    let live = treem_town::rebuild::views(&town.shared.store, ctx, &town.shared.wards);
    let again = treem_town::rebuild::views(&rebuilt, ctx, &town.shared.wards);
    assert_eq!(live, again, "rebuild (replay commands included) must equal live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_parked_with_its_reason_dead_lettered_and_replayed_once_fixed() {
    let sys = System::new().await;
    let mut config = sys.town_config();
    config.hierarchy_file = Some(without_ward(&sys, "25336"));
    let town = treem_town::start(config).await.expect("town starts");
    let js = jetstream::new(sys.nats.connect().await);
    stream_ready(&js).await;

    // Good events of ward 25320 with poison between them, then more.
    let mut schema99: Value = serde_json::from_slice(&observed("25320", 3, "2", 999, 1000).encode()).unwrap();
    schema99["schema"] = json!(99);
    let impostor = observed("25324", 1, "2", 777, 1000);
    // Signed by its ward: once the hierarchy knows the ward, it applies.
    let stranger = sys.signer("25336").signed(observed("25336", 1, "2", 400, 1000));
    let (mut s25320, mut s25324) = (sys.signer("25320"), sys.signer("25324"));
    let poison: Vec<(String, Vec<u8>, &str)> = vec![
        (ward_subject("25320"), b"{\"schema\":2,\"oops\"".to_vec(), "not valid JSON"),
        (ward_subject("25320"), serde_json::to_vec(&schema99).unwrap(), "newer than this node understands"),
        (ward_subject("25320"), impostor.encode(), "only its own"),
        (subject::event_subject(&stranger), stranger.encode(), "\"25336\" is not in town"),
    ];
    publish(&js, ward_subject("25320"), s25320.signed(observed("25320", 1, "2", 100, 1000)).encode()).await;
    for (i, (subject, payload, _)) in poison.iter().enumerate() {
        publish(&js, subject.clone(), payload.clone()).await;
        let good = s25320.signed(observed("25320", i as u64 + 2, "2", 100 * (i as u64 + 2), 1000));
        publish(&js, ward_subject("25320"), good.encode()).await;
    }
    publish(&js, ward_subject("25324"), s25324.signed(observed("25324", 1, "2", 50, 1000)).encode()).await;

    // Never blocked: every good event behind the poison is applied, in order.
    let w = sys.town_applied(&town, "25320", 5).await;
    assert_eq!((w["applied"].as_u64(), w["held"].as_u64()), (Some(5), Some(0)), "{w}");
    sys.town_applied(&town, "25324", 1).await;
    assert_eq!(sys.town_indicator(&town, 2024, "2", Some("25320")).await["numerator"], 500);
    let town_before = sys.town_indicator(&town, 2024, "2", None).await;
    assert_eq!((town_before["numerator"].as_u64(), town_before["denominator"].as_u64()), (Some(550), Some(2000)), "{town_before}");

    // Each parked with its reason, in GET /api/v1/parked and in the dead-letter stream.
    let list = wait_for("every parked message reached the dead-letter stream", WAIT, || async {
        let list = parked(&sys, &town).await;
        (list.len() == 4 && list.iter().all(|p| p["deadletter"] == "published")).then_some(list)
    })
    .await;
    let mut numbers = Vec::new();
    for (p, (subject, _, reason)) in list.iter().zip(&poison) {
        assert_eq!(p["subject"], subject.as_str(), "{p}");
        assert!(p["reason"].as_str().unwrap().contains(reason), "{p} should say {reason:?}");
        assert_eq!(p["status"], "parked");
        assert_eq!(p["seq_consumed"], false, "never placed in a ward's sequence: {p}");
        numbers.push(p["n"].as_u64().unwrap());
    }
    let (n_malformed, n_schema99, n_impostor, n_stranger) = (numbers[0], numbers[1], numbers[2], numbers[3]);
    let letters = dead_letters(&js, 4).await;
    for (m, (p, (subject, payload, _))) in letters.iter().zip(list.iter().zip(&poison)) {
        assert_eq!(m.subject.as_str(), subject::deadletter_subject("70", "690"));
        assert_eq!(header(m, "Treem-Parked"), Some(p["n"].to_string().as_str()));
        assert_eq!(header(m, "Nats-Msg-Id"), Some(format!("deadletter-690-{}", p["n"]).as_str()));
        assert_eq!(header(m, "Treem-Reason"), p["reason"].as_str());
        assert_eq!(header(m, "Treem-Original-Subject"), Some(subject.as_str()));
        assert_eq!(header(m, "Treem-Seq-Consumed"), Some("false"));
        assert_eq!(m.payload.as_ref(), payload.as_slice(), "the body is the original message, byte for byte");
    }
    assert_eq!(header(&letters[3], "Treem-Ward"), Some("25336"));
    assert_eq!(header(&letters[3], "Treem-Seq"), Some("1"));

    // Replays that still fail say why and change nothing (not even the stream).
    let stream_last = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap().info().await.unwrap().state.last_sequence;
    for (n, words) in [(n_malformed, "JSON"), (n_schema99, "upgrade treem"), (n_impostor, "only its own"), (n_stranger, "25336")] {
        let (status, body) = replay(&sys, &town, n).await;
        assert_eq!(status, 422, "#{n}: {body}");
        assert!(body["error"].as_str().unwrap().contains(words), "#{n}: {body} should say {words:?}");
    }
    let (status, body) = replay(&sys, &town, 999).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(parked(&sys, &town).await, list, "a failed replay changes no record");
    assert_eq!(sys.town_indicator(&town, 2024, "2", None).await, town_before);
    let now_last = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap().info().await.unwrap().state.last_sequence;
    assert_eq!(now_last, stream_last, "a replay refused up front publishes no command");

    // The command a person runs, against the running town.
    let (ok, out, err) = cli(&sys, &["list"]).await;
    assert!(ok, "parked list failed: {err}");
    assert!(out.contains("4 parked message(s): 4 still parked, 0 replayed"), "{out}");
    for (_, _, reason) in &poison {
        assert!(out.contains(reason), "list should show {reason:?}:\n{out}");
    }
    let (ok, out, err) = cli(&sys, &["show", &n_malformed.to_string()]).await;
    assert!(ok, "parked show failed: {err}");
    assert!(out.contains(&format!("parked message #{n_malformed}")) && out.contains("not valid JSON"), "{out}");
    assert!(out.contains("{\"schema\":2,\"oops\"") && out.contains("dead letter: published"), "{out}");
    let (ok, _, err) = cli(&sys, &["replay", &n_schema99.to_string()]).await;
    assert!(!ok && err.contains("still refused") && err.contains("newer"), "{err}");

    // Fixed: the town restarts with the hierarchy that has ward 25336.
    town.shutdown().await;
    let town = sys.town().await;
    let (ok, out, err) = cli(&sys, &["replay", &n_stranger.to_string()]).await;
    assert!(ok, "replay after the fix failed: {err}");
    assert!(out.contains(&format!("#{n_stranger} replayed: applied: ward 25336 seq 1")), "{out}");
    assert_eq!(sys.town_indicator(&town, 2024, "2", Some("25336")).await["numerator"], 400);
    let after = sys.town_indicator(&town, 2024, "2", None).await;
    assert_eq!((after["numerator"].as_u64(), after["denominator"].as_u64()), (Some(950), Some(3000)), "{after}");
    let w = sys.town_applied(&town, "25336", 1).await;
    assert_eq!(w["applied"], 1, "{w}");

    // Twice: refused, by the API and the command; the figures stay.
    let (status, body) = replay(&sys, &town, n_stranger).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("already replayed"), "{body}");
    let (ok, _, err) = cli(&sys, &["replay", &n_stranger.to_string()]).await;
    assert!(!ok && err.contains("already replayed"), "{err}");
    let (ok, out, _) = cli(&sys, &["replay", "--all"]).await;
    assert!(!ok && out.contains("replayed 0 of 3; 3 still refused"), "{out}");
    assert_eq!(sys.town_indicator(&town, 2024, "2", None).await, after);

    // Kept for audit, with when and what came of it.
    let record = sys.get(format!("http://{}/api/v1/parked/{n_stranger}", town.http_addr)).await;
    assert_eq!(record["status"], "replayed", "{record}");
    assert_eq!(record["replayed"]["outcome"]["kind"], "applied", "{record}");
    assert!(record["replayed"]["at"].is_string(), "{record}");
    assert_eq!(record["payload"], String::from_utf8(stranger.encode()).unwrap());
    let (ok, out, _) = cli(&sys, &["list", "--status", "replayed"]).await;
    assert!(ok && out.contains("1 parked message(s): 0 still parked, 1 replayed"), "{out}");

    rebuild_equals_live(&sys, &js, &town).await;
    town.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_refused_by_the_rules_consume_their_seq_and_replay_once_without_moving_it() {
    let sys = System::new().await;
    let mut config = sys.town_config();
    config.catalogue_file = Some(without_indicator(&sys, "16"));
    let town = treem_town::start(config).await.expect("town starts");
    let js = jetstream::new(sys.nats.connect().await);
    stream_ready(&js).await;

    // Ward 25320 observes an indicator this town's catalogue does not know
    // yet, then one it knows. Ward 25324 records support for a case before
    // the case's opening reaches the town (refused: the case is not open).
    let case_id = Uuid::now_v7();
    let (mut s25320, mut s25324) = (sys.signer("25320"), sys.signer("25324"));
    let newer = s25320.signed(observed("25320", 1, "16", 450, 500));
    let second = s25320.signed(observed("25320", 2, "2", 100, 1000));
    let support = s25324.signed(envelope(
        "25324",
        1,
        Event::CaseSupportRecorded(CaseSupportRecorded { case_id, year: 2024, support: "medical".into() }),
    ));
    let opened = envelope(
        "25324",
        2,
        Event::CaseOpened(CaseOpened {
            case_id,
            year: 2024,
            category: CaseCategory::Abuse,
            groups: vec![],
            sex: Sex::Female,
            age_band: AgeBand::From5To10,
        }),
    );
    let opened = s25324.signed(opened);
    for e in [&newer, &second, &support, &opened] {
        publish(&js, subject::event_subject(e), e.encode()).await;
    }
    for ward in ["25320", "25324"] {
        let w = sys.town_applied(&town, ward, 2).await;
        assert_eq!((w["applied"].as_u64(), w["parked"].as_u64()), (Some(1), Some(1)), "the next event went on: {w}");
    }
    let list = parked(&sys, &town).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list[0]["reason"].as_str().unwrap().contains("unknown indicator \"16\""), "{}", list[0]);
    assert!(list[1]["reason"].as_str().unwrap().contains("not open"), "{}", list[1]);
    assert!(list.iter().all(|p| p["seq_consumed"] == true), "{list:?}");
    let (n_newer, n_support) = (list[0]["n"].as_u64().unwrap(), list[1]["n"].as_u64().unwrap());
    let letters = dead_letters(&js, 2).await;
    assert!(letters.iter().all(|m| header(m, "Treem-Seq-Consumed") == Some("true")));
    assert_eq!(header(&letters[0], "Treem-Event-Id"), Some(newer.id.to_string().as_str()));

    // The case is open now: the support applies on replay, same code, same catalogue.
    let cases_url = format!("http://{}/api/v1/cases?year=2024&ward=25324", town.http_addr);
    assert_eq!(sys.get(cases_url.clone()).await["categories"]["abuse"]["supported"], 0);
    let (status, body) = replay(&sys, &town, n_support).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], json!({"kind": "applied", "ward": "25324", "seq": 1, "then_applied": 0}));
    assert_eq!(sys.get(cases_url.clone()).await["categories"]["abuse"]["supported"], 1);
    // Not while the catalogue still lacks indicator 16.
    let (status, body) = replay(&sys, &town, n_newer).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unknown indicator"), "{body}");

    // After the upgrade of the catalogue: applied once, the ward's position untouched.
    town.shutdown().await;
    let town = sys.town().await;
    let cases_url = format!("http://{}/api/v1/cases?year=2024&ward=25324", town.http_addr);
    assert_eq!(sys.town_indicator(&town, 2024, "16", Some("25320")).await["numerator"], Value::Null);
    let (ok, out, err) = cli(&sys, &["replay", &n_newer.to_string()]).await;
    assert!(ok && out.contains("applied: ward 25320 seq 1"), "{out}{err}");
    let figure = sys.town_indicator(&town, 2024, "16", Some("25320")).await;
    assert_eq!((figure["numerator"].as_u64(), figure["denominator"].as_u64()), (Some(450), Some(500)), "{figure}");
    let w = sys.town_applied(&town, "25320", 2).await;
    assert_eq!((w["last_seq_applied"].as_u64(), w["applied"].as_u64(), w["parked"].as_u64()), (Some(2), Some(2), Some(0)), "{w}");
    for n in [n_newer, n_support] {
        let (status, body) = replay(&sys, &town, n).await;
        assert_eq!(status, 409, "a second replay of #{n}: {body}");
    }
    // The same events arriving again (a ward re-sending) are duplicates.
    for e in [&newer, &support] {
        publish(&js, subject::event_subject(e), e.encode()).await;
    }
    caught_up(&js, &town).await;
    let replayed: BTreeMap<u64, Value> = parked(&sys, &town).await.into_iter().map(|p| (p["n"].as_u64().unwrap(), p)).collect();
    assert_eq!(replayed.len(), 2);
    assert!(replayed.values().all(|p| p["status"] == "replayed"), "{replayed:?}");
    assert_eq!(sys.get(cases_url).await["categories"]["abuse"]["supported"], 1);
    assert_eq!(sys.town_indicator(&town, 2024, "16", Some("25320")).await["numerator"], 450);

    // Rebuild under the full catalogue parks only the support event, and
    // meets both replay commands: it must still end equal to live.
    rebuild_equals_live(&sys, &js, &town).await;
    town.shutdown().await;
}
