//! The shipped catalogue against the plan (seed, Tờ trình 87/TTr-UBND,
//! section II.2, Chỉ tiêu 1–24), and the judgement of values against it.
//!
//! The plan's list is written out a second time here, by hand, as a table
//! ([`plan`]): every indicator and part with its number, objective, unit,
//! method, direction, office and each target's year, comparison and value.
//! The shipped `data/catalogue.json` must match it entry for entry, so a
//! missing part, a swapped "dưới"/"xuống" or a target in the wrong year fails
//! here rather than in a town report.

use treem_proto::catalogue::{Catalogue, Comparison, Direction, Indicator, Method, Office, Unit};
use treem_proto::event::{CaseCategory, PopulationGroup, Recognition};
use treem_proto::judge::{self, Fraction, Status};

use Comparison::{Above, AtLeast, AtMost, Below, Zero};

/// One row of the plan as this test reads it.
struct Row {
    code: &'static str,
    number: u8,
    objective: u8,
    unit: Unit,
    method: Method,
    direction: Direction,
    office: Office,
    targets: Vec<(u16, Comparison, f64)>,
}

const OBSERVED: Method = Method::Observed;

fn cases(category: CaseCategory, population: PopulationGroup) -> Method {
    Method::CasesOverPopulation { category, population }
}

fn both(c25: Comparison, v25: f64, c30: Comparison, v30: f64) -> Vec<(u16, Comparison, f64)> {
    vec![(2025, c25, v25), (2030, c30, v30)]
}

fn every(years: std::ops::RangeInclusive<u16>, c: Comparison, v: f64) -> Vec<(u16, Comparison, f64)> {
    years.map(|y| (y, c, v)).collect()
}

/// Chỉ tiêu 1–24 as the plan words them (see the catalogue's `wording_vi`).
fn plan() -> Vec<Row> {
    use CaseCategory as C;
    use Direction::{HigherIsBetter as Up, LowerIsBetter as Down};
    use Office::{Culture, Education, HealthCentre as Health, Justice, LabourInvalidsSocialAffairs as Labour, Police};
    use PopulationGroup as P;
    use Unit::{PerHundredThousandChildren as Per100k, PerThousandLiveBirths as PerMille, Percent as Pct, Wards};
    let row = |code, number, objective, unit, method, direction, office, targets| Row {
        code,
        number,
        objective,
        unit,
        method,
        direction,
        office,
        targets,
    };
    vec![
        // Mục tiêu 1: phát triển toàn diện, sức khỏe, dinh dưỡng
        row(
            "1",
            1,
            1,
            Wards,
            Method::WardsRecognised { recognition: Recognition::ChildFriendly },
            Up,
            Labour,
            both(AtLeast, 2.0, AtLeast, 4.0),
        ),
        row("2", 2, 1, Pct, OBSERVED, Up, Health, both(AtLeast, 80.0, AtLeast, 85.0)),
        row("3a", 3, 1, PerMille, OBSERVED, Down, Health, both(Zero, 0.0, Zero, 0.0)),
        row("3b", 3, 1, PerMille, OBSERVED, Down, Health, both(Zero, 0.0, Zero, 0.0)),
        row("3c", 3, 1, PerMille, OBSERVED, Down, Health, both(Zero, 0.0, Zero, 0.0)),
        row("4a", 4, 1, Pct, OBSERVED, Down, Health, both(Below, 8.0, Below, 6.0)),
        row("4b", 4, 1, Pct, OBSERVED, Down, Health, both(AtMost, 8.0, Below, 6.0)),
        row("4c", 4, 1, Pct, OBSERVED, Down, Health, both(Below, 7.0, Below, 5.0)),
        row("5a", 5, 1, Pct, OBSERVED, Up, Health, both(AtLeast, 95.0, AtLeast, 100.0)),
        row("5b", 5, 1, Pct, OBSERVED, Up, Health, vec![(2030, AtLeast, 100.0)]),
        row("6", 6, 1, Pct, OBSERVED, Down, Health, vec![(2030, AtMost, 2.0)]),
        row("7", 7, 1, Pct, OBSERVED, Up, Education, both(AtLeast, 100.0, AtLeast, 100.0)),
        // Mục tiêu 2: bảo vệ trẻ em
        row("8a", 8, 2, Pct, cases(C::SpecialCircumstances, P::ChildrenUnder16), Down, Labour, both(Below, 4.5, Below, 3.5)),
        row("8b", 8, 2, Pct, Method::SupportedCases { category: C::SpecialCircumstances }, Up, Labour, every(2025..=2030, Above, 98.0)),
        row("9", 9, 2, Pct, cases(C::Abuse, P::ChildrenUnder16), Down, Police, both(Below, 2.5, Below, 2.0)),
        row("10", 10, 2, Pct, cases(C::ChildLabour, P::ChildrenAged5To17), Down, Labour, both(AtMost, 4.5, Below, 4.0)),
        row("11a", 11, 2, Per100k, cases(C::Injury, P::ChildrenUnder16), Down, Culture, both(AtMost, 550.0, AtMost, 500.0)),
        row("11b", 11, 2, Per100k, cases(C::FatalInjury, P::ChildrenUnder16), Down, Culture, both(AtMost, 13.0, AtMost, 12.0)),
        row("12", 12, 2, Pct, Method::SupportedCases { category: C::DisasterAffected }, Up, Labour, both(AtLeast, 100.0, AtLeast, 100.0)),
        row("13", 13, 2, Pct, cases(C::ChildMarriage, P::MarriagesRegistered), Down, Justice, every(2022..=2030, Zero, 0.0)),
        row("14", 14, 2, Pct, OBSERVED, Up, Justice, both(AtLeast, 99.0, AtLeast, 100.0)),
        // Mục tiêu 3: giáo dục, văn hóa, vui chơi, giải trí
        row("15", 15, 3, Pct, OBSERVED, Up, Health, both(AtLeast, 99.0, AtLeast, 99.3)),
        row("16", 16, 3, Pct, OBSERVED, Up, Education, both(AtLeast, 99.5, AtLeast, 100.0)),
        row("17a", 17, 3, Pct, OBSERVED, Up, Education, both(AtLeast, 99.5, AtLeast, 100.0)),
        row("17b", 17, 3, Pct, OBSERVED, Down, Education, both(Below, 0.12, Below, 0.1)),
        row("18a", 18, 3, Pct, OBSERVED, Up, Education, both(AtLeast, 98.0, AtLeast, 98.5)),
        row("18b", 18, 3, Pct, OBSERVED, Down, Education, both(Below, 0.14, Below, 0.05)),
        row("19", 19, 3, Pct, OBSERVED, Up, Education, vec![(2025, AtLeast, 60.0)]),
        row("20a", 20, 3, Pct, OBSERVED, Up, Education, both(AtLeast, 50.0, AtLeast, 55.0)),
        row("20b", 20, 3, Pct, OBSERVED, Up, Education, both(AtLeast, 80.0, AtLeast, 90.0)),
        row(
            "21",
            21,
            3,
            Wards,
            Method::WardsRecognised { recognition: Recognition::PlaySpace },
            Up,
            Culture,
            both(AtLeast, 2.0, AtLeast, 4.0),
        ),
        // Mục tiêu 4: sự tham gia của trẻ em
        row("22", 22, 4, Pct, OBSERVED, Up, Labour, both(AtLeast, 30.0, AtLeast, 35.0)),
        row("23", 23, 4, Pct, OBSERVED, Up, Labour, both(AtLeast, 85.0, AtLeast, 90.0)),
        row("24", 24, 4, Pct, OBSERVED, Up, Labour, both(AtLeast, 30.0, AtLeast, 35.0)),
    ]
}

fn shipped() -> Catalogue {
    Catalogue::shipped()
}

fn ind<'c>(c: &'c Catalogue, code: &str) -> &'c Indicator {
    c.get(code).unwrap_or_else(|| panic!("indicator {code} is missing from the shipped catalogue"))
}

#[test]
fn catalogue_matches_the_plan_entry_for_entry() {
    let c = shipped();
    let plan = plan();
    let shipped_codes: Vec<&str> = c.codes();
    let plan_codes: Vec<&str> = plan.iter().map(|r| r.code).collect();
    assert_eq!(shipped_codes, plan_codes, "catalogue codes (in order) differ from the plan");
    for r in &plan {
        let i = ind(&c, r.code);
        let at = |what: &str| format!("indicator {}: {what}", r.code);
        assert_eq!(i.number, r.number, "{}", at("number"));
        assert_eq!(i.objective, r.objective, "{}", at("objective (mục tiêu)"));
        assert_eq!(i.unit, r.unit, "{}", at("unit"));
        assert_eq!(i.method, r.method, "{}", at("method"));
        assert_eq!(i.direction, r.direction, "{}", at("direction"));
        assert_eq!(i.office, r.office, "{}", at("office"));
        let targets: Vec<(u16, Comparison, f64)> = i.targets.iter().map(|t| (t.year, t.comparison, t.value)).collect();
        assert_eq!(targets, r.targets, "{}", at("targets (year, comparison, value)"));
    }
}

#[test]
fn every_indicator_1_to_24_is_present_with_its_parts() {
    let c = shipped();
    for number in 1..=24u8 {
        let parts: Vec<&str> = c.indicators.iter().filter(|i| i.number == number).map(|i| i.code.as_str()).collect();
        let expected = match number {
            3 | 4 => 3,
            5 | 8 | 11 | 17 | 18 | 20 => 2,
            _ => 1,
        };
        assert_eq!(parts.len(), expected, "indicator {number} has parts {parts:?}, the plan gives {expected}");
        let codes: Vec<String> = if expected == 1 {
            vec![number.to_string()]
        } else {
            ["a", "b", "c"][..expected].iter().map(|l| format!("{number}{l}")).collect()
        };
        assert_eq!(parts, codes, "indicator {number}: part codes");
    }
    assert_eq!(c.indicators.len(), 34);
}

/// The seed, copied verbatim into the fixtures, with runs of whitespace
/// (line and page breaks) folded into one space.
fn plan_text() -> (String, String) {
    let seed = include_str!("fixtures/plan.txt");
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = seed.find("II. Mục tiêu").expect("the seed has section II");
    let end = seed.find("UBND thị xã trình HĐND").expect("section II ends before the closing line");
    (fold(&seed[start..end]), fold(seed))
}

/// A target's wording without its editorial note (`"… [note]"`).
fn quoted(wording: &str) -> &str {
    match wording.rfind(" [") {
        Some(at) if wording.ends_with(']') => &wording[..at],
        _ => wording,
    }
}

#[test]
fn wordings_are_quoted_verbatim_from_the_plan() {
    let c = shipped();
    let (section, seed) = plan_text();
    for i in &c.indicators {
        assert!(section.contains(&i.wording_vi), "indicator {}: wording_vi is not verbatim from section II: {:?}", i.code, i.wording_vi);
        let prefix = format!("Chỉ tiêu {}:", i.number);
        let start = section.find(&prefix).unwrap_or_else(|| panic!("section II has no {prefix}"));
        let next = format!("Chỉ tiêu {}", i.number + 1);
        let end = section[start..].find(&next).map_or(section.len(), |e| start + e);
        assert!(section[start..end].contains(&i.wording_vi), "indicator {}: wording_vi comes from another indicator's sentence", i.code);
        for t in &i.targets {
            assert!(
                i.wording_vi.contains(quoted(&t.wording_vi)),
                "indicator {} target {}: {:?} is not part of the indicator's wording",
                i.code,
                t.year,
                t.wording_vi
            );
            assert!(
                t.wording_vi.contains(&t.year.to_string()) || i.targets.iter().any(|o| t.wording_vi.contains(&o.year.to_string())),
                "indicator {} target {}: the wording names no year and carries no note",
                i.code,
                t.year
            );
        }
        if let Some(b) = &i.baseline {
            assert!(seed.contains(&b.source_vi), "indicator {}: baseline source is not verbatim from the seed", i.code);
            assert_eq!(b.year, 2021, "indicator {}: baselines are the plan's 2021 figures", i.code);
        }
        assert!(!i.name_vi.is_empty() && !i.name_en.is_empty());
        for typo in ["Phần đầu", "Phân đầu", "phần đầu"] {
            assert!(!i.name_vi.contains(typo), "indicator {}: name_vi keeps the plan's typo {typo:?}", i.code);
        }
    }
}

#[test]
fn targets_without_a_year_in_the_plan_say_so() {
    let c = shipped();
    // Chỉ tiêu 7 and 12 name no year: the catalogue applies them to both
    // milestones and says so in an editorial note.
    for code in ["7", "12"] {
        let i = ind(&c, code);
        assert_eq!(i.targets.iter().map(|t| t.year).collect::<Vec<_>>(), [2025, 2030]);
        for t in &i.targets {
            assert!(t.wording_vi.ends_with("[kế hoạch không nêu năm; áp dụng cho năm 2025 và năm 2030]"), "{code}: {}", t.wording_vi);
        }
    }
    // "xuống dưới 4,5% vào năm 2025 và 3,5% vào năm 2030": the "dưới" carries over.
    let t = &ind(&c, "8a").targets[1];
    assert_eq!((t.comparison, t.value), (Below, 3.5));
    assert!(t.wording_vi.starts_with("3,5% vào năm 2030 ["));
}

#[test]
fn observed_rates_say_what_their_denominator_counts() {
    for i in &shipped().indicators {
        let observed = i.method == Method::Observed;
        assert_eq!(i.denominator_en.is_some(), observed, "indicator {}: denominator_en is for observed rates", i.code);
        if observed {
            assert!(i.unit.is_rate(), "indicator {}: observed indicators are rates", i.code);
        }
        if let Some(b) = &i.baseline {
            assert!(i.targets.iter().all(|t| t.year > b.year), "indicator {}: baseline after a target", i.code);
        }
        for t in &i.targets {
            if t.comparison == Zero {
                assert_eq!(t.value, 0.0, "indicator {}: a zero target has value 0", i.code);
            }
        }
    }
}

#[test]
fn catalogue_refuses_broken_files() {
    let bad = |json: &str, needle: &str| {
        let err = Catalogue::parse(json).expect_err("must be refused").to_string();
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    };
    let entry = |targets: &str, unit: &str, method: &str| {
        format!(
            r#"{{"code":"1","number":1,"objective":1,"name_vi":"x","name_en":"x","unit":"{unit}","direction":"higher_is_better","office":"culture","targets":{targets},"method":{method},"wording_vi":"x"}}"#
        )
    };
    let one = |targets: &str, unit: &str, method: &str| format!(r#"{{"indicators":[{}]}}"#, entry(targets, unit, method));
    let t25 = r#"[{"year":2025,"comparison":"at_least","value":1,"wording_vi":"x"}]"#;
    let obs = r#"{"kind":"observed"}"#;
    bad(&one("[]", "percent", obs), "has no target");
    bad(&one(r#"[{"year":2031,"comparison":"at_least","value":1,"wording_vi":"x"}]"#, "percent", obs), "outside 2021–2030");
    bad(&one(&format!("[{0},{0}]", &t25[1..t25.len() - 1]), "percent", obs), "increasing year order");
    bad(&one(t25, "wards", obs), "unit 'wards'");
    bad(&one(t25, "percent", r#"{"kind":"wards_recognised","recognition":"play_space"}"#), "unit 'wards'");
    bad(&one(t25, "percent", r#"{"kind":"supported_cases","category":"abuse","population":"children_under_16"}"#), "unknown field");
    bad(&one(t25, "percent", r#"{"kind":"cases_over_population","category":"abuse","population":"children_under16"}"#), "children_under16");
    let with_baseline = entry(t25, "percent", obs).replace(r#""office""#, r#""baseline":{"year":2025,"value":1,"source_vi":"x"},"office""#);
    bad(&format!(r#"{{"indicators":[{with_baseline}]}}"#), "baseline year must come before");
    let e = entry(t25, "percent", obs);
    bad(&format!(r#"{{"indicators":[{e},{e}]}}"#), "code appears twice");
    assert!(Catalogue::parse(&one(t25, "percent", obs)).is_ok());
}

// ---------------------------------------------------------------- judgement

fn frac(numerator: u64, denominator: u64) -> Option<Fraction> {
    Some(Fraction { numerator, denominator })
}

fn judged(c: &Catalogue, code: &str, year: u16, f: Option<Fraction>) -> (Status, String) {
    let p = judge::progress(ind(c, code), year, f);
    (p.status, p.reason)
}

fn assert_judged(c: &Catalogue, code: &str, year: u16, f: Option<Fraction>, status: Status, words: &[&str]) {
    let (got, reason) = judged(c, code, year, f);
    assert_eq!(got, status, "indicator {code} {year} {f:?}: reason {reason:?}");
    for w in words {
        assert!(reason.contains(w), "indicator {code} {year}: reason {reason:?} should mention {w:?}");
    }
}

#[test]
fn a_value_exactly_on_the_target_is_judged_as_the_words_say() {
    let c = shipped();
    use Status::{Achieved, OffTrack};
    // below — "dưới 8%" is strict: 8 % itself misses it.
    assert_judged(&c, "4a", 2025, frac(8, 100), OffTrack, &["8 %", "misses", "< 8", "xuống dưới 8% vào năm 2025"]);
    assert_judged(&c, "4a", 2025, frac(799, 10_000), Achieved, &["7.99 %", "meets"]);
    assert_judged(&c, "17b", 2025, frac(12, 10_000), OffTrack, &["0.12 %", "< 0.12"]);
    assert_judged(&c, "18b", 2025, frac(14, 10_000), OffTrack, &["0.14 %", "< 0.14"]);
    assert_judged(&c, "8a", 2025, frac(45, 1_000), OffTrack, &["< 4.5"]);
    assert_judged(&c, "8a", 2030, frac(35, 1_000), OffTrack, &["< 3.5", "3,5% vào năm 2030"]);
    assert_judged(&c, "9", 2030, frac(2, 100), OffTrack, &["< 2"]);
    // at most — "xuống 8%" is met by 8 % itself.
    assert_judged(&c, "4b", 2025, frac(8, 100), Achieved, &["8 %", "meets", "≤ 8", "xuống 8% vào năm 2025"]);
    assert_judged(&c, "4b", 2025, frac(801, 10_000), OffTrack, &["8.01 %", "misses"]);
    assert_judged(&c, "4b", 2030, frac(6, 100), OffTrack, &["< 6"]);
    assert_judged(&c, "10", 2025, frac(45, 1_000), Achieved, &["≤ 4.5"]);
    assert_judged(&c, "6", 2030, frac(2, 100), Achieved, &["≤ 2", "là 2% vào năm 2030"]);
    assert_judged(&c, "6", 2030, frac(7, 100), OffTrack, &["7 %"]);
    assert_judged(&c, "11a", 2025, frac(55, 10_000), Achieved, &["550 per 100,000 children", "≤ 550"]);
    assert_judged(&c, "11b", 2025, frac(13, 100_000), Achieved, &["≤ 13"]);
    assert_judged(&c, "11b", 2025, frac(14, 100_000), OffTrack, &["14 per 100,000 children"]);
    // at least — "đạt 80%" is met by 80 % itself.
    assert_judged(&c, "2", 2025, frac(80, 100), Achieved, &["80 %", "≥ 80", "đạt 80% vào năm 2025"]);
    assert_judged(&c, "2", 2025, frac(79, 100), OffTrack, &["79 %", "misses"]);
    assert_judged(&c, "16", 2025, frac(199, 200), Achieved, &["99.5 %"]);
    assert_judged(&c, "15", 2030, frac(993, 1_000), Achieved, &["99.3 %"]);
    assert_judged(&c, "15", 2030, frac(992, 1_000), OffTrack, &["99.2 %"]);
    assert_judged(&c, "7", 2025, frac(27, 27), Achieved, &["100 %", "kế hoạch không nêu năm"]);
    assert_judged(&c, "1", 2025, frac(2, 6), Achieved, &["2 wards", "≥ 2"]);
    assert_judged(&c, "1", 2030, frac(3, 6), OffTrack, &["3 wards", "≥ 4"]);
    // above — "trên 98%" is strict, in every year from 2025.
    for year in 2025..=2030 {
        assert_judged(&c, "8b", year, frac(98, 100), OffTrack, &["98 %", "> 98", "trên 98%"]);
        assert_judged(&c, "8b", year, frac(99, 100), Achieved, &["meets"]);
    }
    // zero — "duy trì 0%" every year 2022–2030: one child marriage misses it.
    for year in 2022..=2030 {
        assert_judged(&c, "13", year, frac(0, 40), Achieved, &["exactly 0", "Duy trì tỷ lệ 0%"]);
        assert_judged(&c, "13", year, frac(1, 40), OffTrack, &["2.5 %", "misses", "exactly 0"]);
    }
    assert_judged(&c, "3b", 2025, frac(0, 180), Achieved, &["exactly 0"]);
    assert_judged(&c, "3b", 2025, frac(1, 180), OffTrack, &["5.56 ‰ live births"]);
}

#[test]
fn a_fraction_exactly_at_the_target_equals_the_target() {
    // Scaling after dividing would give 7.000000000000001 for 7/100 and
    // 0.13999999999999999 for 14/10 000.
    let c = shipped();
    for (code, year, n, d) in [
        ("4c", 2025, 7, 100),
        ("4a", 2025, 8, 100),
        ("18b", 2025, 14, 10_000),
        ("8a", 2030, 35, 1_000),
        ("11b", 2025, 13, 100_000),
        ("10", 2025, 9, 200),
    ] {
        let i = ind(&c, code);
        let t = i.targets.iter().find(|t| t.year == year).unwrap();
        assert_eq!(judge::value(i.unit, Fraction { numerator: n, denominator: d }), Some(t.value), "{code}: {n}/{d}");
    }
    assert_eq!(judge::value(Unit::Percent, Fraction { numerator: 3, denominator: 0 }), None);
    assert_eq!(judge::value(Unit::Wards, Fraction { numerator: 3, denominator: 0 }), Some(3.0));
}

#[test]
fn the_year_of_a_target_reports_it_and_other_years_do_not() {
    let c = shipped();
    let p = judge::progress(ind(&c, "8b"), 2027, frac(99, 100));
    assert_eq!(p.target.as_ref().map(|t| t.year), Some(2027));
    let p = judge::progress(ind(&c, "5b"), 2025, frac(99, 100));
    assert_eq!(p.target, None, "5b has a target only for 2030");
    assert_eq!(p.judged_against.as_ref().map(|t| t.year), Some(2030));
    let p = judge::progress(ind(&c, "19"), 2030, frac(99, 100));
    assert_eq!(p.target, None, "19 has a target only for 2025");
    assert_eq!(p.judged_against.as_ref().map(|t| t.year), Some(2025));
    let p = judge::progress(ind(&c, "6"), 2025, frac(1, 100));
    assert_eq!(p.target, None, "6 has a target only for 2030");
    assert_eq!((p.numerator, p.denominator, p.value), (Some(1), Some(100), Some(1.0)));
}

/// 4a with a baseline worse than its target, so the path from 2021 to 2025
/// falls: 10 % (2021) → 8 % (2025), i.e. 9 % expected in 2023, and a
/// quarter of the 2-point distance (0.5) of slack before "off track".
fn falling_path() -> Indicator {
    let mut i = ind(&shipped(), "4a").clone();
    i.baseline.as_mut().unwrap().value = 10.0;
    i
}

#[test]
fn between_targets_a_value_is_judged_against_the_path() {
    let i = falling_path();
    let at = |f| judge::progress(&i, 2023, f);
    let p = at(frac(75, 1_000));
    assert_eq!(p.status, Status::OnTrack, "{}", p.reason);
    assert!(p.reason.contains("already meets the 2025 target < 8"), "{}", p.reason);
    assert!(p.target.is_none());
    assert_eq!(p.judged_against.as_ref().map(|t| t.year), Some(2025));
    let p = at(frac(9, 100));
    assert_eq!(p.status, Status::OnTrack, "{}", p.reason);
    assert!(p.reason.contains("at or better than 9 expected in 2023"), "{}", p.reason);
    assert!(p.reason.contains("2021 baseline 10"), "{}", p.reason);
    let p = at(frac(95, 1_000));
    assert_eq!(p.status, Status::AtRisk, "{}", p.reason);
    assert!(p.reason.contains("trails the 9 expected in 2023") && p.reason.ends_with("by 0.5"), "{}", p.reason);
    let p = at(frac(975, 10_000));
    assert_eq!(p.status, Status::OffTrack, "{}", p.reason);
    assert!(p.reason.contains("trails") && p.reason.ends_with("by 0.75"), "{}", p.reason);
    let p = at(None);
    assert_eq!(p.status, Status::NoData);
    assert_eq!(p.reason, "no data recorded for 2023");
    assert_eq!((p.value, p.numerator, p.denominator), (None, None, None));
    // A rate over an empty population cannot be computed: no data, not zero.
    assert_eq!(at(frac(0, 0)).status, Status::NoData);
}

#[test]
fn between_targets_on_the_shipped_catalogue() {
    let c = shipped();
    use Status::{AtRisk, NoData, OffTrack, OnTrack};
    // 3b: baseline 0 ‰ in 2021 and "duy trì 0" in 2025: no slack at all.
    assert_judged(&c, "3b", 2023, frac(0, 200), OnTrack, &["already meets", "exactly 0"]);
    assert_judged(&c, "3b", 2023, frac(1, 200), OffTrack, &["5 ‰ live births", "trails", "2021 baseline 0"]);
    // 2: no baseline in the plan, so anything short of the target is at risk.
    assert_judged(&c, "2", 2023, frac(70, 100), AtRisk, &["70 %", "does not yet meet the 2025 target ≥ 80", "no baseline"]);
    assert_judged(&c, "2", 2023, frac(85, 100), OnTrack, &["already meets the 2025 target"]);
    // 2026–2029 are judged against the 2030 target.
    assert_judged(&c, "2", 2027, frac(82, 100), AtRisk, &["2030 target ≥ 85"]);
    // 6 has only a 2030 target.
    assert_judged(&c, "6", 2025, frac(3, 100), AtRisk, &["2030 target ≤ 2"]);
    assert_judged(&c, "6", 2025, frac(1, 100), OnTrack, &["already meets the 2030 target"]);
    // 13 starts in 2022: 2021 is judged against the 2022 target.
    assert_judged(&c, "13", 2021, frac(0, 30), OnTrack, &["2022 target of exactly 0"]);
    // 4a with the plan's own baseline (7.24 % already below 8 %).
    assert_judged(&c, "4a", 2022, frac(75, 1_000), OnTrack, &["already meets"]);
    assert_judged(&c, "4a", 2022, None, NoData, &["no data recorded for 2022"]);
}

#[test]
fn after_the_last_target_a_value_is_compared_with_it_for_information() {
    let c = shipped();
    // 19: "Phấn đấu 60% … vào năm 2025", nothing for 2030.
    assert_judged(&c, "19", 2027, frac(65, 100), Status::OnTrack, &["sets no target for 2027", "still meets the 2025 target ≥ 60"]);
    assert_judged(&c, "19", 2030, frac(50, 100), Status::AtRisk, &["sets no target for 2030", "no longer meets the 2025 target"]);
    assert_judged(&c, "19", 2030, None, Status::NoData, &["no data recorded for 2030"]);
}
