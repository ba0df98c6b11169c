//! A child's identity never leaves the ward, consent withdrawal erases it
//! for good without changing a count, and small sensitive counts never
//! reach the province (SECURITY.md, "A child's identity").
//!
//! Canary identities (distinctive names, birth dates, addresses, guardians)
//! are planted in cases at two wards and the whole path runs: ward → town →
//! province. Meanwhile a tap subscribed to `>` records every message on
//! every subject of the NATS server — events, JetStream API requests and
//! replies, pull deliveries to inboxes, acks, snapshots. Then:
//!
//! - no captured message (subject, headers, payload) holds a canary;
//! - no file of the town's, the province's or the NATS server's data
//!   directories holds one (raw bytes, every file);
//! - no response of any town or province endpoint holds one;
//! - the wards' own files hold the identities only sealed: no canary in
//!   plaintext in any file, sled's included;
//! - after consent is withdrawn for a case, no file of its ward holds that
//!   case's key, the identity reads as erased, and the town's counts are
//!   exactly what they were;
//! - the province shows the small abuse and HIV figures as suppressed
//!   (`null`, never 0) while the town office sees them, and the figures
//!   that are not sensitive or not small add up exactly.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::{Value, json};
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};

const YEAR: u16 = 2025;

/// One planted identity. Every field is distinctive enough that finding it
/// anywhere outside the ward can only mean a leak.
struct Canary {
    name: String,
    date_of_birth: &'static str,
    address: String,
    guardian: String,
}

const BIRTH_DATES: [&str; 10] = [
    "2013-11-17",
    "2012-10-16",
    "2011-09-13",
    "2014-08-19",
    "2010-12-23",
    "2013-01-29",
    "2012-05-31",
    "2011-03-07",
    "2014-06-03",
    "2010-04-11",
];

fn canary(i: usize) -> Canary {
    Canary {
        name: format!("CANARY-NAME-Đinh Thị Mật {i}"),
        date_of_birth: BIRTH_DATES[i],
        address: format!("CANARY-ADDR-Tổ {i} Khu phố Kín"),
        guardian: format!("CANARY-GUARDIAN-Hoàng Văn Giữ {i}"),
    }
}

/// What must never be found outside the ward: the full values, their ASCII
/// tags (which no escaping can hide), and the dates as an officer would
/// also write them.
fn needles(count: usize) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = ["CANARY-NAME", "CANARY-ADDR", "CANARY-GUARDIAN", "Đinh Thị Mật", "Khu phố Kín", "Hoàng Văn Giữ"]
        .map(|t| (t.to_string(), t.as_bytes().to_vec()))
        .to_vec();
    for c in (0..count).map(canary) {
        let (y, m, d) = (&c.date_of_birth[0..4], &c.date_of_birth[5..7], &c.date_of_birth[8..10]);
        for s in [c.name, c.address, c.guardian, c.date_of_birth.to_string(), format!("{d}/{m}/{y}")] {
            out.push((s.clone(), s.into_bytes()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first needle found in `bytes`, if any.
fn leak<'a>(bytes: &[u8], needles: &'a [(String, Vec<u8>)]) -> Option<&'a str> {
    needles.iter().find(|(_, n)| contains(bytes, n)).map(|(what, _)| what.as_str())
}

/// Every regular file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// Panics naming the file and the needle if any file under `dir` holds one.
/// Returns how many files were scanned.
fn scan_dir(dir: &Path, needles: &[(String, Vec<u8>)]) -> usize {
    let all = files(dir);
    for path in &all {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if let Some(what) = leak(&bytes, needles) {
            panic!("{what:?} found in {}", path.display());
        }
    }
    all.len()
}

/// One message seen on NATS.
struct Captured {
    subject: String,
    reply: Option<String>,
    headers: Vec<u8>,
    payload: Vec<u8>,
}

fn identity_json(c: &Canary) -> Value {
    json!({"name": c.name, "date_of_birth": c.date_of_birth, "address": c.address, "guardian": c.guardian})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_identities_never_leave_the_ward_and_small_sensitive_counts_never_reach_the_province() {
    let sys = System::new().await;

    // The tap: every message on every subject, from before anything starts.
    let tap = sys.nats.connect().await;
    let mut sub = tap.subscribe(">").await.expect("subscribe to >");
    tap.flush().await.expect("flush the tap's subscription");
    let captured: Arc<Mutex<Vec<Captured>>> = Arc::default();
    let recorder = {
        let captured = captured.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let mut headers = Vec::new();
                for (name, values) in m.headers.iter().flat_map(|h| h.iter()) {
                    for v in values {
                        headers.extend_from_slice(format!("{name}: {}\n", v.as_str()).as_bytes());
                    }
                }
                captured.lock().unwrap().push(Captured {
                    subject: m.subject.to_string(),
                    reply: m.reply.map(|r| r.to_string()),
                    headers,
                    payload: m.payload.to_vec(),
                });
            }
        })
    };

    let province = sys.province().await;
    let town = sys.town().await;
    let hung_chien = sys.ward("25320").await;
    let an_loc = sys.ward("25324").await;
    let sys_ref = &sys;
    let open_case = |ward: &treem_ward::Node, c: &Canary, category: &str, sex: &str| {
        let url = format!("http://{}/api/v1/cases", ward.http_addr);
        let body = json!({"identity": identity_json(c), "year": YEAR, "category": category, "sex": sex});
        let sys = sys_ref;
        async move {
            let (status, resp) = sys.post(url, body).await;
            assert_eq!(status, 201, "{resp}");
            resp["case_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()
        }
    };

    // Hưng Chiến: 2 abused children (a small sensitive count), 1 child
    // marriage, HIV: 1 infected infant of 3 born to mothers living with HIV.
    sys.record(
        &hung_chien,
        "population.reported",
        json!({"year": YEAR, "figures": {"children_under_16": 3000, "marriages_registered": 40}}),
    )
    .await;
    let erased = open_case(&hung_chien, &canary(0), "abuse", "female").await;
    open_case(&hung_chien, &canary(1), "abuse", "male").await;
    open_case(&hung_chien, &canary(2), "child_marriage", "female").await;
    sys.record(&hung_chien, "indicator.observed", observed("6", YEAR, 1, 3)).await;
    // An Lộc: 6 injured children and 5 child marriages (not small once added up).
    sys.record(&an_loc, "population.reported", json!({"year": YEAR, "figures": {"children_under_16": 2000, "marriages_registered": 30}}))
        .await;
    for i in 3..9 {
        open_case(&an_loc, &canary(i), "injury", if i % 2 == 0 { "female" } else { "male" }).await;
    }
    for i in 9..10 {
        open_case(&an_loc, &canary(i), "child_marriage", "female").await;
    }
    // Four more child marriages, with plain identities (the canaries are the ten above).
    for i in 0..4 {
        let c = Canary {
            name: format!("Nguyễn Thị Thường {i}"),
            date_of_birth: "2009-09-09",
            address: "Ấp 1".into(),
            guardian: "Nguyễn Văn Thường".into(),
        };
        open_case(&an_loc, &c, "child_marriage", "female").await;
    }
    let last_hung_chien = hung_chien.log.last_seq();
    let last_an_loc = an_loc.log.last_seq();
    sys.town_applied(&town, "25320", last_hung_chien).await;
    sys.town_applied(&town, "25324", last_an_loc).await;

    // The town office sees every figure.
    let nine = sys.town_indicator(&town, YEAR, "9", None).await;
    assert_eq!((nine["numerator"].as_u64(), nine["denominator"].as_u64()), (Some(2), Some(5000)), "{nine}");
    let town_cases = sys.get(format!("http://{}/api/v1/cases?year={YEAR}", town.http_addr)).await;
    assert_eq!(town_cases["categories"]["abuse"]["total"], 2, "{town_cases}");

    // The province: the small ones suppressed (null, never 0), the rest exact.
    let url = format!("http://{}/api/v1/indicators?year={YEAR}", province.http_addr);
    let indicators = wait_for("the province shows the year's figures", WAIT, || {
        let (url, http) = (url.clone(), sys.http.clone());
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let inds = v["indicators"].as_array()?.clone();
            let find = |c: &str| inds.iter().find(|i| i["code"] == c).cloned();
            (find("11a")?["numerator"] == 6 && find("13")?["numerator"] == 6 && find("9")?["suppressed"] == true).then_some(inds)
        }
    })
    .await;
    let find = |c: &str| indicators.iter().find(|i| i["code"] == c).unwrap().clone();
    let (nine, six, thirteen, injuries) = (find("9"), find("6"), find("13"), find("11a"));
    assert!(nine["numerator"].is_null() && nine["value"].is_null(), "suppressed, not zero: {nine}");
    assert_eq!((nine["denominator"].as_u64(), nine["status"].as_str()), (Some(5000), Some("no_data")), "{nine}");
    assert_eq!(nine["suppressed_by"], json!(["690"]));
    assert!(six["suppressed"] == true && six["numerator"].is_null() && six["denominator"].is_null(), "HIV: both counts withheld: {six}");
    assert_eq!((thirteen["suppressed"].as_bool(), thirteen["denominator"].as_u64()), (Some(false), Some(70)), "{thirteen}");
    assert_eq!((injuries["suppressed"].as_bool(), injuries["denominator"].as_u64()), (Some(false), Some(5000)), "{injuries}");
    let province_cases = sys.get(format!("http://{}/api/v1/cases?year={YEAR}", province.http_addr)).await;
    assert!(province_cases["cases_counted"]["abuse"].is_null(), "{province_cases}");
    assert_eq!(province_cases["suppressed"], json!(["abuse"]));
    assert_eq!(
        (province_cases["cases_counted"]["injury"].as_u64(), province_cases["cases_counted"]["child_marriage"].as_u64()),
        (Some(6), Some(6))
    );
    let sync = sys.get(format!("http://{}/api/v1/sync", province.http_addr)).await;
    assert_eq!(sync["towns"][0]["suppress_below"], 5, "{sync}");

    // Consent withdrawn for one abused child: erased at the ward, no count moves.
    let key_path = treem_ward::vault::Vault::open(hung_chien.data_dir()).unwrap().key_path(erased);
    let key_bytes = std::fs::read(&key_path).expect("the case's key");
    let (status, resp) = sys
        .post(
            format!("http://{}/api/v1/cases/{erased}/withdraw-consent", hung_chien.http_addr),
            json!({"reason": "written request of the guardian, 2025-06-01"}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    let r = sys.http.get(format!("http://{}/api/v1/cases/{erased}", hung_chien.http_addr)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 410);
    assert!(r.text().await.unwrap().contains("erased at the child's request on"));
    // One more event after it, so "the town has caught up" is observable.
    sys.record(&hung_chien, "indicator.observed", observed("4a", YEAR, 7, 100)).await;
    sys.town_applied(&town, "25320", hung_chien.log.last_seq()).await;
    assert_eq!(sys.get(format!("http://{}/api/v1/cases?year={YEAR}", town.http_addr)).await, town_cases, "the town's counts are unchanged");
    assert_eq!(sys.town_indicator(&town, YEAR, "9", None).await["numerator"], 2);

    // Every answer of the town and the province.
    let all = needles(10);
    let (t, p) = (town.http_addr, province.http_addr);
    let mut urls = vec![
        format!("http://{t}/health"),
        format!("http://{t}/metrics"),
        format!("http://{t}/api/v1/indicators?year={YEAR}"),
        format!("http://{t}/api/v1/cases?year={YEAR}"),
        format!("http://{t}/api/v1/sync"),
        format!("http://{t}/api/v1/parked"),
        format!("http://{p}/health"),
        format!("http://{p}/metrics"),
        format!("http://{p}/api/v1/indicators?year={YEAR}"),
        format!("http://{p}/api/v1/indicators?year={YEAR}&town=690"),
        format!("http://{p}/api/v1/cases?year={YEAR}"),
        format!("http://{p}/api/v1/cases?year={YEAR}&town=690"),
        format!("http://{p}/api/v1/sync"),
        format!("http://{p}/api/v1/parked"),
        // The ward's replicated form, which is what leaves it.
        format!("http://{}/api/v1/events?limit=1000", hung_chien.http_addr),
        format!("http://{}/api/v1/events?limit=1000", an_loc.http_addr),
    ];
    for w in ["25320", "25324"] {
        urls.push(format!("http://{t}/api/v1/indicators?year={YEAR}&ward={w}"));
        urls.push(format!("http://{t}/api/v1/cases?year={YEAR}&ward={w}"));
    }
    for url in &urls {
        let r = sys.http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(r.status().is_success(), "GET {url} → {}", r.status());
        let body = r.bytes().await.unwrap();
        if let Some(what) = leak(&body, &all) {
            panic!("{what:?} leaked in GET {url}: {}", String::from_utf8_lossy(&body));
        }
    }

    let ward_dirs = [hung_chien.data_dir().to_path_buf(), an_loc.data_dir().to_path_buf()];
    hung_chien.shutdown().await;
    an_loc.shutdown().await;
    town.shutdown().await;
    province.shutdown().await;
    drop(tap);
    recorder.abort();

    // Every message that crossed NATS.
    let captured = std::mem::take(&mut *captured.lock().unwrap());
    for m in &captured {
        for (part, bytes) in [("subject", m.subject.as_bytes()), ("headers", &m.headers[..]), ("payload", &m.payload[..])] {
            if let Some(what) = leak(bytes, &all) {
                panic!("{what:?} crossed NATS in the {part} of a message on {}: {}", m.subject, String::from_utf8_lossy(bytes));
            }
        }
    }
    // …and the tap really saw all the traffic: ward events, the JetStream
    // API, pull deliveries to the town's inbox, the town's snapshots.
    let prefixes: std::collections::BTreeSet<String> =
        captured.iter().map(|m| m.subject.split('.').take(4).collect::<Vec<_>>().join(".")).collect();
    let saw = |what: &str, f: &dyn Fn(&Captured) -> bool| assert!(captured.iter().any(f), "the tap saw no {what}; it saw {prefixes:?}");
    saw("case.opened event", &|m| m.subject.starts_with("treem.v1.events.70.690.25320.case.opened"));
    saw("JetStream API request", &|m| m.subject.starts_with("$JS.API."));
    // A pull delivery keeps the event's subject; its reply is the ack subject.
    saw("pull delivery to the town", &|m| {
        m.subject.starts_with("treem.v1.events.") && m.reply.as_deref().is_some_and(|r| r.starts_with("$JS.ACK.TREEM_EVENTS_70_690."))
    });
    saw("JetStream API reply to an inbox", &|m| m.subject.starts_with("_INBOX."));
    saw("acknowledgement", &|m| m.subject.starts_with("$JS.ACK."));
    saw("town snapshot", &|m| m.subject == "treem.v1.projections.70.690.indicators");
    // What the province received had the small counts withheld, not zeroed.
    let last_snapshot: Value = captured
        .iter()
        .rev()
        .filter(|m| m.subject == "treem.v1.projections.70.690.indicators")
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap())
        .find(|s| s["year"] == YEAR)
        .expect("a snapshot of the year");
    assert!(last_snapshot["cases_counted"].get("abuse").is_none() && last_snapshot["indicators"].get("9").is_none(), "{last_snapshot}");
    assert_eq!(last_snapshot["suppressed"]["cases"], json!(["abuse"]), "{last_snapshot}");

    // Every file of the town, the province and the NATS server (JetStream's store).
    let scanned = scan_dir(&sys.path("town"), &all) + scan_dir(&sys.path("province"), &all) + scan_dir(sys.nats.store_dir(), &all);
    assert!(scanned > 5, "the scans must have read the stores ({scanned} files)");
    // The wards: identities sealed, never plaintext; the erased case's key gone.
    for dir in &ward_dirs {
        scan_dir(dir, &all);
    }
    let mut with_key = all.clone();
    with_key.push(("the erased case's key".into(), key_bytes));
    scan_dir(&ward_dirs[0], &with_key);
    assert!(!key_path.exists());
}
