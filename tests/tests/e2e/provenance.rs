//! Provenance end to end (SECURITY.md, "Ward signing keys"): a ward whose
//! key the town registered is applied; an attacker publishing straight onto
//! the town's stream — a forged event, an altered copy, an old event
//! replayed under a new seq, an unsigned one, a forgery ahead of a gap — is
//! parked with the reason, counted in `/api/v1/sync`, and never takes the
//! place of the ward's real events, which apply; rebuild = live. A key
//! rotated mid-stream with the documented commands is followed, and the
//! retired key is refused for later seqs. A ward the town has no key for is
//! parked until `treem-town keys add`, then a replay applies its events.

use std::process::Stdio;

use async_nats::jetstream;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use treem_proto::Envelope;
use treem_proto::provenance::{Seal, SigningKey};
use treem_proto::subject;
use treem_tests::wait_for;

use crate::crash::bin;
use crate::system::{System, WAIT, observed};

const WARD: &str = "25320";

/// Straight onto the town's stream, without `Nats-Msg-Id`: what someone
/// holding NATS credentials that allow publishing on the ward's subjects
/// (a stolen laptop, a misconfigured account) could do.
async fn publish(js: &jetstream::Context, bytes: &[u8]) {
    let env = Envelope::decode(bytes).expect("the attack decodes");
    js.publish(subject::event_subject(&env), Bytes::copy_from_slice(bytes)).await.expect("publish").await.expect("stream ack");
}

/// The ward's recorded events, exactly as its API lists them (the same
/// envelopes it published).
async fn ward_events(sys: &System, ward: &treem_ward::Node) -> Vec<Vec<u8>> {
    let list = sys.get(format!("http://{}/api/v1/events?after=0&limit=1000", ward.http_addr)).await;
    list.as_array().unwrap().iter().map(|v| serde_json::to_vec(v).unwrap()).collect()
}

fn edited(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// The ward's object in the town's `/api/v1/sync`, once `ready` holds for it.
async fn ward_sync(sys: &System, town: &treem_town::Node, ward: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://{}/api/v1/sync", town.http_addr);
    wait_for(what, WAIT, || {
        let (http, url) = (sys.http.clone(), url.clone());
        let ready = &ready;
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let w = v["wards"].as_array()?.iter().find(|w| w["ward"] == ward)?.clone();
            ready(&w).then_some(w)
        }
    })
    .await
}

async fn parked(sys: &System, town: &treem_town::Node) -> Vec<Value> {
    sys.get(format!("http://{}/api/v1/parked", town.http_addr)).await.as_array().unwrap().clone()
}

/// Runs a workspace binary with `env`, feeding `stdin`; (success, stdout, stderr).
async fn run(name: &str, args: &[&str], env: &[(&str, String)], stdin: &str) -> (bool, String, String) {
    let mut cmd = Command::new(bin(name));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("TREEM_WARD_CONFIG").env_remove("TREEM_TOWN_CONFIG").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name} runs: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn ward_env(sys: &System, ward: &str) -> Vec<(&'static str, String)> {
    vec![("TREEM_WARD_WARD", ward.into()), ("TREEM_WARD_DATA_DIR", sys.path(&format!("ward-{ward}")).display().to_string())]
}

fn town_env(sys: &System) -> Vec<(&'static str, String)> {
    vec![("TREEM_TOWN_DATA_DIR", sys.path("town").display().to_string()), ("TREEM_TOKEN", treem_tests::auth::token().expose())]
}

/// `treem-ward keys show --public | treem-town keys add`, as SECURITY.md says.
async fn register_ward_keys(sys: &System, ward: &str) -> String {
    let (ok, public, err) = run("treem-ward", &["keys", "show", "--public"], &ward_env(sys, ward), "").await;
    assert!(ok, "keys show --public: {err}");
    let (ok, out, err) = run("treem-town", &["keys", "add"], &town_env(sys), &public).await;
    assert!(ok, "keys add: {err}\n{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_replayed_and_unsigned_events_are_parked_and_the_real_ones_apply() {
    let sys = System::new().await;
    let town = sys.town().await;
    let ward = sys.ward(WARD).await;
    for n in 1..=3 {
        sys.record(&ward, "indicator.observed", observed("2", 2024, 100 * n, 1000)).await;
    }
    sys.town_applied(&town, WARD, 3).await;
    let real = ward_events(&sys, &ward).await;
    let hash3 = Seal::of_bytes(&real[2]).unwrap().hash;
    let ward_key = Envelope::decode(&real[0]).unwrap().sig.unwrap().key_id;

    // The attacker's own key, claiming to be the ward's.
    let attacker = SigningKey::from_secret(&[66; 32]);
    let forge = |seq: u64, numerator: u64, prev| {
        let mut env = Envelope::decode(&real[0]).unwrap();
        env.seq = seq;
        env.id = uuid::Uuid::now_v7();
        env.event = serde_json::from_value(json!({"kind": "indicator.observed", "body": observed("2", 2024, numerator, 1000)})).unwrap();
        attacker.sign(&mut env, prev);
        env.sig.as_mut().unwrap().key_id = ward_key.clone();
        env.encode()
    };
    let mut unsigned = Envelope::decode(&real[2]).unwrap();
    (unsigned.seq, unsigned.id, unsigned.prev, unsigned.sig) = (4, uuid::Uuid::now_v7(), None, None);
    let attacks: Vec<(&str, Vec<u8>, &str)> = vec![
        ("forged, at the next seq", forge(4, 999, Some(hash3)), "altered or forged"),
        ("forged, ahead of a gap", forge(6, 999, None), "altered or forged"),
        ("an applied event, altered", edited(&real[1], |v| v["body"]["numerator"] = json!(999)), "altered or forged"),
        ("an old event replayed as the next seq", edited(&real[0], |v| v["seq"] = json!(4)), "altered or forged"),
        ("an event stripped of its signature", unsigned.encode(), "is not signed"),
    ];
    let js = jetstream::new(sys.nats.connect().await);
    for (_, bytes, _) in &attacks {
        publish(&js, bytes).await;
    }
    // A real event re-sent as it was is a duplicate, not an attack.
    publish(&js, &real[2]).await;

    let w = ward_sync(&sys, &town, WARD, "the attacks show in sync status", |w| w["provenance_failures"] == attacks.len()).await;
    assert_eq!((w["last_seq_applied"].as_u64(), w["held"].as_u64()), (Some(3), Some(0)), "no attack moved the ward or held a slot: {w}");
    let list = parked(&sys, &town).await;
    assert_eq!(list.len(), attacks.len(), "{list:?}");
    for (p, (what, _, words)) in list.iter().zip(&attacks) {
        assert!(p["reason"].as_str().unwrap().contains(words), "{what}: {p}");
        assert_eq!((p["ward"].as_str(), p["seq_consumed"].as_bool()), (Some(WARD), Some(false)), "{what}: {p}");
    }
    assert_eq!(sys.town_indicator(&town, 2024, "2", Some(WARD)).await["numerator"], 300);

    // The ward's real seqs 4, 5, 6 — the ones the attacks tried to take — apply.
    for n in 4..=6 {
        sys.record(&ward, "indicator.observed", observed("2", 2024, 100 * n, 1000)).await;
    }
    let w = sys.town_applied(&town, WARD, 6).await;
    assert_eq!((w["applied"].as_u64(), w["provenance_failures"].as_u64()), (Some(6), Some(attacks.len() as u64)), "{w}");
    assert_eq!(sys.town_indicator(&town, 2024, "2", Some(WARD)).await["numerator"], 600, "the real figure, never 999");

    // Rebuild from the stream (attacks included) equals live.
    let mut s = js.get_stream(subject::town_events_stream("70", "690")).await.unwrap();
    let last = s.info().await.unwrap().state.last_sequence;
    wait_for("town consumed the whole stream", WAIT, || {
        let store = town.shared.store.clone();
        async move { (store.stream_seq() >= last).then_some(()) }
    })
    .await;
    let ctx = &town.shared.ctx;
    let (rebuilt, read) = treem_town::rebuild::rebuild_into(&js, &town.shared.config, ctx, &sys.path("rebuilt")).await.unwrap();
    assert_eq!(read, last);
    let live = treem_town::rebuild::views(&town.shared.store, ctx, &town.shared.wards);
    assert_eq!(treem_town::rebuild::views(&rebuilt, ctx, &town.shared.wards), live, "rebuild = live");
    ward.shutdown().await;
    town.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_mid_stream_is_followed_and_the_retired_key_is_refused() {
    let sys = System::new().await;
    let town = sys.town().await;
    let ward = sys.ward(WARD).await;
    for n in 1..=2 {
        sys.record(&ward, "indicator.observed", observed("2", 2024, 100 * n, 1000)).await;
    }
    sys.town_applied(&town, WARD, 2).await;
    // Someone copies the key file now; the ward rotates later.
    let stolen = sys.signer(WARD).key().clone();
    ward.shutdown().await;

    let (ok, out, err) = run("treem-ward", &["keys", "rotate"], &ward_env(&sys, WARD), "").await;
    assert!(ok && out.contains("signs from seq 3"), "keys rotate: {out}{err}");
    let added = register_ward_keys(&sys, WARD).await;
    assert!(added.contains("from seq 3): registered") && added.contains("from seq 1): already registered"), "{added}");

    let ward = sys.ward(WARD).await;
    for n in 3..=4 {
        sys.record(&ward, "indicator.observed", observed("2", 2024, 100 * n, 1000)).await;
    }
    sys.town_applied(&town, WARD, 4).await;
    let events = ward_events(&sys, &ward).await;
    let key_ids: Vec<String> = events.iter().map(|b| Envelope::decode(b).unwrap().sig.unwrap().key_id).collect();
    assert_eq!(key_ids[0], key_ids[1]);
    assert_ne!(key_ids[1], key_ids[2], "seqs 3–4 are signed by the new key");

    // The stolen, retired key signs seq 5: refused; the ward's real seq 5 applies.
    let mut late = Envelope::decode(&events[3]).unwrap();
    (late.seq, late.id) = (5, uuid::Uuid::now_v7());
    stolen.sign(&mut late, Some(Seal::of_bytes(&events[3]).unwrap().hash));
    let js = jetstream::new(sys.nats.connect().await);
    publish(&js, &late.encode()).await;
    ward_sync(&sys, &town, WARD, "the stolen key's event is refused", |w| w["provenance_failures"] == 1).await;
    let reason = parked(&sys, &town).await[0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("may sign only seqs 1–2"), "{reason}");
    sys.record(&ward, "indicator.observed", observed("2", 2024, 500, 1000)).await;
    let w = sys.town_applied(&town, WARD, 5).await;
    assert_eq!(w["applied"], 5, "{w}");

    let (ok, list, err) = run("treem-town", &["keys", "list"], &town_env(&sys), "").await;
    assert!(ok, "keys list: {err}");
    assert!(list.contains(&format!("{}  seqs 1–2", key_ids[0])) && list.contains(&format!("{}  seqs 3on", key_ids[2])), "{list}");
    ward.shutdown().await;
    town.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_the_town_has_no_key_for_is_parked_until_registered_then_replayed() {
    const NEW: &str = "25333";
    let sys = System::new().await;
    // Not (or no longer) registered: revoked with the documented command.
    let key_id = sys.signer(NEW).key().key_id();
    let (ok, out, err) = run("treem-town", &["keys", "remove", "--ward", NEW, "--key-id", &key_id], &town_env(&sys), "").await;
    assert!(ok && out.contains("refused from now on"), "keys remove: {out}{err}");
    let town = sys.town().await;
    let ward = sys.ward(NEW).await;
    for n in 1..=2 {
        sys.record(&ward, "indicator.observed", observed("2", 2024, 10 * n, 1000)).await;
    }
    let w = ward_sync(&sys, &town, NEW, "the unregistered ward's events are refused", |w| w["provenance_failures"] == 2).await;
    assert_eq!(w["last_seq_applied"], 0, "{w}");
    let list = parked(&sys, &town).await;
    assert!(list.iter().all(|p| p["reason"].as_str().unwrap().contains("no registered signing key")), "{list:?}");

    register_ward_keys(&sys, NEW).await;
    let (ok, out, err) = run("treem-town", &["parked", "replay", "--all"], &town_env(&sys), "").await;
    assert!(ok, "parked replay --all: {out}{err}");
    let w = sys.town_applied(&town, NEW, 2).await;
    assert_eq!(w["applied"], 2, "{w}");
    assert_eq!(sys.town_indicator(&town, 2024, "2", Some(NEW)).await["numerator"], 20);
    ward.shutdown().await;
    town.shutdown().await;
}
