//! Golden snapshots: every table of the sample run (as of 2024-06-30, month and quarter
//! grains), each partition as CSV text under its path, so a change in any figure shows the
//! values that moved. The snapshots were checked by hand against `data/README.md`'s worked
//! figures, which `sample_figures_match_the_worked_examples` asserts again below; `cargo insta
//! review` accepts a deliberate change (CI never rewrites them).

use std::path::Path;

use polars::prelude::*;

use crate::common::*;

const TABLES: [&str; 6] = [
    "quota_attainment",
    "deal_slippage",
    "lead_response_time",
    "deal_size",
    "selling_time",
    "rep_scorecard",
];

/// Every partition of `table` under `output`, in path order, as `# <grain>/<period>` followed
/// by the partition's rows as CSV (header included; floats as polars writes them: the shortest
/// text that reads back as the same double).
fn table_csv(output: &Path, table: &str) -> String {
    let mut text = String::new();
    for (rel, (bytes, _)) in snapshot(&output.join(table)) {
        let mut df = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .expect("parquet");
        let mut csv = Vec::new();
        CsvWriter::new(&mut csv).finish(&mut df).expect("csv");
        let part = rel.trim_end_matches("/part-0.parquet");
        text += &format!("# {part}\n{}", String::from_utf8(csv).expect("utf-8"));
    }
    text
}

fn sample_output() -> (Sandbox, std::path::PathBuf) {
    let sb = Sandbox::new();
    let out = sb.run_into("golden");
    (sb, out)
}

#[test]
fn every_table_of_the_sample_run() {
    let (_sb, out) = sample_output();
    for table in TABLES {
        insta::assert_snapshot!(table, table_csv(&out, table));
    }
}

/// `data/README.md`'s hand-checked figures, read from the same run the snapshots show.
#[test]
fn sample_figures_match_the_worked_examples() {
    let (_sb, out) = sample_output();
    let feb = read_partition(&out, "quota_attainment", "month", "2024-02");
    // R3: 14 000 (T2, Feb 1-14) + 15 000 (T1, Feb 15-29) of a 91 000 quarter, 1 000 a day.
    assert_eq!(f64_of(&feb, "rep", Some("R3"), "quota"), Some(29_000.0));
    let apr = read_partition(&out, "quota_attainment", "month", "2024-04");
    assert_eq!(f64_of(&apr, "company", None, "bookings"), Some(0.0));
    let q1 = read_partition(&out, "deal_size", "quarter", "2024-Q1");
    assert_eq!(value(&q1, "company", None, "won_deals"), AnyValue::Int64(7));
    assert_eq!(f64_of(&q1, "company", None, "won_amount"), Some(178_000.0));
    assert_eq!(f64_of(&q1, "company", None, "list_amount"), Some(170_000.0));
    assert_eq!(f64_of(&q1, "company", None, "net_amount"), Some(142_000.0));
    let slip = read_partition(&out, "deal_slippage", "quarter", "2024-Q1");
    assert_eq!(
        value(&slip, "company", None, "deals_expected"),
        AnyValue::Int64(8)
    );
    assert_eq!(
        value(&slip, "company", None, "deals_slipped"),
        AnyValue::Int64(2)
    );
    assert_eq!(
        value(&slip, "company", None, "close_date_pushes"),
        AnyValue::Int64(3)
    );
    let jan = read_partition(&out, "lead_response_time", "month", "2024-01");
    let first = jan
        .filter(
            &jan.column("response_kind")
                .unwrap()
                .str()
                .unwrap()
                .equal("first_touch"),
        )
        .unwrap();
    assert_eq!(
        value(&first, "company", None, "requests"),
        AnyValue::Int64(6)
    );
    assert_eq!(
        f64_of(&first, "company", None, "median_response_minutes"),
        Some(67.5)
    );
    // 90 + 0.7 × (1 440 − 90) minutes, interpolated on microseconds: 1035.0000000000002.
    let p90 = f64_of(&first, "company", None, "p90_response_minutes").unwrap();
    assert!((p90 - 1035.0).abs() < 1e-9, "{p90}");
    let sell = read_partition(&out, "selling_time", "month", "2024-01");
    assert_eq!(
        f64_of(&sell, "rep", Some("R1"), "selling_time_pct"),
        Some(40.0)
    );
    assert_eq!(
        f64_of(&sell, "rep", Some("R4"), "selling_time_pct"),
        Some(100.0)
    );
    assert_eq!(
        f64_of(&sell, "rep", Some("R1"), "capacity_minutes"),
        Some(23.0 * 480.0)
    );
}
