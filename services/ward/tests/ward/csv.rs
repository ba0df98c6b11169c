//! CSV import: all rows or none, every bad row named.

use std::io::Write;

use treem_proto::Event;
use treem_proto::catalogue::Catalogue;
use treem_ward::WardLog;
use treem_ward::csv_import::{CsvError, import_file};

use crate::common::ward_path;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
    path
}

#[tokio::test]
async fn a_good_file_records_every_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = WardLog::open(&dir.path().join("data"), ward_path(), Catalogue::shipped()).unwrap();
    let mut text = String::from("indicator,year,numerator,denominator,source\n");
    for i in 0..250 {
        text.push_str(&format!("4a,{},{},100,health_centre\n", 2021 + i % 10, i % 100));
    }
    text.push_str(" 17a , 2024 , 95 , 100 , school \n");
    let path = write(dir.path(), "good.csv", &text);
    assert_eq!(import_file(&log, "officer-1", &path).await.unwrap(), 251);
    let events = log.read_from(0, 1000).unwrap();
    assert_eq!(events.len(), 251);
    let Event::IndicatorObserved(last) = &events[250].event else { panic!("not an observation") };
    assert_eq!((last.indicator.as_str(), last.numerator, last.denominator), ("17a", 95, Some(100)));
    let Event::IndicatorObserved(second) = &events[1].event else { panic!("not an observation") };
    assert_eq!(second.numerator, 1, "file order is kept");
}

#[tokio::test]
async fn a_file_with_bad_rows_records_nothing_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = WardLog::open(&dir.path().join("data"), ward_path(), Catalogue::shipped()).unwrap();
    let text = "indicator,year,numerator,denominator,source\n\
                4a,2024,7,100,health_centre\n\
                4a,2024,8,100,health_centre\n\
                4a,2024,9,100,health_centre\n\
                4a,2024,10,100,health_centre\n\
                4a,2024,11,100,health_centre\n\
                4z,2024,1,2,school\n\
                4a,2024,120,100,school\n\
                4a,2031,1,100,school\n\
                4a,2024,1,100,\n";
    let path = write(dir.path(), "bad.csv", text);
    let err = import_file(&log, "officer-1", &path).await.unwrap_err();
    let CsvError::Rows(rows) = &err else { panic!("expected row errors, got {err}") };
    assert_eq!(rows.iter().map(|r| r.row).collect::<Vec<_>>(), [7, 8, 9, 10]);
    let msg = err.to_string();
    assert!(msg.starts_with("nothing was recorded"), "{msg}");
    assert!(msg.contains("row 7: unknown indicator \"4z\"; known codes are 1, 2, 3a"), "{msg}");
    assert!(msg.contains("row 8: numerator 120 is greater than denominator 100"), "{msg}");
    assert!(msg.contains("row 9: year 2031"), "{msg}");
    assert!(msg.contains("row 10: source must not be empty"), "{msg}");
    assert_eq!(log.last_seq(), 0, "nothing recorded");

    let path = write(dir.path(), "header.csv", "indicator;year;numerator\n4a;2024;1\n");
    let err = import_file(&log, "officer-1", &path).await.unwrap_err();
    assert!(err.to_string().contains("must be exactly \"indicator,year,numerator,denominator,source\""), "{err}");
    assert_eq!(log.last_seq(), 0);
}
