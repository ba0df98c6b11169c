//! NATS identities, permissions and TLS, attacked against the real server
//! running the shipped secure configuration (`deploy/nats/secure/`, with
//! the accounts `treem-nats-auth` generates and a CA made by the test;
//! harness: `treem_tests::secure`). Each refusal is proved by the server's
//! own error (`Permissions Violation for Publish to "…"`, `Authorization
//! Violation`, a source that finds no stream), not by our code's opinion.
//! SECURITY.md's table of attacks points here.

use std::time::Duration;

use async_nats::connection::State;
use futures::StreamExt as _;
use serde_json::{Value, json};
use treem_auth::nats::ClientAuth;
use treem_auth::nats::cli::Command as AuthCommand;
use treem_auth::nats::keys::KeyDir;
use treem_proto::subject;
use treem_tests::secure::{OTHER_TOWN, SecureNats, ServerErrors, province_identity, town_identity, ward_identity};
use treem_tests::wait_for;

const WAIT: Duration = Duration::from_secs(60);
const EVENTS: &str = "TREEM_EVENTS_70_690";

/// Data dirs and API tokens for one scenario's services.
struct Services {
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Services {
    fn new() -> Services {
        treem_tests::init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        treem_tests::auth::provision(&dir.path().join("town"));
        treem_tests::auth::provision(&dir.path().join("province"));
        Services { dir, http: treem_tests::auth::client() }
    }

    async fn town(&self, nats: &SecureNats) -> treem_town::Node {
        let auth = nats.auth(&town_identity("690"));
        treem_town::start(treem_town::Config {
            data_dir: self.dir.path().join("town"),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: nats.url(),
            nats_nkey_seed_file: auth.nkey_seed_file,
            nats_tls_ca_file: auth.tls_ca_file,
            backoff_min_ms: 20,
            backoff_max_ms: 300,
            // What is under test here is NATS; event signatures have their
            // own scenarios (the wards' keys are not registered here).
            require_signatures: false,
            ..Default::default()
        })
        .await
        .expect("town starts with its own identity")
    }

    async fn province(&self, nats: &SecureNats) -> treem_province::Node {
        let auth = nats.auth(&province_identity());
        treem_province::start(treem_province::Config {
            data_dir: self.dir.path().join("province"),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: nats.url(),
            nats_nkey_seed_file: auth.nkey_seed_file,
            nats_tls_ca_file: auth.tls_ca_file,
            ..Default::default()
        })
        .await
        .expect("province starts with its own identity")
    }

    async fn ward(&self, nats: &SecureNats, ward: &str) -> treem_ward::Node {
        let auth = nats.auth(&ward_identity(ward));
        treem_ward::start(treem_ward::Config {
            ward: ward.into(),
            data_dir: self.dir.path().join(format!("ward-{ward}")),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            nats_url: nats.url(),
            nats_nkey_seed_file: auth.nkey_seed_file,
            nats_tls_ca_file: auth.tls_ca_file,
            backoff_min_ms: 20,
            backoff_max_ms: 300,
            ..Default::default()
        })
        .await
        .expect("ward starts with its own identity")
    }

    async fn observe(&self, ward: &treem_ward::Node, numerator: u64, denominator: u64) {
        let body = json!({"kind": "indicator.observed", "body": {"indicator": "4a", "year": 2025, "numerator": numerator, "denominator": denominator, "source": "health_centre"}});
        let r = self.http.post(format!("http://{}/api/v1/events", ward.http_addr)).json(&body).send().await.expect("POST event");
        assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap_or_default());
    }

    async fn town_applied(&self, town: &treem_town::Node, ward: &str, seq: u64) {
        let url = format!("http://{}/api/v1/sync", town.http_addr);
        wait_for(&format!("the town applies {ward} up to seq {seq}"), WAIT, || {
            let (url, http, ward) = (url.clone(), self.http.clone(), ward.to_string());
            async move {
                let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                let w = v["wards"].as_array()?.iter().find(|w| w["ward"] == ward)?.clone();
                (w["last_seq_applied"].as_u64()? >= seq).then_some(())
            }
        })
        .await;
    }
}

/// Sends `subject` a request-shaped publish (with a reply inbox) and waits
/// for the server to refuse it by name.
async fn refused_publish(client: &async_nats::Client, errors: &ServerErrors, subject: &str, body: &str) {
    client.publish_with_reply(subject.to_string(), client.new_inbox(), body.to_string().into()).await.expect("publish queued");
    client.flush().await.expect("flush");
    errors.wait_for(&format!("Permissions Violation for Publish to \"{subject}\"")).await;
}

async fn refused_subscribe(client: &async_nats::Client, errors: &ServerErrors, subject: &str) {
    let _sub = client.subscribe(subject.to_string()).await.expect("subscribe queued");
    client.flush().await.expect("flush");
    errors.wait_for(&format!("Permissions Violation for Subscription to \"{subject}\"")).await;
}

/// A stream `name` that `client` creates with another stream as its
/// source: the server must report that the source does not exist in the
/// client's account (it does exist, in another one), and copy nothing.
async fn sourcing_finds_nothing(client: &async_nats::Client, name: &str, source: &str) {
    // No subjects of its own: whatever it holds came from the source.
    let config = json!({"name": name, "subjects": [], "sources": [{"name": source}]});
    let created: Value = serde_json::from_slice(
        &client.request(format!("$JS.API.STREAM.CREATE.{name}"), config.to_string().into()).await.expect("create").payload,
    )
    .expect("JSON");
    assert!(created.get("error").is_none(), "its own stream name is allowed: {created}");
    let info = wait_for(&format!("{name}: the source {source} reports 'stream not found'"), WAIT, || async {
        let reply = client.request(format!("$JS.API.STREAM.INFO.{name}"), "".into()).await.ok()?;
        let info: Value = serde_json::from_slice(&reply.payload).ok()?;
        let error = info["sources"][0]["error"]["description"].as_str()?.to_string();
        error.contains("stream not found").then_some(info)
    })
    .await;
    assert_eq!(info["state"]["messages"], 0, "nothing copied: {info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_on_its_own_identity_over_tls_ward_to_town_to_province() {
    let nats = SecureNats::start().await;
    let s = Services::new();
    let province = s.province(&nats).await;
    let town = s.town(&nats).await;
    let hung_chien = s.ward(&nats, "25320").await;
    let an_loc = s.ward(&nats, "25324").await;

    s.observe(&hung_chien, 7, 100).await;
    s.observe(&an_loc, 3, 50).await;
    s.town_applied(&town, "25320", 1).await;
    s.town_applied(&town, "25324", 1).await;
    let url = format!("http://{}/api/v1/indicators?year=2025", province.http_addr);
    wait_for("the province rolls up 4a = 10/150 from the town's projection", WAIT, || {
        let (url, http) = (url.clone(), s.http.clone());
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let a = v["indicators"].as_array()?.iter().find(|i| i["code"] == "4a")?.clone();
            (a["numerator"] == 10 && a["denominator"] == 150).then_some(())
        }
    })
    .await;

    // A restarted ward reconciles before it sends (acked_seq > 0): with a
    // ward's rights only — its probe consumer and direct get — or it would
    // send nothing more.
    hung_chien.shutdown().await;
    let hung_chien = s.ward(&nats, "25320").await;
    s.observe(&hung_chien, 8, 100).await;
    s.town_applied(&town, "25320", 2).await;
    let status = hung_chien.log.status().expect("status");
    assert_eq!(status.last_error, None, "{status:?}");
    assert_eq!(status.last_rewind, None, "nothing was lost: {status:?}");

    for ward in [hung_chien, an_loc] {
        ward.shutdown().await;
    }
    town.shutdown().await;
    province.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_cannot_publish_as_another_ward_nor_read_its_events() {
    let nats = SecureNats::start().await;
    let s = Services::new();
    let town = s.town(&nats).await;
    let an_loc = s.ward(&nats, "25324").await;
    let hung_chien = s.ward(&nats, "25320").await;
    s.observe(&an_loc, 3, 50).await;
    s.observe(&hung_chien, 7, 100).await;
    s.town_applied(&town, "25324", 1).await;
    s.town_applied(&town, "25320", 1).await;

    // Hưng Chiến's own identity, used by an attacker who took its laptop.
    let (a, errors) = nats.connect_as(&ward_identity("25320")).await;
    let b_events = subject::ward_events_filter("70", "690", "25324");

    // Publish as another ward, or as the town.
    for subject in
        ["treem.v1.events.70.690.25324.case.opened", &subject::town_replay_subject("70", "690"), "treem.v1.projections.70.690.indicators"]
    {
        refused_publish(&a, &errors, subject, "{}").await;
    }
    // Listen to another ward's subjects, or to all events.
    refused_subscribe(&a, &errors, &b_events).await;
    refused_subscribe(&a, &errors, "treem.v1.events.>").await;
    // Read another ward's events through the JetStream API: by sequence,
    // by subject, with a consumer of its own, through another's consumer.
    let api = [
        format!("$JS.API.STREAM.MSG.GET.{EVENTS}"),
        format!("$JS.API.DIRECT.GET.{EVENTS}"),
        format!("$JS.API.DIRECT.GET.{EVENTS}.{b_events}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENTS}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENTS}.spy.{b_events}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENTS}.ward-25320-probe.{b_events}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.ward-25324-probe"),
        format!("$JS.API.CONSUMER.RESET.{EVENTS}.ward-25324-probe"),
        format!("$JS.API.CONSUMER.INFO.{EVENTS}.ward-25324-probe"),
        format!("$JS.API.CONSUMER.INFO.{EVENTS}.town-690"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.town-690"),
        format!("$JS.API.STREAM.INFO.{EVENTS}"),
        format!("$JS.API.STREAM.UPDATE.{EVENTS}"),
    ];
    for subject in &api {
        refused_publish(&a, &errors, subject, r#"{"seq":1}"#).await;
    }

    // What it may read is its own: the newest message on its subjects, and
    // its probe consumer, whose filter the town set.
    let js = async_nats::jetstream::new(a.clone());
    let stream = js.get_stream_no_info(EVENTS).await.expect("stream handle");
    let own = stream.direct_get_last_for_subject(subject::ward_events_filter("70", "690", "25320")).await.expect("own newest");
    assert!(own.subject.starts_with("treem.v1.events.70.690.25320."), "{}", own.subject);
    stream.reset_consumer("ward-25320-probe", Some(1)).await.expect("reset its own probe");
    let probe = format!("$JS.API.CONSUMER.MSG.NEXT.{EVENTS}.ward-25320-probe");
    let inbox = a.new_inbox();
    let mut replies = a.subscribe(inbox.clone()).await.unwrap();
    a.publish_with_reply(probe, inbox, r#"{"batch":1,"no_wait":true}"#.into()).await.unwrap();
    let pulled = tokio::time::timeout(WAIT, replies.next()).await.expect("pull its own probe").expect("a message");
    assert!(pulled.subject.starts_with("treem.v1.events.70.690.25320."), "only its own events come: {}", pulled.subject);
    // An answer aimed at the town's dead-letter subject (reply subjects are
    // not checked by permissions) stays in the ward's own account: the town's
    // dead-letter stream, made here by the town's identity, gets nothing.
    let (t, _) = nats.connect_as(&town_identity("690")).await;
    let town_js = async_nats::jetstream::new(t);
    town_js.get_or_create_stream(treem_town::deadletter::stream_config(&treem_town::Config::default())).await.expect("dead-letter stream");
    let deadletter = subject::deadletter_subject("70", "690");
    let direct_own = format!("$JS.API.DIRECT.GET.{EVENTS}.{}", subject::ward_events_filter("70", "690", "25320"));
    a.publish_with_reply(direct_own.clone(), deadletter.clone(), "".into()).await.expect("publish");
    a.request(direct_own, "".into()).await.expect("a later request is answered after the first");
    let ack = town_js.publish(deadletter, "barrier".into()).await.expect("publish").await.expect("ack");
    assert_eq!(ack.sequence, 1, "the ward's redirected answer never reached the town's stream");

    assert!(!errors.all().iter().any(|e| e.contains("25320.")), "nothing of its own was refused: {:?}", errors.all());
    for ward in [hung_chien, an_loc] {
        ward.shutdown().await;
    }
    town.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_province_cannot_read_case_events_and_a_town_reads_only_its_own() {
    let nats = SecureNats::start().await;
    let s = Services::new();
    let town = s.town(&nats).await;
    let hung_chien = s.ward(&nats, "25320").await;
    s.observe(&hung_chien, 7, 100).await;
    s.town_applied(&town, "25320", 1).await;

    // The province: no event subject, no API of the town's stream.
    let (p, errors) = nats.connect_as(&province_identity()).await;
    refused_subscribe(&p, &errors, "treem.v1.events.>").await;
    refused_subscribe(&p, &errors, ">").await;
    for subject in [
        format!("$JS.API.STREAM.INFO.{EVENTS}"),
        format!("$JS.API.STREAM.MSG.GET.{EVENTS}"),
        format!("$JS.API.DIRECT.GET.{EVENTS}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENTS}"),
        "treem.v1.events.70.690.25320.case.opened".to_string(),
    ] {
        refused_publish(&p, &errors, &subject, "{}").await;
    }
    // It may create its own stream, and a stream's body names its sources:
    // the events stream is not in the province's account, so there is
    // nothing to copy.
    let projections = subject::province_projections_stream("70");
    sourcing_finds_nothing(&p, &projections, EVENTS).await;

    // Another town (691): nothing of town 690.
    let (t, errors) = nats.connect_as(&town_identity(OTHER_TOWN)).await;
    refused_subscribe(&t, &errors, &subject::town_events_filter("70", "690")).await;
    for subject in [
        format!("$JS.API.STREAM.INFO.{EVENTS}"),
        format!("$JS.API.CONSUMER.CREATE.{EVENTS}"),
        "treem.v1.projections.70.690.indicators".into(),
    ] {
        refused_publish(&t, &errors, &subject, "{}").await;
    }
    let other = subject::town_events_stream("70", OTHER_TOWN);
    sourcing_finds_nothing(&t, &other, EVENTS).await;

    hung_chien.shutdown().await;
    town.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_anonymous_unknown_and_untrusted_clients_are_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    treem_tests::init_tracing();
    let nats = SecureNats::start().await;

    // Plain TCP: the server announces TLS and never answers in clear.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", nats.port())).await.expect("tcp");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"\r\n") {
        let n = tcp.read(&mut buf).await.expect("read INFO");
        assert!(n > 0, "closed before INFO");
        seen.extend_from_slice(&buf[..n]);
    }
    let info = String::from_utf8_lossy(&seen).to_string();
    assert!(info.starts_with("INFO ") && info.contains("\"tls_required\":true"), "{info}");
    tcp.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n").await.expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(closed.is_ok(), "the server closes a plaintext client");
    assert!(!rest.contains("PONG"), "no answer in clear: {rest}");

    // TLS without credentials, and with a key the server does not know.
    let anonymous = nats.connect_with(async_nats::ConnectOptions::new()).await.err().expect("anonymous refused");
    assert!(anonymous.to_string().to_lowercase().contains("authorization violation"), "{anonymous}");
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = KeyDir::open(elsewhere.path()).unwrap();
    stranger.ensure("ward-70-690-25320").unwrap();
    let seed = std::fs::read_to_string(stranger.seed_file("ward-70-690-25320")).unwrap();
    let unknown = nats.connect_with(async_nats::ConnectOptions::with_nkey(seed.trim().into())).await.err().expect("unknown key refused");
    assert!(unknown.to_string().to_lowercase().contains("authorization violation"), "{unknown}");

    // A client that trusts another CA (or only the system's) does not talk
    // to this server: the certificate is checked.
    let other_ca = treem_tests::secure::TestCa::new("some other CA");
    let other_ca_file = elsewhere.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca.cert_pem).unwrap();
    let seed = std::fs::read_to_string(nats.seed_file(&ward_identity("25320"))).unwrap();
    let untrusting = async_nats::ConnectOptions::with_nkey(seed.trim().into())
        .add_root_certificates(other_ca_file)
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .connect(nats.url())
        .await;
    assert!(untrusting.is_err(), "a server certificate from an unknown CA is refused");
    // And the right key over the right TLS works.
    let (ok, _) = nats.connect_as(&ward_identity("25320")).await;
    ok.flush().await.expect("connected");

    // A service refuses, at start, a seed file others may read.
    let seed_file = elsewhere.path().join("loose.nk");
    std::fs::write(&seed_file, &seed).unwrap();
    let config = treem_ward::Config {
        ward: "25320".into(),
        nats_url: nats.url(),
        nats_nkey_seed_file: Some(seed_file),
        nats_tls_ca_file: Some(nats.ca_file()),
        ..Default::default()
    };
    let e = config.validate().expect_err("world-readable seed refused");
    assert!(e.to_string().contains("chmod 600"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_revocation_take_effect_at_the_reload() {
    treem_tests::init_tracing();
    let nats = SecureNats::start().await;
    let id = ward_identity("25320");
    let keys = KeyDir::open(&nats.conf_dir()).unwrap();
    let with_seed = |path: std::path::PathBuf| async_nats::ConnectOptions::with_nkey(std::fs::read_to_string(path).unwrap().trim().into());
    let old_seed = std::fs::read_to_string(keys.seed_file(&id)).unwrap();
    let (old_client, _) = nats.connect_as(&id).await;

    // Rotation, step 1: a second key; both work after the reload.
    nats.generate(AuthCommand::Rotate { identity: id.clone() });
    nats.reload().await;
    let (next_client, _) = nats.connect_with(with_seed(keys.next_seed_file(&id))).await.expect("the next key works");
    old_client.publish("treem.v1.events.70.690.25320.case.opened", "x".into()).await.unwrap();
    old_client.flush().await.expect("the old key still works during the rotation");
    assert_eq!(old_client.connection_state(), State::Connected);

    // Step 2: the next key is the only one; the old one is refused and its
    // connection closed at the reload.
    nats.generate(AuthCommand::FinishRotation { identity: id.clone() });
    nats.reload().await;
    wait_for("the connection on the old key is closed", WAIT, || {
        let state = old_client.connection_state();
        async move { (state != State::Connected).then_some(()) }
    })
    .await;
    let refused = nats.connect_with(async_nats::ConnectOptions::with_nkey(old_seed.trim().into())).await.err().expect("old key refused");
    assert!(refused.to_string().to_lowercase().contains("authorization violation"), "{refused}");
    next_client.flush().await.expect("the new key's connection stays");
    let current = std::fs::read_to_string(keys.seed_file(&id)).unwrap();
    assert_ne!(current, old_seed);

    // Revocation (a stolen laptop): every key replaced; the current one is
    // refused from the reload on, a fresh seed file works.
    nats.generate(AuthCommand::Revoke { identity: id.clone() });
    nats.reload().await;
    wait_for("the connection on the revoked key is closed", WAIT, || {
        let state = next_client.connection_state();
        async move { (state != State::Connected).then_some(()) }
    })
    .await;
    let revoked = nats.connect_with(async_nats::ConnectOptions::with_nkey(current.trim().into())).await.err().expect("revoked key refused");
    assert!(revoked.to_string().to_lowercase().contains("authorization violation"), "{revoked}");
    let auth: ClientAuth = nats.auth(&id);
    auth.validate().expect("the new seed file is private and valid");
    let (fresh, _) = nats.connect_as(&id).await;
    fresh.flush().await.expect("the new key works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_a_client_needs_a_certificate_from_the_office_ca() {
    treem_tests::init_tracing();
    let nats = SecureNats::start_with(true).await;
    let id = ward_identity("25320");
    let seed = std::fs::read_to_string(nats.seed_file(&id)).unwrap();
    let without_cert = async_nats::ConnectOptions::with_nkey(seed.trim().into())
        .add_root_certificates(nats.ca_file())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .connect(nats.url())
        .await;
    assert!(without_cert.is_err(), "the right key without a client certificate is refused");

    // A ward configured as SECURITY.md says: seed, CA, its certificate.
    let (cert, key) = nats.client_cert("ward-25320");
    let auth = ClientAuth { tls_cert_file: Some(cert), tls_key_file: Some(key), ..nats.auth(&id) };
    auth.validate().expect("valid mutual TLS settings");
    let client = auth
        .apply(async_nats::ConnectOptions::new())
        .unwrap()
        .connection_timeout(Duration::from_secs(5))
        .connect(nats.url())
        .await
        .expect("seed + CA + client certificate connects");
    client.flush().await.expect("connected");
}
