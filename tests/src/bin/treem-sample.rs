//! `treem-sample`: loads realistic sample data into running ward nodes over
//! their HTTP APIs (`POST /api/v1/events`, `POST /api/v1/cases`), so a
//! newcomer can look at a whole system with figures in it
//! (`scripts/run-local.sh`).
//!
//! The figures are built from the plan's baseline for Bình Long (end of
//! 2021): 15,988 children under 16, 118 of them in special circumstances
//! (0.73 %), under-5 malnutrition (underweight) 7.24 %, under-1 and under-5
//! mortality 0 ‰, 5 of 6 wards child-friendly. Years 2022–2024 move towards
//! the 2025 targets; one ward (Thanh Phú) lags on several indicators and
//! lost its child-friendly status, so every judgement status shows up.
//!
//! What a ward records, year by year from 2021 to 2024:
//! - `population.reported`: under-16s, and the other denominators as the
//!   shares of one-year cohorts a population pyramid gives (under 5 ≈ 5/16…);
//! - `indicator.observed` for every observed indicator of the catalogue, with
//!   a denominator of the right population (grade-5 pupils for 17a, schools
//!   for 19, children born to mothers with HIV for 6…);
//! - cases: the 2021 stock of children in special circumstances (art. 10
//!   groups, several for some), ~99 % of them supported; each later year,
//!   children who turn 16 leave the count (`case.closed`) and new ones
//!   arrive; every year injuries (≈ 640 per 100,000 in 2021 falling to
//!   ≈ 530), a few fatal ones, abuse, child labour; one child marriage
//!   (2022), a flood (2023);
//! - `ward.recognised` for indicators 1 and 21.
//!
//! Deterministic: the same `--seed` gives the same requests (case ids are
//! chosen by the ward, so they differ). The children's identities are
//! invented from fixed syllables, never real people, and stay in the ward.
//!
//! Loading twice would count every case twice, so the loader refuses a ward
//! that already holds events unless `--force` is given.
//!
//! Usage: `treem-sample --ward 25320=http://127.0.0.1:7411 --ward ... [--seed N] [--force]`

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The six wards of Bình Long in 2021: (code, name, children under 16,
/// children in special circumstances). The columns sum to the plan's
/// 15,988 and 118.
const WARDS: [(&str, &str, u64, u64); 6] = [
    ("25320", "Hưng Chiến", 3100, 23),
    ("25324", "An Lộc", 3600, 27),
    ("25325", "Phú Thịnh", 2900, 21),
    ("25326", "Phú Đức", 2500, 18),
    ("25333", "Thanh Lương", 2100, 16),
    ("25336", "Thanh Phú", 1788, 13),
];

/// Thanh Phú: behind on several indicators, not child-friendly.
const LAGGING: &str = "25336";

const FIRST: u16 = 2021;
const LAST: u16 = 2024;

/// A small deterministic generator (SplitMix64), so sample data is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// Uniform in `-1.0..1.0`.
    fn unit(&mut self) -> f64 {
        (self.below(2001) as f64 - 1000.0) / 1000.0
    }
}

/// Share `pct` % of `n`, rounded.
fn per(n: u64, pct: f64) -> u64 {
    ((n as f64) * pct.clamp(0.0, 100.0) / 100.0).round() as u64
}

/// Linear from the 2021 value to the 2024 value.
fn towards(from: f64, to: f64, year: u16) -> f64 {
    from + (to - from) * f64::from(year - FIRST) / f64::from(LAST - FIRST)
}

/// A child in special circumstances the ward follows: closed the year it turns 16.
struct Followed {
    case_id: String,
    age_at_open: u16,
    opened: u16,
}

/// Loads one ward, in the order an officer would record: year by year.
struct WardLoader {
    http: reqwest::Client,
    base: String,
    ward: &'static str,
    name: &'static str,
    rng: Rng,
    sent: u64,
    cases: u64,
}

impl WardLoader {
    async fn post(&mut self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let resp = self.http.post(&url).json(&body).send().await.with_context(|| format!("POST {url}: is the ward node running?"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {url} → {status}: {text}\nrequest body: {body}");
        }
        self.sent += 1;
        serde_json::from_str(&text).with_context(|| format!("POST {url} answered {status} with a body that is not JSON: {text}"))
    }

    async fn event(&mut self, kind: &str, body: Value) -> anyhow::Result<Value> {
        self.post("/api/v1/events", json!({ "author": "sample-loader", "kind": kind, "body": body })).await
    }

    async fn observe(&mut self, code: &str, year: u16, numerator: u64, denominator: u64, source: &str) -> anyhow::Result<()> {
        let numerator = numerator.min(denominator);
        self.event(
            "indicator.observed",
            json!({ "indicator": code, "year": year, "numerator": numerator, "denominator": denominator, "source": source }),
        )
        .await?;
        Ok(())
    }

    /// Opens a case for an invented child aged `age` on 1 July of `year`.
    async fn open_case(&mut self, year: u16, age: u16, category: &str, groups: &[&str], sex: &str) -> anyhow::Result<String> {
        const FAMILY: [&str; 10] = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đặng", "Bùi", "Đỗ", "Huỳnh"];
        const MIDDLE: [&str; 6] = ["Thị", "Văn", "Minh", "Ngọc", "Gia", "Bảo"];
        const GIVEN: [&str; 12] = ["An", "Bình", "Chi", "Dũng", "Hà", "Khánh", "Lan", "Nam", "Phúc", "Vy", "Thảo", "Tuấn"];
        const HAMLETS: [&str; 6] = ["khu phố 1", "khu phố 2", "khu phố 3", "khu phố Phú Bình", "ấp Thanh Bình", "ấp Phú Lạc"];
        // Born in the first half of (year - age): exactly `age` on 1 July of `year`.
        let dob = format!("{:04}-{:02}-{:02}", year - age, self.rng.between(1, 6), self.rng.between(1, 28));
        let name = format!("{} {} {}", self.rng.pick(&FAMILY), self.rng.pick(&MIDDLE), self.rng.pick(&GIVEN));
        let guardian = format!("{} {} {}", self.rng.pick(&FAMILY), self.rng.pick(&MIDDLE), self.rng.pick(&GIVEN));
        let address = format!("{}, {}, thị xã Bình Long", self.rng.pick(&HAMLETS), self.name);
        let answer = self
            .post(
                "/api/v1/cases",
                json!({
                    "author": "sample-loader",
                    "identity": { "name": name, "date_of_birth": dob, "address": address, "guardian": guardian },
                    "year": year,
                    "category": category,
                    "groups": groups,
                    "sex": sex,
                }),
            )
            .await?;
        self.cases += 1;
        answer.get("case_id").and_then(Value::as_str).map(String::from).context("the ward did not return a case_id")
    }

    fn sex(&mut self) -> &'static str {
        if self.rng.below(2) == 0 { "female" } else { "male" }
    }

    async fn support(&mut self, case_id: &str, year: u16, support: &str) -> anyhow::Result<()> {
        self.event("case.support_recorded", json!({ "case_id": case_id, "year": year, "support": support })).await?;
        Ok(())
    }

    /// A child in special circumstances: one art. 10 group, sometimes two.
    async fn open_special(&mut self, year: u16, age: u16, supported: bool) -> anyhow::Result<Followed> {
        // Disability (d) is the most common group, then orphans (a) and
        // serious illness (n); letters of the Law on Children 2016, art. 10.
        const LETTERS: [&str; 14] = ["d", "d", "d", "d", "d", "a", "a", "n", "n", "n", "c", "b", "h", "e"];
        let first = self.rng.pick(&LETTERS);
        let mut groups = vec![first];
        if self.rng.below(10) == 0 {
            let second = self.rng.pick(&LETTERS);
            if second != first {
                groups.push(second);
            }
        }
        let sex = self.sex();
        let case_id = self.open_case(year, age, "special_circumstances", &groups, sex).await?;
        if supported {
            let support = self.rng.pick(&["care", "nurture", "medical", "education", "care"]);
            self.support(&case_id, year, support).await?;
        }
        Ok(Followed { case_id, age_at_open: age, opened: year })
    }

    async fn load(&mut self, under16_2021: u64, special_2021: u64, index: u64) -> anyhow::Result<()> {
        let lagging = self.ward == LAGGING;
        // Each ward sits a little above or below the town's path.
        let bias = self.rng.unit() * 0.3;
        let mut followed: Vec<Followed> = Vec::new();
        for year in FIRST..=LAST {
            let t = year - FIRST;
            // Populations: under-16s grow slowly; the other groups are the
            // cohort shares of a flat pyramid (one cohort ≈ 1/16 of under-16s).
            let u16n = under16_2021 + u64::from(t) * (8 + index * 2);
            let cohort = u16n / 16;
            let under5 = u16n * 30 / 100;
            let under1 = cohort - cohort / 20;
            let births = under1 + 4;
            let aged_5 = cohort + cohort / 20;
            let aged_7_plus = u16n * 56 / 100;
            let aged_11_plus = u16n * 31 / 100;
            let up_to_8 = u16n * 56 / 100;
            let figures: BTreeMap<&str, u64> = BTreeMap::from([
                ("children_under_16", u16n),
                ("children_under_5", under5),
                ("children_under_1", under1),
                ("live_births", births),
                ("children_aged_5", aged_5),
                ("children_aged_5_to_17", u16n * 81 / 100),
                ("children_aged_7_plus", aged_7_plus),
                ("children_aged_11_plus", aged_11_plus),
                ("children_up_to_8", up_to_8),
                ("marriages_registered", u16n / 60),
                ("collaborators", 8 + index),
            ]);
            self.event("population.reported", json!({ "year": year, "figures": figures })).await?;

            // Observed indicators: (code, denominator, 2021 %, 2024 %, source).
            // The lagging ward ends 2024 behind by `lag` points.
            let lag = if lagging { 1.0 } else { 0.0 };
            let weighed = under5 * 97 / 100;
            let schools = 6 + index % 3;
            let facilities = schools + 4;
            let rates: [(&str, u64, f64, f64, &str); 21] = [
                ("2", up_to_8, 74.0, 79.0 - 5.0 * lag, "health_centre"),
                ("4a", weighed, 7.24, 6.8 + 1.9 * lag, "health_centre"),
                ("4b", weighed, 9.1, 8.2 + 1.2 * lag, "health_centre"),
                ("4c", weighed, 5.2, 5.7, "health_centre"),
                ("5a", under1, 93.5, 95.6 - 2.4 * lag, "health_centre"),
                ("5b", under5, 92.0, 96.0 - 2.0 * lag, "health_centre"),
                ("7", facilities, 80.0, 100.0 - 20.0 * lag, "school"),
                ("14", under5, 98.2, 99.2 - 0.6 * lag, "justice"),
                ("15", under5, 97.8, 98.8 - 0.5 * lag, "health_centre"),
                ("16", aged_5, 99.1, 99.6 - 1.0 * lag, "school"),
                ("17a", cohort, 99.0, 99.6, "school"),
                ("17b", cohort * 5, 0.2, 0.1, "school"),
                ("18a", cohort, 96.5, 98.0 - 1.0 * lag, "school"),
                ("18b", cohort * 4, 0.2, 0.13, "school"),
                ("19", schools, 20.0, 60.0 - 30.0 * lag, "school"),
                ("20a", schools, 20.0, 45.0, "school"),
                ("20b", 20 + index * 3, 70.0, 82.0 - 8.0 * lag, "ward_survey"),
                ("22", aged_7_plus, 18.0, 28.0 - 6.0 * lag, "ward_survey"),
                ("23", u16n, 75.0, 84.0 - 4.0 * lag, "ward_survey"),
                ("24", aged_11_plus, 15.0, 27.0, "ward_survey"),
                // Children born to mothers living with HIV: none or one a year.
                ("6", self.rng.below(2), 0.0, 0.0, "health_centre"),
            ];
            for (code, den, from, to, source) in rates {
                if den == 0 {
                    // Nothing to measure (a rate needs a denominator of at least 1).
                    continue;
                }
                // Wards drift apart from 2021 on (which is the plan's
                // baseline); small counts (schools, HIV-exposed births) take no noise.
                let noise = if den >= 100 { bias * f64::from(t) / 3.0 } else { 0.0 };
                let pct = towards(from, to, year) + noise;
                self.observe(code, year, per(den, pct), den, source).await?;
            }
            // No neonatal, infant or under-5 deaths: the plan's 0 ‰.
            for code in ["3a", "3b", "3c"] {
                self.observe(code, year, 0, births, "health_centre").await?;
            }

            // Indicator 1: five of six wards child-friendly at the end of
            // 2021 (the plan's baseline); Thanh Phú is not, and stays so.
            if year == FIRST {
                self.event("ward.recognised", json!({ "recognition": "child_friendly", "year": year, "granted": !lagging })).await?;
            }
            // Indicator 21: two wards opened a children's play space in 2023.
            if year == 2023 && index < 2 {
                self.event("ward.recognised", json!({ "recognition": "play_space", "year": year, "granted": true })).await?;
            }

            // Children in special circumstances: the 2021 stock, then each
            // year those turning 16 leave and new ones arrive.
            if year == FIRST {
                for i in 0..special_2021 {
                    let age = self.rng.below(16) as u16;
                    // Every child supported (one in fifty missed in a large
                    // ward), but one in ten in the lagging ward.
                    let supported = if lagging { i % 10 != 9 } else { i % 50 != 49 };
                    let f = self.open_special(year, age, supported).await?;
                    followed.push(f);
                }
            } else {
                let mut still = Vec::with_capacity(followed.len());
                for f in followed.drain(..) {
                    if f.age_at_open + (year - f.opened) >= 16 {
                        self.event("case.closed", json!({ "case_id": f.case_id, "year": year, "reason": "turned 16" })).await?;
                    } else {
                        still.push(f);
                    }
                }
                followed = still;
                let arrivals = special_2021 / 16 + self.rng.below(2);
                for _ in 0..arrivals {
                    let age = self.rng.below(16) as u16;
                    let f = self.open_special(year, age, true).await?;
                    followed.push(f);
                }
            }
            self.incidents(year, u16n, lagging).await?;
        }
        Ok(())
    }

    /// The cases that count in the year they happen, and child labour.
    async fn incidents(&mut self, year: u16, u16n: u64, lagging: bool) -> anyhow::Result<()> {
        // Injuries: ≈ 640 per 100,000 children in 2021 down to ≈ 530 in
        // 2024; the lagging ward stays higher.
        let rate = towards(0.64, 0.52, year) + if lagging { 0.08 } else { 0.0 };
        let injuries = per(u16n, rate) + self.rng.below(2);
        for _ in 0..injuries {
            let age = self.rng.below(16) as u16;
            let sex = self.sex();
            self.open_case(year, age, "injury", &[], sex).await?;
        }
        // Fatal injuries: about two a year in the whole town (≈ 12 per 100,000).
        if self.rng.below(3) == 0 {
            let age = self.rng.below(16) as u16;
            let sex = self.sex();
            self.open_case(year, age, "fatal_injury", &[], sex).await?;
        }
        // Abuse: reported cases are few; each one gets legal support.
        for _ in 0..self.rng.below(3) {
            let age = self.rng.between(5, 15) as u16;
            let id = self.open_case(year, age, "abuse", &[], "female").await?;
            self.support(&id, year, "legal").await?;
        }
        // Child labour (5–17): now and then; back to school.
        if self.rng.below(4) == 0 {
            let age = self.rng.between(13, 17) as u16;
            let sex = self.sex();
            let id = self.open_case(year, age, "child_labour", &[], sex).await?;
            self.support(&id, year, "education").await?;
        }
        // One child marriage in the lagging commune, 2022 (target: none).
        if lagging && year == 2022 {
            self.open_case(year, 17, "child_marriage", &[], "female").await?;
        }
        // A flood in Phú Thịnh in 2023: every affected child relieved.
        if year == 2023 && self.ward == "25325" {
            for _ in 0..4 {
                let age = self.rng.below(16) as u16;
                let sex = self.sex();
                let id = self.open_case(year, age, "disaster_affected", &[], sex).await?;
                self.support(&id, year, "relief").await?;
            }
        }
        Ok(())
    }
}

/// The ward's `last_seq`, to refuse loading twice.
async fn last_seq(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let url = format!("{base}/api/v1/status");
    let status: Value = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("GET {url}: is the ward node running?"))?
        .json()
        .await
        .with_context(|| format!("GET {url} did not answer JSON"))?;
    status.get("last_seq").and_then(Value::as_u64).with_context(|| format!("GET {url} has no last_seq: {status}"))
}

const USAGE: &str = "\
treem-sample: load the sample data of Bình Long (2021–2024) into running ward nodes.

usage: treem-sample --ward CODE=URL [--ward CODE=URL ...] [--seed N] [--force]

  --ward CODE=URL  a ward node's HTTP API, e.g. 25320=http://127.0.0.1:7411
                   (wards: 25320 25324 25325 25326 25333 25336)
  --seed N         another deterministic variant of the data (default 2022)
  --force          load even into wards that already hold events
                   (their cases would then count twice)";

#[global_allocator]
static ALLOCATOR: treem_heap::Allocator = treem_heap::Allocator;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    treem_heap::configure();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("treem-sample: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    let mut seed = 2022u64;
    let mut force = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ward" => {
                let v = args.next().context("--ward needs CODE=URL")?;
                let (code, url) = v.split_once('=').context("--ward needs CODE=URL, e.g. 25320=http://127.0.0.1:7411")?;
                if !WARDS.iter().any(|(w, ..)| *w == code) {
                    let known: Vec<_> = WARDS.iter().map(|(w, n, ..)| format!("{w} ({n})")).collect();
                    bail!("--ward {code}: not a ward of Bình Long; the sample knows {}", known.join(", "));
                }
                targets.insert(code.into(), url.trim_end_matches('/').into());
            }
            "--seed" => seed = args.next().context("--seed needs a number")?.parse().context("--seed needs a number")?,
            "--force" => force = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if targets.is_empty() {
        bail!("give at least one --ward CODE=URL\n\n{USAGE}");
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let started = std::time::Instant::now();

    let mut loaders = Vec::new();
    for (index, (ward, name, under16, special)) in WARDS.iter().enumerate() {
        let Some(base) = targets.get(*ward) else {
            continue;
        };
        let held = last_seq(&http, base).await.with_context(|| format!("ward {ward} ({name})"))?;
        if held > 0 && !force {
            bail!(
                "ward {ward} ({name}) at {base} already holds {held} events; loading the sample again would count its cases twice. \
                 Start from an empty ward data directory, or pass --force."
            );
        }
        let loader = WardLoader {
            http: http.clone(),
            base: base.clone(),
            ward,
            name,
            rng: Rng(seed ^ (index as u64 + 1).wrapping_mul(7919)),
            sent: 0,
            cases: 0,
        };
        loaders.push((loader, *under16, *special, index as u64));
    }

    // Wards load concurrently, each in its own order; a ward's group commit
    // then makes one fsync serve the requests of several wards' disks.
    let results = futures::future::join_all(loaders.into_iter().map(|(mut loader, under16, special, index)| async move {
        let result = loader.load(under16, special, index).await;
        (loader, result)
    }))
    .await;

    let mut total = 0;
    let mut failed = Vec::new();
    for (loader, result) in results {
        match result {
            Ok(()) => {
                println!("ward {} {}: {} events recorded ({} cases opened)", loader.ward, loader.name, loader.sent, loader.cases);
                total += loader.sent;
            }
            Err(e) => {
                eprintln!("ward {} {}: FAILED after {} events: {e:#}", loader.ward, loader.name, loader.sent);
                failed.push(loader.ward);
            }
        }
    }
    if !failed.is_empty() {
        bail!("loading failed for ward(s) {}; see above", failed.join(", "));
    }
    println!("sample data loaded: {total} events in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
