//! The web pages over real HTTP, as a browser would fetch them (no
//! JavaScript anywhere, so plain requests see what a person sees): the
//! ward's data-entry form records an event that reaches the town
//! dashboard; sign-in with a token sets the session cookie; the dashboard
//! is Vietnamese with Vietnamese numbers, English on request, filtered by
//! office, case summaries for officers only; the evaluation report comes as
//! HTML, CSV, XLSX and PDF, and the CSV and XLSX hold the same rows; the
//! collaborator stipend; the province dashboard over its towns.

use std::io::Read as _;

use reqwest::header;
use serde_json::{Value, json};
use treem_auth::{Role, TokenStore};
use treem_tests::wait_for;

use crate::system::{System, WAIT, observed};

/// A client that sends no token and follows no redirect: what a fresh browser tab is.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn text(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// Signs in at `base` with `token`; the `Cookie` header value to send afterwards.
pub async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
    let r = http.post(format!("{base}/login")).form(&[("token", token), ("next", "/dashboard?year=2024")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303, "sign-in is a redirect");
    assert_eq!(r.headers()[header::LOCATION], "/dashboard?year=2024");
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("treem_session=treem_") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

/// `(header, rows)` of a CSV export (UTF-8 with a BOM).
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let text = std::str::from_utf8(bytes).unwrap();
    let text = text.strip_prefix('\u{feff}').expect("the CSV starts with a BOM so spreadsheets read UTF-8");
    let mut rows = Vec::new();
    // RFC 4180: fields may be quoted, with "" for a quote, and hold commas.
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(start) {
        let after = &rest[i + start.len()..];
        let Some(j) = after.find(end) else { break };
        out.push(&after[..j]);
        rest = &after[j + end.len()..];
    }
    out
}

/// The rows of the first sheet of an XLSX file, every cell as text.
pub fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("an XLSX file is a zip");
    let mut read = |name: &str| {
        let mut s = String::new();
        zip.by_name(name).unwrap_or_else(|e| panic!("{name} in the XLSX: {e}")).read_to_string(&mut s).unwrap();
        s
    };
    let shared: Vec<String> = between(&read("xl/sharedStrings.xml"), "<si>", "</si>")
        .into_iter()
        .map(|si| between(si, ">", "</t>").into_iter().map(|t| unescape(t.rsplit('>').next().unwrap_or(t))).collect::<String>())
        .collect();
    let sheet = read("xl/worksheets/sheet1.xml");
    let col = |r: &str| r.chars().take_while(char::is_ascii_uppercase).fold(0usize, |n, c| n * 26 + (c as usize - 'A' as usize + 1)) - 1;
    let mut rows = Vec::new();
    for row in between(&sheet, "<row ", "</row>") {
        let mut cells: Vec<String> = Vec::new();
        for c in between(row, "<c ", "</c>") {
            let attrs = c.split('>').next().unwrap();
            let r = between(attrs, "r=\"", "\"")[0];
            let v = between(c, "<v>", "</v>").first().map(|v| unescape(v)).unwrap_or_default();
            let v = if attrs.contains("t=\"s\"") { shared[v.parse::<usize>().unwrap()].clone() } else { v };
            let i = col(r);
            if cells.len() <= i {
                cells.resize(i + 1, String::new());
            }
            cells[i] = v;
        }
        rows.push(cells);
    }
    rows
}

/// The same rows, numbers compared as numbers (the CSV rounds to 6 decimals).
fn same_rows(csv: &[Vec<String>], xlsx: &[Vec<String>]) {
    assert_eq!(csv.len(), xlsx.len(), "row counts");
    for (i, (a, b)) in csv.iter().zip(xlsx).enumerate() {
        let mut b = b.clone();
        b.resize(a.len(), String::new());
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => assert!((p - q).abs() < 1e-5, "row {i} col {j}: {x} vs {y}"),
                _ => assert_eq!(x, y, "row {i} col {j}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_form_to_town_dashboard_reports_and_province() {
    let sys = System::new().await;
    let province = sys.province().await;
    let town = sys.town().await;
    let ward = sys.ward("25320").await;
    let an_loc = sys.ward("25324").await;
    let http = browser();
    let ward_base = format!("http://{}", ward.http_addr);
    let town_base = format!("http://{}", town.http_addr);

    // Figures of two years, so trends have two points, and the stipend has counts.
    sys.record(&ward, "population.reported", json!({"year": 2024, "figures": {"children_under_16": 3000, "collaborators": 12}})).await;
    sys.record(&ward, "indicator.observed", observed("4a", 2023, 350, 4700)).await;
    sys.record(&an_loc, "indicator.observed", observed("4a", 2024, 30, 500)).await;
    sys.record(&an_loc, "population.reported", json!({"year": 2023, "figures": {"collaborators": 8}})).await;

    // The ward page: Vietnamese, with what has not synced.
    let (status, page) = text(http.get(format!("{ward_base}/")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    for label in [
        "Nhập số liệu của phường, xã",
        "Phường Hưng Chiến",
        "sự kiện chưa gửi lên thị xã",
        "Báo cáo dân số trẻ em",
        "Số liệu chỉ tiêu",
        "Mở hồ sơ trẻ em",
        "Ghi nhận trợ giúp",
        "Kết thúc hồ sơ",
    ] {
        assert!(page.contains(label), "ward page lacks {label:?}");
    }
    assert!(!page.contains("<script") && !page.contains("https://"), "no script, nothing fetched from elsewhere");
    let css = http.get(format!("{ward_base}/assets/treem.css")).send().await.unwrap();
    assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");

    // A refused form: the message in Vietnamese beside the field, nothing recorded.
    let before = ward.log.last_seq();
    let form =
        [("indicator", "4a"), ("year", "2024"), ("numerator", "7"), ("denominator", "5"), ("source", "health_centre"), ("lang", "vi")];
    let (status, page) = text(http.post(format!("{ward_base}/entry/indicator")).form(&form).send().await.unwrap()).await;
    assert_eq!(status, 422);
    assert!(page.contains("Tử số 7 lớn hơn mẫu số 5"), "{page}");
    assert!(page.contains("data-field=\"numerator\""), "the message is beside the numerator");
    let (_, page) = text(
        http.post(format!("{ward_base}/entry/indicator"))
            .form(&[("indicator", "4a"), ("year", "1999"), ("numerator", "7"), ("denominator", "100"), ("source", "school")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(page.contains("Năm 1999 nằm ngoài giai đoạn của kế hoạch"), "year refused in Vietnamese");
    assert_eq!(ward.log.last_seq(), before, "nothing recorded");
    // A cross-site form is refused.
    let r = http.post(format!("{ward_base}/entry/indicator")).header("Origin", "http://evil.example").form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // The form that records 4a for 2024: 325/4715 → town (325 + 30)/(4715 + 500) = 6,81 %.
    let form = [
        ("indicator", "4a"),
        ("year", "2024"),
        ("numerator", "325"),
        ("denominator", "4.715"),
        ("source", "health_centre"),
        ("lang", "vi"),
    ];
    let r = http.post(format!("{ward_base}/entry/indicator")).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    let seq = before + 1;
    assert_eq!(location, format!("/?recorded={seq}&lang=vi#recent"));
    let (_, page) = text(http.get(format!("{ward_base}{}", location.split('#').next().unwrap())).send().await.unwrap()).await;
    assert!(page.contains(&format!("Đã ghi sự kiện số {seq}")) && page.contains("325/4.715"), "the page lists it");
    let recorded = ward.log.read_from(seq - 1, 1).unwrap().remove(0);

    // A correction and a retraction from the same page, of other events.
    let wrong = sys.record(&ward, "indicator.observed", observed("5a", 2024, 90, 100)).await;
    let wrong_id = wrong["id"].as_str().unwrap().to_string();
    let (status, page) = text(http.get(format!("{ward_base}/events/{wrong_id}/correct")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"90\"") && page.contains("name=\"reason\""), "the form is filled with the event's values");
    let r = http
        .post(format!("{ward_base}/events/{wrong_id}/correct"))
        .form(&[
            ("indicator", "5a"),
            ("year", "2024"),
            ("numerator", "96"),
            ("denominator", "100"),
            ("source", "health_centre"),
            ("reason", "nhập nhầm tử số"),
            ("lang", "vi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let mistaken = sys.record(&ward, "ward.recognised", json!({"recognition": "play_space", "year": 2024, "granted": true})).await;
    let mistaken_id = mistaken["id"].as_str().unwrap().to_string();
    let (status, page) =
        text(http.post(format!("{ward_base}/events/{mistaken_id}/retract")).form(&[("reason", ""), ("lang", "vi")]).send().await.unwrap())
            .await;
    assert_eq!(status, 422, "a retraction needs its reason");
    assert!(page.contains("Không được để trống."));
    let r = http
        .post(format!("{ward_base}/events/{mistaken_id}/retract"))
        .form(&[("reason", "ghi nhầm phường"), ("lang", "vi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (_, page) = text(http.get(format!("{ward_base}/")).send().await.unwrap()).await;
    assert!(page.contains("đã sửa bởi") && page.contains("đã rút lại bởi"), "the list shows what was corrected and retracted");
    let last = ward.log.last_seq();
    sys.town_applied(&town, "25320", last).await;
    sys.town_applied(&town, "25324", 2).await;

    // The town's pages want a sign-in; the API keeps wanting the header.
    let r = http.get(format!("{town_base}/dashboard?year=2024")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()[header::LOCATION], "/login?next=/dashboard%3Fyear%3D2024");
    let (status, page) = text(http.get(format!("{town_base}/login")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("Mã truy cập") && page.contains("Đăng nhập"));
    let r = http.post(format!("{town_base}/login")).form(&[("token", "treem_nope"), ("next", "/")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "a wrong token is refused");
    let cookie = sign_in(&http, &town_base, &treem_tests::auth::token().expose()).await;
    let r = http.get(format!("{town_base}/api/v1/indicators?year=2024")).header(header::COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the JSON API never takes the cookie");

    // The dashboard: every objective, Vietnamese numbers, the form's figure.
    let get = |path: String, cookie: String| {
        let http = http.clone();
        async move { text(http.get(path).header(header::COOKIE, cookie).send().await.unwrap()).await }
    };
    let (status, page) = get(format!("{town_base}/dashboard?year=2024"), cookie.clone()).await;
    assert_eq!(status, 200);
    for label in [
        "Thị xã Bình Long",
        "Mục tiêu 1: Về phát triển toàn diện trẻ em",
        "Mục tiêu 2: Về bảo vệ trẻ em",
        "Mục tiêu 3:",
        "Mục tiêu 4:",
        "Tóm tắt hồ sơ trẻ em",
        "Tình trạng đồng bộ",
        "Phường Hưng Chiến",
        "So sánh giữa các phường, xã",
    ] {
        assert!(page.contains(label), "dashboard lacks {label:?}");
    }
    assert!(page.contains("<strong>6,81</strong> %"), "4a: 355/5215 = 6,81 % in Vietnamese format");
    assert!(page.contains("355/5.215"), "numerator/denominator grouped the Vietnamese way");
    assert!(page.contains("đã đạt chỉ tiêu năm 2025"), "the reason in Vietnamese");
    assert_eq!(page.matches("<svg class=\"spark\"").count(), 34, "a trend chart per indicator and sub-indicator");
    assert!(page.contains("data-silent=\"true\""), "wards that never synced are marked");
    assert!(page.contains("Số trường hợp") && !page.contains("Tóm tắt hồ sơ chỉ dành cho cán bộ"), "case table shown to an admin");
    let audit = std::fs::read_to_string(sys.path("town").join("auth/audit.jsonl")).unwrap();
    assert!(audit.contains("\"path\":\"/dashboard\""), "showing case summaries is audited");
    assert!(!page.contains("<script") && !page.contains("https://"));

    // English, the office filter, a bad year.
    let (_, en) = get(format!("{town_base}/dashboard?year=2024&lang=en"), cookie.clone()).await;
    assert!(en.contains("Objective 1: Comprehensive development") && en.contains("<strong>6.81</strong> %"));
    let (_, health) = get(format!("{town_base}/dashboard?year=2024&office=health_centre"), cookie.clone()).await;
    assert!(health.contains("data-code=\"4a\"") && !health.contains("data-code=\"9\""), "only the health centre's indicators");
    let (status, bad) = get(format!("{town_base}/dashboard?year=1990"), cookie.clone()).await;
    assert_eq!(status, 400);
    assert!(bad.contains("Năm «1990» không hợp lệ"));

    // A viewer sees no case summaries.
    let store = TokenStore::open(&treem_auth::auth_dir(&sys.path("town"))).unwrap();
    let (viewer, _) = store.create("Lan (xem)", Role::Viewer).unwrap();
    let viewer_cookie = sign_in(&http, &town_base, &viewer.expose()).await;
    let (_, page) = get(format!("{town_base}/dashboard?year=2024"), viewer_cookie.clone()).await;
    assert!(page.contains("Tóm tắt hồ sơ chỉ dành cho cán bộ") && page.contains("Lan (xem)"));

    // Reports in each format.
    let report = |format: &str| format!("{town_base}/reports/evaluation?kind=midterm&format={format}");
    let (status, html) = get(report("html"), viewer_cookie.clone()).await;
    assert_eq!(status, 200);
    for label in [
        "Báo cáo đánh giá giữa kỳ — giai đoạn 2021–2025",
        "I. Kết quả thực hiện toàn Thị xã Bình Long",
        "II. Kết quả theo phường, xã",
        "III. Kinh phí hỗ trợ cộng tác viên",
        "Phòng Giáo dục và Đào tạo",
        "Trung tâm Y tế",
    ] {
        assert!(html.contains(label), "report lacks {label:?}");
    }
    // 2024 for Hưng Chiến: 12 collaborators × 3.105.000 ₫ = 37.260.000 ₫.
    assert!(html.contains("37.260.000 ₫"), "stipend of 2024");
    let mut files = std::collections::BTreeMap::new();
    for (format, content_type) in [
        ("csv", "text/csv; charset=utf-8"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("pdf", "application/pdf"),
    ] {
        let r = http.get(report(format)).header(header::COOKIE, &viewer_cookie).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{format}");
        assert_eq!(r.headers()[header::CONTENT_TYPE], content_type);
        let disposition = r.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_string();
        assert_eq!(disposition, format!("attachment; filename=\"danh-gia-midterm-2021-2025.{format}\""));
        let body = r.bytes().await.unwrap();
        assert!(body.len() > 1000, "{format} is {} bytes", body.len());
        files.insert(format, body);
    }
    assert!(files["pdf"].starts_with(b"%PDF-") && files["pdf"].trim_ascii_end().ends_with(b"%%EOF"), "a whole PDF file");
    assert!(files["pdf"].len() < 400_000, "the font is subset, not embedded whole: {} bytes", files["pdf"].len());
    let csv = csv_rows(&files["csv"]);
    let xlsx = xlsx_rows(&files["xlsx"]);
    assert_eq!(csv.len(), 1 + 7 * 34, "header + (town + 6 wards) × 34 indicators");
    assert_eq!(csv[0][0], "Mã đơn vị");
    same_rows(&csv, &xlsx);
    let town_4a = csv.iter().find(|r| r[0] == "690" && r[3] == "4a").unwrap();
    assert_eq!(town_4a[1], "Thị xã Bình Long");
    assert!(town_4a.iter().any(|c| c == "Đạt" || c == "Đúng tiến độ" || c == "Chưa có số liệu"), "{town_4a:?}");

    // The stipend as JSON: month by month across the July 2024 change.
    let stipend = sys.get(format!("{town_base}/api/v1/stipend?year=2024")).await;
    let w = stipend["wards"].as_array().unwrap().iter().find(|w| w["ward"] == "25320").unwrap();
    assert_eq!((w["collaborators"].as_u64(), w["amount"].as_u64()), (Some(12), Some(37_260_000)), "{stipend}");
    assert_eq!(stipend["months"][5]["per_collaborator"], 225_000);
    assert_eq!(stipend["months"][6]["per_collaborator"], 292_500);
    let missing: Vec<&str> = stipend["wards_missing"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(missing.contains(&"25324"), "An Lộc reported collaborators for 2023 only");

    // The province dashboard over its towns.
    let province_base = format!("http://{}", province.http_addr);
    let r = http.get(format!("{province_base}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = sign_in(&http, &province_base, &treem_tests::auth::token().expose()).await;
    let page = wait_for("the province dashboard shows 4a of 2024", WAIT, || {
        let get = get(format!("{province_base}/dashboard?year=2024"), cookie.clone());
        async move {
            let (_, page) = get.await;
            page.contains("<strong>6,81</strong> %").then_some(page)
        }
    })
    .await;
    for label in
        ["Tỉnh Bình Phước", "Thị xã Bình Long", "So sánh giữa các huyện, thị xã", "Mục tiêu 2: Về bảo vệ trẻ em", "Tình trạng đồng bộ"]
    {
        assert!(page.contains(label), "province dashboard lacks {label:?}");
    }
    let _ = recorded;
    ward.shutdown().await;
    an_loc.shutdown().await;
    town.shutdown().await;
    province.shutdown().await;
}
