//! The pages as a person uses them, in headless Chromium (Debian's, under
//! chromedriver; `scripts/install-browser.sh`): the ward officer fills the
//! indicator form, gets a Vietnamese message beside a wrong field, fixes it
//! and records; the town officer signs in with a token and sees the figure
//! on the dashboard; downloads the mid-term report as PDF and XLSX; the
//! province officer sees the town on the province dashboard.
//!
//! Screenshots of each page land in `target/screenshots/` (test
//! artifacts). With `TREEM_UPDATE_SCREENSHOTS=1` the main ones are also
//! copied to `docs/screenshots/`, which the README shows.
//!
//! Without Chromium, chromedriver or pdftotext the test fails, naming the
//! script that installs them; it never skips.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use treem_tests::browser::{Browser, program, screenshot_dir};
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};
use crate::web::xlsx_rows;

/// Enough figures over 2021–2024 that the charts and tables have something to show.
async fn seed(sys: &System, ward: &treem_ward::Node, n: u64) {
    for (i, year) in (2021..=2024u16).enumerate() {
        let i = i as u64;
        sys.record(
            ward,
            "population.reported",
            json!({"year": year, "figures": {"children_under_16": 3000 + 100 * n, "children_under_5": 900 + 10 * n, "live_births": 180 + n,
                   "children_aged_5_to_17": 2400 + 50 * n, "marriages_registered": 60 + n, "collaborators": 10 + n}}),
        )
        .await;
        for (code, num, den) in
            [("2", 700 + 15 * i + n, 1000), ("5a", 170 + i, 180), ("14", 880 + 2 * i, 900), ("16", 199, 200), ("17a", 298 + i.min(1), 300)]
        {
            sys.record(ward, "indicator.observed", observed(code, year, num, den)).await;
        }
        if year < 2024 || n != 0 {
            sys.record(ward, "indicator.observed", observed("4a", year, 330 - 10 * i + n, 4700)).await;
        }
    }
    sys.record(ward, "ward.recognised", json!({"recognition": "child_friendly", "year": 2022, "granted": true})).await;
}

async fn open_case(sys: &System, ward: &treem_ward::Node, category: &str, groups: &[&str], sex: &str) {
    let (status, body) = sys
        .post(
            format!("http://{}/api/v1/cases", ward.http_addr),
            json!({"identity": {"name": "Trần Văn Mẫu", "date_of_birth": "2014-05-06", "address": "khu phố 2", "guardian": "Trần Thị Mẫu"},
                   "year": 2024, "category": category, "groups": groups, "sex": sex}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn wait_file(dir: &Path, ext: &str) -> PathBuf {
    wait_for(&format!("a .{ext} file downloaded into {}", dir.display()), WAIT, || async move {
        std::fs::read_dir(dir).ok()?.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == ext))
    })
    .await
}

/// Signs in on the page the browser shows (the sign-in form) and waits until it has left it.
async fn sign_in(b: &Browser) {
    b.type_into("#token", &treem_tests::auth::token().expose()).await;
    b.click("form[action='/login'] button[type=submit]").await;
    wait_for("the browser leaves the sign-in page", WAIT, || async move { (!b.url().await.contains("/login")).then_some(()) }).await;
}

/// Waits until the page the browser shows contains `needle` (a form's
/// answer may still be on its way when the click returns), and returns it.
async fn page_with(b: &Browser, needle: &str) -> String {
    wait_for(&format!("the page shows {needle:?}"), WAIT, || async move {
        let page = b.source().await;
        page.contains(needle).then_some(page)
    })
    .await
}

async fn shot(b: &Browser, name: &str, shots: &mut Vec<PathBuf>) {
    let path = screenshot_dir().join(name);
    b.screenshot(&path).await;
    shots.push(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_records_in_the_browser_and_the_town_sees_it() {
    let sys = System::new().await;
    let pdftotext = program("TREEM_PDFTOTEXT", &["pdftotext"]);
    let province = sys.province().await;
    let town = sys.town().await;
    let hung_chien = sys.ward("25320").await;
    let an_loc = sys.ward("25324").await;
    let phu_duc = sys.ward("25326").await;
    seed(&sys, &hung_chien, 0).await;
    seed(&sys, &an_loc, 3).await;
    seed(&sys, &phu_duc, 7).await;
    open_case(&sys, &hung_chien, "injury", &[], "male").await;
    open_case(&sys, &an_loc, "special_circumstances", &["a", "d"], "female").await;
    open_case(&sys, &phu_duc, "injury", &[], "female").await;

    let b = Browser::start(1360, 1000).await;
    let mut shots = Vec::new();
    let ward_base = format!("http://{}", hung_chien.http_addr);

    // The ward officer: the page, a refused figure, then the right one.
    b.goto(&format!("{ward_base}/")).await;
    assert!(b.source().await.contains("Nhập số liệu của phường, xã"));
    shot(&b, "ward-entry.png", &mut shots).await;
    b.select("#indicator-indicator", "4a").await;
    b.type_into("#indicator-year", "2024").await;
    b.type_into("#indicator-numerator", "5200").await;
    b.type_into("#indicator-denominator", "4700").await;
    b.select("#indicator-source", "health_centre").await;
    b.click("#f-indicator button[type=submit]").await;
    let page = page_with(&b, "Tử số 5200 lớn hơn mẫu số 4700").await;
    assert!(page.contains("data-field=\"numerator\""), "the message beside the field");
    b.scroll_to("#f-indicator").await;
    shot(&b, "ward-entry-error.png", &mut shots).await;
    b.type_into("#indicator-numerator", "310").await;
    b.click("#f-indicator button[type=submit]").await;
    let page = page_with(&b, "Đã ghi sự kiện số").await;
    assert!(page.contains("310/4.700"), "recorded and listed");
    b.scroll_to("#recent").await;
    shot(&b, "ward-recent.png", &mut shots).await;
    for (code, w) in [("25320", &hung_chien), ("25324", &an_loc), ("25326", &phu_duc)] {
        sys.town_applied(&town, code, w.log.last_seq()).await;
    }

    // The town officer signs in and sees it: 4a of 2024 = (310 + 303 + 307) / (3 × 4700) = 920/14100 = 6,52 %.
    let town_base = format!("http://{}", town.http_addr);
    b.goto(&format!("{town_base}/")).await;
    assert!(b.url().await.contains("/login?next="), "sent to sign in");
    shot(&b, "town-login.png", &mut shots).await;
    sign_in(&b).await;
    b.goto(&format!("{town_base}/dashboard?year=2024")).await;
    let page = b.source().await;
    assert!(page.contains("<strong>6,52</strong> %"), "the browser shows the ward's figure in the town's 4a");
    assert!(page.contains("Mục tiêu 1: Về phát triển toàn diện trẻ em"));
    shot(&b, "town-dashboard.png", &mut shots).await;
    b.scroll_to("#muc-tieu-2").await;
    shot(&b, "town-dashboard-objective-2.png", &mut shots).await;
    b.scroll_to("#ho-so").await;
    shot(&b, "town-cases-sync.png", &mut shots).await;
    b.goto(&format!("{town_base}/dashboard?year=2024&lang=en&office=health_centre")).await;
    assert!(b.source().await.contains("Objective 1"));
    shot(&b, "town-dashboard-en-health.png", &mut shots).await;

    // The mid-term report, on screen and downloaded.
    b.goto(&format!("{town_base}/reports/evaluation?kind=yearly&to=2024")).await;
    assert!(b.source().await.contains("Báo cáo đánh giá hằng năm"));
    shot(&b, "town-report.png", &mut shots).await;
    b.goto(&format!("{town_base}/reports/evaluation?kind=midterm")).await;
    assert!(b.source().await.contains("Báo cáo đánh giá giữa kỳ"));
    b.click("#dl-pdf").await;
    let pdf = wait_file(&b.download_dir(), "pdf").await;
    // Kept beside the screenshots, to look at.
    let _ = std::fs::copy(&pdf, screenshot_dir().join("report-midterm.pdf"));
    let text = tokio::process::Command::new(&pdftotext).arg(&pdf).arg("-").output().await.expect("pdftotext runs");
    assert!(text.status.success(), "pdftotext: {}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8(text.stdout).expect("UTF-8 text");
    for label in [
        "BÁO CÁO ĐÁNH GIÁ GIỮA KỲ",
        "Mục tiêu 1: Về phát triển toàn diện trẻ em",
        "Trung tâm Y tế",
        "Phường Hưng Chiến",
        "Kinh phí hỗ trợ cộng tác viên",
    ] {
        assert!(text.contains(label), "the PDF's text lacks {label:?}: the font or its ToUnicode map is wrong");
    }
    b.click("#dl-xlsx").await;
    let xlsx = wait_file(&b.download_dir(), "xlsx").await;
    // A download may still be finishing its last write.
    let rows = wait_for("the XLSX download is whole", Duration::from_secs(20), || {
        let xlsx = xlsx.clone();
        async move {
            let bytes = std::fs::read(&xlsx).ok()?;
            std::panic::catch_unwind(|| xlsx_rows(&bytes)).ok()
        }
    })
    .await;
    assert_eq!(rows.len(), 1 + 7 * 34);

    // The province officer.
    let province_base = format!("http://{}", province.http_addr);
    b.goto(&format!("{province_base}/login?next=/dashboard%3Fyear%3D2024")).await;
    sign_in(&b).await;
    wait_for("the province dashboard shows the town's 4a", WAIT, || {
        let b = &b;
        let url = format!("{province_base}/dashboard?year=2024");
        async move {
            b.goto(&url).await;
            b.source().await.contains("<strong>6,52</strong> %").then_some(())
        }
    })
    .await;
    shot(&b, "province-dashboard.png", &mut shots).await;
    b.close().await;

    for p in &shots {
        let png = std::fs::read(p).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} is a real screenshot", p.display());
    }
    if std::env::var("TREEM_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = treem_tests::repo_root().join("docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for name in [
            "ward-entry.png",
            "ward-entry-error.png",
            "town-dashboard.png",
            "town-cases-sync.png",
            "town-report.png",
            "province-dashboard.png",
        ] {
            std::fs::copy(screenshot_dir().join(name), docs.join(name)).unwrap();
        }
    }
    for w in [hung_chien, an_loc, phu_duc] {
        w.shutdown().await;
    }
    town.shutdown().await;
    province.shutdown().await;
}
