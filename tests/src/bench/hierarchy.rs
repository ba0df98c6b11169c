//! Hierarchies the benchmarks run on, written as files for the services'
//! `hierarchy_file` setting.
//!
//! - [`with_bench_town`]: the shipped hierarchy plus a town `999` of
//!   province 70 that exists only for the benchmarks (wards `99901`,
//!   `99902`). The replication stage and the ward memory figures use it, so
//!   their events never mix with the six Bình Long wards' backlog.
//! - [`synthetic`]: many provinces, towns and wards with generated codes,
//!   for the scale simulation.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};
use treem_proto::hierarchy::Hierarchy;

/// The town that exists only in the benchmarks' hierarchy.
pub const BENCH_TOWN: &str = "999";
/// Its ward the replication stage fills and brings online.
pub const REPLICATION_WARD: &str = "99901";
/// Its ward whose peak memory is measured, idle and recording.
pub const RSS_WARD: &str = "99902";

fn unit(code: &str, name: &str, kind: Option<&str>) -> Value {
    let mut v = json!({"code": code, "name": name, "valid_from": "2025-01-01", "valid_to": null});
    if let Some(kind) = kind {
        v["kind"] = json!(kind);
    }
    v
}

/// Writes the shipped hierarchy plus [`BENCH_TOWN`] to `dir/hierarchy.json`.
pub fn with_bench_town(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut h: Value = serde_json::from_str(treem_proto::hierarchy::SHIPPED).context("the shipped hierarchy is JSON")?;
    let provinces = h["provinces"].as_array_mut().context("the shipped hierarchy has provinces")?;
    let p70 = provinces.iter_mut().find(|p| p["code"] == "70").context("the shipped hierarchy has province 70")?;
    let mut town = unit(BENCH_TOWN, "Benchmark town", Some("thị xã"));
    town["wards"] = json!([unit(REPLICATION_WARD, "Bench 1", Some("phường")), unit(RSS_WARD, "Bench 2", Some("phường"))]);
    p70["towns"].as_array_mut().context("province 70 has towns")?.push(town);
    write(dir, &h)
}

/// Province code → (town code → ward codes), in order.
pub type Codes = Vec<(String, Vec<(String, Vec<String>)>)>;

/// Codes of a synthetic hierarchy: province `p` (0-based) is `"{10+p}"`,
/// its town `t` is `"{p}{t:02}"` with a leading `9`, ward `w` of that town is
/// the town code followed by `w` on 3 digits. All unique, all digits.
pub fn synthetic_codes(provinces: usize, towns: usize, wards_per_town: &[usize]) -> Codes {
    (0..provinces)
        .map(|p| {
            let province = format!("{}", 10 + p);
            let towns = (0..towns)
                .map(|t| {
                    let town = format!("9{p:02}{t:02}");
                    let n = wards_per_town[(p * towns + t) % wards_per_town.len()];
                    let wards = (0..n).map(|w| format!("{town}{w:03}")).collect();
                    (town, wards)
                })
                .collect();
            (province, towns)
        })
        .collect()
}

/// Writes a hierarchy of the given codes to `dir/hierarchy.json`.
pub fn synthetic(dir: &Path, codes: &Codes) -> anyhow::Result<PathBuf> {
    let provinces: Vec<Value> = codes
        .iter()
        .map(|(p, towns)| {
            let mut province = unit(p, &format!("Province {p}"), None);
            province["towns"] = towns
                .iter()
                .map(|(t, wards)| {
                    let mut town = unit(t, &format!("Town {t}"), Some("thị xã"));
                    town["wards"] = wards.iter().map(|w| unit(w, &format!("Ward {w}"), Some("xã"))).collect();
                    town
                })
                .collect();
            province
        })
        .collect();
    write(dir, &json!({"note": "synthetic hierarchy of the treem benchmarks", "provinces": provinces}))
}

fn write(dir: &Path, h: &Value) -> anyhow::Result<PathBuf> {
    let text = serde_json::to_string_pretty(h)?;
    Hierarchy::parse(&text).context("the benchmark hierarchy must parse")?;
    let path = dir.join("hierarchy.json");
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}
