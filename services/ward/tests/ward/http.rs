//! The local HTTP API: recording, listing, status, and refusals that say
//! what was wrong and leave the log untouched.

use serde_json::{Value, json};

use crate::common::{config, dead_nats_url};

async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let resp = client.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn record_list_and_refuse_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let base = format!("http://{}", node.http_addr);
    let client = reqwest::Client::new();

    // http.addr names the bound address.
    let written = std::fs::read_to_string(dir.path().join("http.addr")).unwrap();
    assert_eq!(written, node.http_addr.to_string());

    let health = get_json(&client, &format!("{base}/health")).await;
    assert_eq!(health, json!({"status": "ok", "ward": "25320"}));

    let good = json!({
        "author": "officer-7",
        "kind": "indicator.observed",
        "body": {"indicator": "4a", "year": 2024, "numerator": 7, "denominator": 100, "source": "health_centre"}
    });
    let (status, recorded) = post(&client, &format!("{base}/api/v1/events"), good.to_string()).await;
    assert_eq!(status, 201, "{recorded}");
    assert_eq!(recorded["seq"], 1);
    assert_eq!(recorded["kind"], "indicator.observed");
    assert!(recorded["id"].as_str().unwrap().len() == 36);
    assert!(recorded["recorded_at"].is_string());

    // Without an author, the configured default is written.
    let mut anonymous = good.clone();
    anonymous.as_object_mut().unwrap().remove("author");
    let (status, _) = post(&client, &format!("{base}/api/v1/events"), anonymous.to_string()).await;
    assert_eq!(status, 201);

    let body = |b: Value| json!({"kind": "indicator.observed", "body": b}).to_string();
    let bad = [
        ("{\"kind\": \"indicator.observed\", \"body\": ".to_string(), 400, "not valid JSON"),
        ("[1, 2]".to_string(), 422, "JSON object"),
        (
            body(json!({"indicator": "4z", "year": 2024, "numerator": 1, "denominator": 2, "source": "school"})),
            422,
            "unknown indicator \"4z\"; known codes are",
        ),
        (
            body(json!({"indicator": "4a", "year": 2024, "numerator": 120, "denominator": 100, "source": "school"})),
            422,
            "numerator 120 is greater than denominator 100",
        ),
        (
            body(json!({"indicator": "4a", "year": 2031, "numerator": 1, "denominator": 100, "source": "school"})),
            422,
            "year 2031 is outside the plan period",
        ),
        (
            body(json!({"indicator": "4a", "year": 2024, "numerator": 1, "source": "school"})),
            422,
            "give a denominator",
        ),
        (body(json!({"indicator": "4a", "year": 2024})), 422, "missing field"),
        (json!({"kind": "indicator.eaten", "body": {}}).to_string(), 422, "unknown kind \"indicator.eaten\"; known kinds are"),
        (json!({"body": {}}).to_string(), 422, "\"kind\" is missing"),
        (
            json!({"kind": "case.opened", "body": {"case_id": uuid::Uuid::new_v4(), "year": 2024, "category": "abuse", "sex": "male", "age_band": "5-10"}}).to_string(),
            422,
            "POST /api/v1/cases",
        ),
        (
            json!({"kind": "event.retracted", "body": {"replaces": uuid::Uuid::now_v7(), "reason": "typo"}}).to_string(),
            422,
            "not in this ward's log",
        ),
        (
            json!({"author": 5, "kind": "indicator.observed", "body": {}}).to_string(),
            422,
            "\"author\" must be a string",
        ),
    ];
    for (payload, want_status, want_msg) in bad {
        let (status, err) = post(&client, &format!("{base}/api/v1/events"), payload.clone()).await;
        assert_eq!(status, want_status, "{payload} → {err}");
        let msg = err["error"].as_str().unwrap_or_else(|| panic!("no error message: {err}"));
        assert!(msg.contains(want_msg), "{payload}: expected {want_msg:?} in {msg:?}");
    }

    // Nothing of the refused requests was recorded.
    let status = get_json(&client, &format!("{base}/api/v1/status")).await;
    assert_eq!(status["ward"], "25320");
    assert_eq!(status["last_seq"], 2);
    assert_eq!(status["acked_seq"], 0);
    assert_eq!(status["pending"], 2);
    let events = get_json(&client, &format!("{base}/api/v1/events?after=0&limit=100")).await;
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["author"], "officer-7");
    assert_eq!(events[1]["author"], "officer");
    assert_eq!(events[0]["ward"], "25320");
    assert_eq!(events[0]["schema"], treem_proto::event::SCHEMA_VERSION);
    assert_eq!(events[0]["body"]["indicator"], "4a");
    let after = get_json(&client, &format!("{base}/api/v1/events?after=1")).await;
    assert_eq!(after.as_array().unwrap().len(), 1);
    let resp = client.get(format!("{base}/api/v1/events?after=minus-one")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("?after="));

    // A correction of the first event, then a correction of a correction is refused.
    let first_id = events[0]["id"].as_str().unwrap().to_owned();
    let correction = json!({"kind": "event.corrected", "body": {"replaces": first_id, "reason": "typo", "corrected":
        {"kind": "indicator.observed", "body": {"indicator": "4a", "year": 2024, "numerator": 8, "denominator": 100, "source": "health_centre"}}}});
    let (status, c) = post(&client, &format!("{base}/api/v1/events"), correction.to_string()).await;
    assert_eq!(status, 201, "{c}");
    let nested = json!({"kind": "event.retracted", "body": {"replaces": c["id"], "reason": "x"}});
    let (status, err) = post(&client, &format!("{base}/api/v1/events"), nested.to_string()).await;
    assert_eq!(status, 422);
    assert!(err["error"].as_str().unwrap().contains("correct or retract the original event"), "{err}");

    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("treem_ward_last_seq{ward=\"25320\"} 3"), "{metrics}");
    assert!(metrics.contains("treem_ward_acked_seq{ward=\"25320\"} 0"), "{metrics}");
    assert!(metrics.contains("treem_ward_pending{ward=\"25320\"} 3"), "{metrics}");

    node.shutdown().await;
    assert!(!dir.path().join("http.addr").exists(), "http.addr is removed on shutdown");
}

#[tokio::test]
async fn open_a_case_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let node = treem_ward::start(config(dir.path(), &dead_nats_url())).await.unwrap();
    let base = format!("http://{}", node.http_addr);
    let client = reqwest::Client::new();
    let case = json!({
        "identity": {"name": "Nguyễn Văn A", "date_of_birth": "2015-09-02", "address": "Khu phố 3", "guardian": "Nguyễn Thị B"},
        "year": 2024, "category": "special_circumstances", "groups": ["a", "c"], "sex": "male"
    });
    let (status, opened) = post(&client, &format!("{base}/api/v1/cases"), case.to_string()).await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["seq"], 1);
    let case_id = opened["case_id"].as_str().unwrap().to_owned();

    let events = get_json(&client, &format!("{base}/api/v1/events")).await;
    let body = &events[0]["body"];
    assert_eq!(events[0]["kind"], "case.opened");
    assert_eq!(body["case_id"], case_id.as_str());
    assert_eq!(body["age_band"], "5-10", "8 years old on 1 July 2024");
    assert_eq!(body["groups"], json!(["a", "c"]));

    let support = json!({"kind": "case.support_recorded", "body": {"case_id": case_id, "year": 2024, "support": "care"}});
    let (status, _) = post(&client, &format!("{base}/api/v1/events"), support.to_string()).await;
    assert_eq!(status, 201);

    let refusals = [
        (
            json!({"identity": {"name": "", "date_of_birth": "2015-09-02", "address": "x", "guardian": "y"}, "year": 2024, "category": "abuse", "sex": "female"}),
            "identity.name must not be empty",
        ),
        (
            json!({"identity": {"name": "A", "date_of_birth": "2099-01-01", "address": "x", "guardian": "y"}, "year": 2024, "category": "abuse", "sex": "female"}),
            "in the future",
        ),
        (
            json!({"identity": {"name": "A", "date_of_birth": "2000-01-01", "address": "x", "guardian": "y"}, "year": 2024, "category": "abuse", "sex": "female"}),
            "under 18",
        ),
        (
            json!({"identity": {"name": "A", "date_of_birth": "2015-01-01", "address": "x", "guardian": "y"}, "year": 2024, "category": "special_circumstances", "sex": "female"}),
            "at least one art. 10 point",
        ),
        (
            json!({"identity": {"name": "A", "date_of_birth": "2015-01-01", "address": "x", "guardian": "y"}, "year": 2024, "category": "aliens", "sex": "female"}),
            "unknown variant",
        ),
        (json!({"year": 2024, "category": "abuse", "sex": "female"}), "missing field `identity`"),
    ];
    for (req, want) in refusals {
        let (status, err) = post(&client, &format!("{base}/api/v1/cases"), req.to_string()).await;
        assert_eq!(status, 422, "{req} → {err}");
        assert!(err["error"].as_str().unwrap().contains(want), "expected {want:?} in {err}");
    }
    let status = get_json(&client, &format!("{base}/api/v1/status")).await;
    assert_eq!(status["last_seq"], 2, "refused cases recorded nothing");
    node.shutdown().await;
}
