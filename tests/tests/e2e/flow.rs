//! Recorded at a ward → visible in the town API → visible at the province,
//! with values checked against numbers computed by hand.

use serde_json::{Value, json};
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_to_town_to_province_with_hand_computed_values() {
    let sys = System::new().await;
    let province = sys.province().await;
    let town = sys.town().await;
    let hung_chien = sys.ward("25320").await;
    let an_loc = sys.ward("25324").await;

    // Indicator 4a (under-5 underweight): 7 of 100 and 3 of 50 → town 10/150 = 6.67 % < 8 % target of 2025.
    sys.record(&hung_chien, "indicator.observed", observed("4a", 2025, 7, 100)).await;
    sys.record(&an_loc, "indicator.observed", observed("4a", 2025, 3, 50)).await;
    // Indicator 9 (abuse over children under 16): population and one abuse case at Hưng Chiến.
    sys.record(&hung_chien, "population.reported", json!({"year": 2025, "figures": {"children_under_16": 3000}})).await;
    let (status, case) = sys
        .post(
            format!("http://{}/api/v1/cases", hung_chien.http_addr),
            json!({"identity": {"name": "Nguyễn Thị Thử", "date_of_birth": "2015-03-02", "address": "khu phố 1", "guardian": "Nguyễn Văn Thử"},
                   "year": 2025, "category": "abuse", "sex": "female"}),
        )
        .await;
    assert_eq!(status, 201, "{case}");
    // Indicator 1: Hưng Chiến child-friendly in 2025.
    sys.record(&hung_chien, "ward.recognised", json!({"recognition": "child_friendly", "year": 2025, "granted": true})).await;

    sys.town_applied(&town, "25320", 4).await;
    sys.town_applied(&town, "25324", 1).await;

    let t = sys.town_indicator(&town, 2025, "4a", None).await;
    assert_eq!((t["numerator"].as_u64(), t["denominator"].as_u64()), (Some(10), Some(150)), "{t}");
    assert!((t["value"].as_f64().unwrap() - 10.0 / 150.0 * 100.0).abs() < 1e-9);
    assert_eq!(t["status"], "achieved", "{t}");
    let w = sys.town_indicator(&town, 2025, "4a", Some("25324")).await;
    assert_eq!((w["numerator"].as_u64(), w["denominator"].as_u64()), (Some(3), Some(50)));
    let abuse = sys.town_indicator(&town, 2025, "9", None).await;
    assert_eq!((abuse["numerator"].as_u64(), abuse["denominator"].as_u64()), (Some(1), Some(3000)), "{abuse}");
    let cf = sys.town_indicator(&town, 2025, "1", None).await;
    assert_eq!((cf["numerator"].as_u64(), cf["denominator"].as_u64()), (Some(1), Some(6)), "{cf}");
    assert_eq!(cf["status"], "off_track", "1 ward < target of 2 in 2025: {cf}");
    let cases = sys.get(format!("http://{}/api/v1/cases?year=2025", town.http_addr)).await;
    assert_eq!(cases["categories"]["abuse"]["total"], 1, "{cases}");
    assert_eq!(cases["categories"]["abuse"]["by_sex"]["female"], 1);

    // The province sees the same sums — except the one abuse case, a small
    // sensitive count the town withholds: suppressed, never 0 (privacy.rs).
    let url = format!("http://{}/api/v1/indicators?year=2025", province.http_addr);
    let p = wait_for("province rolls up 4a = 10/150, and 9 suppressed over 3000", WAIT, || {
        let url = url.clone();
        let http = sys.http.clone();
        async move {
            let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let inds = v["indicators"].as_array()?.clone();
            let find = |c: &str| inds.iter().find(|i| i["code"] == c).cloned();
            let a = find("4a")?;
            let b = find("9")?;
            (a["numerator"] == 10
                && a["denominator"] == 150
                && b["suppressed"] == true
                && b["numerator"].is_null()
                && b["denominator"] == 3000)
                .then_some(v)
        }
    })
    .await;
    let inds = p["indicators"].as_array().unwrap();
    let one = inds.iter().find(|i| i["code"] == "1").unwrap();
    assert_eq!((one["numerator"].as_u64(), one["denominator"].as_u64()), (Some(1), Some(6)), "{one}");

    // Nothing identifying reached the town or the province.
    for url in [
        format!("http://{}/api/v1/cases?year=2025", town.http_addr),
        format!("http://{}/api/v1/indicators?year=2025", province.http_addr),
        format!("http://{}/api/v1/cases?year=2025", province.http_addr),
    ] {
        let body = sys.http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(!body.contains("Thử") && !body.contains("2015-03-02") && !body.contains("khu phố 1"), "{url} leaks identity: {body}");
    }

    hung_chien.shutdown().await;
    an_loc.shutdown().await;
    town.shutdown().await;
    province.shutdown().await;
}
