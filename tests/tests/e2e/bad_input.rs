//! Bad input at every interface is refused with a message that says what
//! and why, and nothing recorded before changes: the ward's HTTP API, its
//! CLI, its CSV import, and the town's and province's query APIs. (A
//! malformed message on the stream is in `delivery.rs`.)

use std::process::Command;

use serde_json::{Value, json};

use crate::crash::bin;
use crate::system::{System, observed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interface_refuses_bad_input_and_changes_nothing() {
    let sys = System::new().await;
    let town = sys.town().await;
    let province = sys.province().await;
    let ward = sys.ward("25333").await;
    sys.record(&ward, "indicator.observed", observed("4a", 2024, 7, 100)).await;
    sys.town_applied(&town, "25333", 1).await;
    let events_url = format!("http://{}/api/v1/events", ward.http_addr);
    let before = sys.get(format!("{events_url}?after=0")).await;

    // HTTP: (body, words the error must contain)
    let cases: [(Value, &str); 7] = [
        (json!({"kind": "indicator.observed", "body": observed("4z", 2024, 1, 100)}), "unknown indicator"),
        (json!({"kind": "indicator.observed", "body": observed("4a", 2024, 101, 100)}), "greater than denominator"),
        (json!({"kind": "indicator.observed", "body": observed("4a", 2031, 1, 100)}), "outside the plan period"),
        (json!({"kind": "indicator.observed", "body": observed("8a", 2024, 1, 100)}), "computed"),
        (json!({"kind": "child.teleported", "body": {}}), "kind"),
        (json!({"kind": "population.reported", "body": {"year": 2024, "figures": {}}}), "no figures"),
        (json!({"kind": "event.retracted", "body": {"replaces": uuid::Uuid::now_v7(), "reason": "typo"}}), "event"),
    ];
    for (body, words) in cases {
        let (status, resp) = sys.post(events_url.clone(), body.clone()).await;
        assert!((400..500).contains(&status), "{body} → {status} {resp}");
        let msg = resp["error"].as_str().unwrap_or_else(|| panic!("no error message for {body}: {resp}"));
        assert!(msg.to_lowercase().contains(words), "{body}: error {msg:?} should mention {words:?}");
    }
    let r = sys.http.post(&events_url).header("content-type", "application/json").body("{\"kind\": ").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().to_lowercase().contains("json"), "{v}");
    let (status, resp) = sys
        .post(
            format!("http://{}/api/v1/cases", ward.http_addr),
            json!({"identity": {"name": "X", "date_of_birth": "2030-01-01", "address": "a", "guardian": "b"}, "year": 2024, "category": "abuse", "sex": "male"}),
        )
        .await;
    assert!((400..500).contains(&status), "future birth date accepted: {resp}");
    assert_eq!(sys.get(format!("{events_url}?after=0")).await, before, "refused HTTP input changed the log");

    // Town and province queries.
    for (url, words) in [
        (format!("http://{}/api/v1/indicators?year=2040", town.http_addr), "2021–2030"),
        (format!("http://{}/api/v1/indicators?year=2024&ward=11111", town.http_addr), "11111"),
        (format!("http://{}/api/v1/indicators?year=2024&code=99", town.http_addr), "unknown indicator"),
        (format!("http://{}/api/v1/indicators?year=abc", town.http_addr), "year"),
        (format!("http://{}/api/v1/indicators?year=2040", province.http_addr), "2030"),
    ] {
        let r = sys.http.get(&url).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert!((400..500).contains(&status), "{url} → {status} {v}");
        assert!(v["error"].as_str().unwrap().contains(words), "{url}: {v} should mention {words:?}");
    }
    ward.shutdown().await;

    // CLI and CSV against the stopped node's own log.
    let data = sys.ward_config("25333").data_dir;
    let cli = |args: &[&str]| {
        Command::new(bin("treem-ward"))
            .args(args)
            .env("TREEM_WARD_WARD", "25333")
            .env("TREEM_WARD_DATA_DIR", &data)
            .env("TREEM_WARD_NATS_URL", sys.nats.url())
            .output()
            .expect("treem-ward runs")
    };
    let out = cli(&[
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
        "health_centre",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("greater than denominator"), "CLI error: {err}");
    let csv = sys.path("bad.csv");
    std::fs::write(
        &csv,
        "indicator,year,numerator,denominator,source\n4a,2024,5,100,health_centre\n4z,2024,1,100,school\n2,2035,1,10,school\n",
    )
    .unwrap();
    let out = cli(&["import-csv", csv.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row") && err.contains("4z") && err.contains("2035"), "CSV error names every bad row: {err}");
    let out = cli(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains('1'), "status after refused CLI/CSV input: {status}");
    let ward = sys.ward("25333").await;
    assert_eq!(sys.get(format!("http://{}/api/v1/events?after=0", ward.http_addr)).await, before, "refused CLI/CSV input changed the log");
    ward.shutdown().await;
    town.shutdown().await;
    province.shutdown().await;
}
