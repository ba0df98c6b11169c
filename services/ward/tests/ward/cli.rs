//! The `treem-ward` binary: recording offline, clear errors with a non-zero
//! exit, falling back to the running node's HTTP API when `serve` holds the
//! log, and recorded events surviving `kill -9`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use treem_proto::catalogue::Catalogue;
use treem_ward::WardLog;

use crate::common::{dead_nats_url, observation, wait_until, ward_path};

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("ward.toml");
    let text = format!(
        "ward = \"25320\"\nauthor = \"officer-cli\"\ndata_dir = {:?}\nhttp_addr = \"127.0.0.1:0\"\nnats_url = {:?}\nbackoff_max_ms = 300\n",
        dir.join("data"),
        dead_nats_url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn ward(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_treem-ward"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TREEM_WARD_WARD")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn serve(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_treem-ward"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_for_addr(dir: &Path) {
    let addr = dir.join("data").join("http.addr");
    wait_until("the node to write http.addr", Duration::from_secs(20), || {
        let addr = addr.clone();
        async move { addr.exists() }
    })
    .await;
}

#[tokio::test]
async fn cli_records_offline_and_through_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());

    let out = ok(&ward(&config, &["check-config"]));
    assert!(out.contains("Hưng Chiến"), "{out}");

    let observation = [
        "record",
        "observation",
        "--indicator",
        "4a",
        "--year",
        "2024",
        "--numerator",
        "7",
        "--denominator",
        "100",
        "--source",
        "health_centre",
    ];
    let out = ok(&ward(&config, &observation));
    assert!(out.contains("recorded indicator.observed as seq 1"), "{out}");

    let err = failed(&ward(
        &config,
        &[
            "record",
            "observation",
            "--indicator",
            "4a",
            "--year",
            "2024",
            "--numerator",
            "200",
            "--denominator",
            "100",
            "--source",
            "school",
        ],
    ));
    assert!(err.contains("numerator 200 is greater than denominator 100"), "{err}");
    let err = failed(&ward(&config, &["record", "population", "--year", "2024"]));
    assert!(err.contains("give at least one group"), "{err}");

    ok(&ward(&config, &["record", "population", "--year", "2024", "--children-under-16", "1200", "--children-under-5", "400"]));
    ok(&ward(&config, &["record", "recognition", "--recognition", "child_friendly", "--year", "2024"]));
    let out = ok(&ward(
        &config,
        &[
            "case",
            "open",
            "--name",
            "Nguyễn Văn A",
            "--date-of-birth",
            "2014-05-01",
            "--address",
            "Khu phố 2",
            "--guardian",
            "Nguyễn Văn B",
            "--year",
            "2024",
            "--category",
            "special_circumstances",
            "--groups",
            "a,c",
            "--sex",
            "male",
        ],
    ));
    let case_id = out.split_whitespace().skip_while(|w| *w != "id").nth(1).unwrap().to_owned();
    ok(&ward(&config, &["case", "support", "--case-id", &case_id, "--year", "2024", "--support", "care"]));

    // The node starts and holds the log: the CLI goes through its HTTP API.
    let mut node = serve(&config);
    wait_for_addr(dir.path()).await;
    let out = ok(&ward(&config, &observation));
    assert!(out.contains("as seq 6"), "{out}");
    assert!(!out.contains("next time"), "recorded through the running node: {out}");
    let out = ok(&ward(&config, &["case", "close", "--case-id", &case_id, "--year", "2024", "--reason", "returned to family"]));
    assert!(out.contains("seq 7"), "{out}");

    let log = ok(&ward(&config, &["log"]));
    let first_id = log.lines().next().unwrap().split_whitespace().nth(5).unwrap().to_owned();
    let out = ok(&ward(
        &config,
        &[
            "correct",
            "--event-id",
            &first_id,
            "--reason",
            "typo",
            "observation",
            "--indicator",
            "4a",
            "--year",
            "2024",
            "--numerator",
            "8",
            "--denominator",
            "100",
            "--source",
            "health_centre",
        ],
    ));
    assert!(out.contains("recorded event.corrected as seq 8"), "{out}");
    let body =
        r#"{"kind":"indicator.observed","body":{"indicator":"4a","year":2024,"numerator":9,"denominator":100,"source":"health_centre"}}"#;
    let err = failed(&ward(
        &config,
        &[
            "correct",
            "--event-id",
            &first_id,
            "--reason",
            "typo",
            "--body",
            body,
            "recognition",
            "--recognition",
            "play_space",
            "--year",
            "2024",
        ],
    ));
    assert!(err.contains("not both"), "{err}");
    ok(&ward(&config, &["correct", "--event-id", &first_id, "--reason", "typo again", "--body", body]));
    let err = failed(&ward(&config, &["retract", "--event-id", &case_id, "--reason", "wrong"]));
    assert!(err.contains("is not in this ward's log"), "{err}");
    ok(&ward(&config, &["retract", "--event-id", &first_id, "--reason", "recorded twice"]));

    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "indicator,year,numerator,denominator,source\n4b,2024,3,90,health_centre\n4c,2024,2,90,health_centre\n").unwrap();
    let out = ok(&ward(&config, &["import-csv", csv.to_str().unwrap()]));
    assert!(out.contains("imported 2 rows"), "{out}");
    std::fs::write(&csv, "indicator,year,numerator,denominator,source\n4b,2024,3,90,health_centre\n99,2024,2,90,health_centre\n").unwrap();
    let err = failed(&ward(&config, &["import-csv", csv.to_str().unwrap()]));
    assert!(err.contains("row 3: unknown indicator \"99\""), "{err}");

    let status = ok(&ward(&config, &["status"]));
    assert!(status.contains("recorded events:   12"), "{status}");
    assert!(status.contains("pending:           12"), "{status}");
    assert!(status.contains("last sync:         never"), "{status}");
    let log = ok(&ward(&config, &["log", "--after", "10"]));
    assert_eq!(log.lines().count(), 2, "{log}");
    let json = ok(&ward(&config, &["log", "--json", "--limit", "1"]));
    let env = treem_proto::Envelope::decode(json.trim().as_bytes()).unwrap();
    assert_eq!((env.seq, env.author.as_str()), (1, "officer-cli"));

    node.kill().unwrap();
    node.wait().unwrap();
    let status = ok(&ward(&config, &["status"]));
    assert!(status.contains("recorded events:   12"), "{status}");
    let err = failed(&ward(&dir.path().join("missing.toml"), &["status"]));
    assert!(err.contains("cannot read config file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut node = serve(&config);
    wait_for_addr(dir.path()).await;
    let addr = std::fs::read_to_string(dir.path().join("data").join("http.addr")).unwrap();
    let client = reqwest::Client::new();
    let posts: Vec<_> = (0..64u64)
        .map(|i| {
            let (client, url) = (client.clone(), format!("http://{addr}/api/v1/events"));
            tokio::spawn(async move {
                let body = treem_ward::http::events::request_body(None, &observation(i));
                let resp = client.post(url).json(&body).send().await.unwrap();
                assert_eq!(resp.status().as_u16(), 201);
                resp.json::<treem_ward::http::events::Recorded>().await.unwrap().id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for p in posts {
        ids.push(p.await.unwrap());
    }
    // SIGKILL: no shutdown, no final flush.
    node.kill().unwrap();
    node.wait().unwrap();
    let log = WardLog::open(&dir.path().join("data"), ward_path(), Catalogue::shipped()).unwrap();
    assert_eq!(log.last_seq(), 64);
    for id in ids {
        assert!(log.get(id).unwrap().is_some(), "recorded event {id} lost");
    }
}
