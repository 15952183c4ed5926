//! End-to-end: the binary on the sample files, outputs read back from Parquet.

use std::time::Duration;

use polars::prelude::*;
use predicates::prelude::*;

use crate::common::*;

#[test]
fn sample_run_writes_hand_checked_figures() {
    let sb = Sandbox::new();
    let output = sb.run(&[]).assert().success().get_output().clone();
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON line on stdout");
    // One warning per unmapped activity type, however many grains and rows use it.
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.matches("gardening").count(), 1, "{stderr}");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(
        summary["partitions"].as_array().unwrap().len(),
        48,
        "6 tables × (6 months + 2 quarters)"
    );
    assert_eq!(
        summary["periods"]["quarter"],
        serde_json::json!(["2024-Q1", "2024-Q2"])
    );

    // February: R3 moved T2 -> T1 on Feb 15. 91 000 for Q1 = 1 000 a day: 14 000 to T2, 15 000
    // to T1. D07 (22 000) closed Feb 10, credited to T2; the rep row shows T1 (last day).
    let feb = read_partition(&sb.output(), "quota_attainment", "month", "2024-02");
    assert_eq!(f64_of(&feb, "rep", Some("R3"), "quota"), Some(29_000.0));
    assert_eq!(f64_of(&feb, "rep", Some("R3"), "bookings"), Some(22_000.0));
    assert_eq!(
        value(&feb, "rep", Some("R3"), "team_id"),
        AnyValue::StringOwned("T1".into())
    );
    assert_eq!(f64_of(&feb, "team", Some("T2"), "quota"), Some(14_000.0));
    assert_eq!(f64_of(&feb, "team", Some("T2"), "bookings"), Some(22_000.0));
    // R5 has a zero quota: attainment is null, not infinite.
    assert_eq!(f64_of(&feb, "rep", Some("R5"), "attainment_pct"), None);
    // Rows: company, teams, reps.
    let levels: Vec<_> = feb
        .column("level")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(
        levels,
        ["company", "team", "team", "rep", "rep", "rep", "rep"]
    );

    // D10 closed 2024-04-30T23:30-05:00 = May 1 in UTC: booked in May, not April.
    let apr = read_partition(&sb.output(), "quota_attainment", "month", "2024-04");
    assert_eq!(f64_of(&apr, "company", None, "bookings"), Some(0.0));
    let may = read_partition(&sb.output(), "quota_attainment", "month", "2024-05");
    assert_eq!(f64_of(&may, "rep", Some("R1"), "bookings"), Some(50_000.0));

    // Q1 deal size: 7 won deals, 178 000; listed ones 170 000 list vs 142 000 net.
    let q1 = read_partition(&sb.output(), "deal_size", "quarter", "2024-Q1");
    assert_eq!(value(&q1, "company", None, "won_deals"), AnyValue::Int64(7));
    assert_eq!(f64_of(&q1, "company", None, "won_amount"), Some(178_000.0));
    assert_eq!(f64_of(&q1, "company", None, "list_amount"), Some(170_000.0));
    assert_eq!(f64_of(&q1, "company", None, "net_amount"), Some(142_000.0));
    // D15 closes Jul 5, after the as-of date: still open, so June has one win (D14).
    let jun = read_partition(&sb.output(), "deal_size", "month", "2024-06");
    assert_eq!(
        value(&jun, "company", None, "won_deals"),
        AnyValue::Int64(1)
    );
    assert_eq!(feb.column("period_start").unwrap().dtype(), &DataType::Date);

    // Slippage, January: D01 won on time; D02 (expected Jan 31, pushed on Jan 20, won Mar 5)
    // slipped 34 days. February sees D02 at its pushed date, Feb 15: 19 days.
    let jan = read_partition(&sb.output(), "deal_slippage", "month", "2024-01");
    assert_eq!(
        value(&jan, "company", None, "deals_due"),
        AnyValue::Int64(2)
    );
    assert_eq!(
        value(&jan, "company", None, "deals_slipped"),
        AnyValue::Int64(1)
    );
    assert_eq!(f64_of(&jan, "company", None, "avg_slip_days"), Some(34.0));
    assert_eq!(
        value(&jan, "company", None, "close_date_pushes"),
        AnyValue::Int64(1)
    );
    let q1 = read_partition(&sb.output(), "deal_slippage", "quarter", "2024-Q1");
    assert_eq!(
        value(&q1, "company", None, "close_date_pushes"),
        AnyValue::Int64(3)
    );
    assert_eq!(
        f64_of(&q1, "company", None, "slippage_rate_pct"),
        Some(25.0)
    );
    // June: D13 lost on time; D12, D14, D15 are expected on the as-of date: not yet due.
    let jun_slip = read_partition(&sb.output(), "deal_slippage", "month", "2024-06");
    assert_eq!(
        value(&jun_slip, "company", None, "deals_expected"),
        AnyValue::Int64(4)
    );
    assert_eq!(
        value(&jun_slip, "company", None, "deals_lost"),
        AnyValue::Int64(1)
    );

    // First touch, January: answered after 4, 45, 90 and 1440 minutes, two never:
    // median 67.5, p90 = 90 + 0.7 × 1350 = 1035.
    let lrt = read_partition(&sb.output(), "lead_response_time", "month", "2024-01");
    let first_touch = lrt
        .filter(
            &lrt.column("response_kind")
                .unwrap()
                .str()
                .unwrap()
                .equal("first_touch"),
        )
        .unwrap();
    assert_eq!(
        value(&first_touch, "company", None, "requests"),
        AnyValue::Int64(6)
    );
    assert_eq!(
        f64_of(&first_touch, "company", None, "median_response_minutes"),
        Some(67.5)
    );
    assert!(
        (f64_of(&first_touch, "company", None, "p90_response_minutes").unwrap() - 1035.0).abs()
            < 1e-9
    );
    assert_eq!(
        value(&first_touch, "rep", Some("R4"), "within_sla_1440m"),
        AnyValue::Int64(4)
    );
    // Follow-ups, March, deal D06: three runs, answered after 90 and 5 minutes, one never.
    let mar = read_partition(&sb.output(), "lead_response_time", "month", "2024-03");
    let follow = mar
        .filter(
            &mar.column("response_kind")
                .unwrap()
                .str()
                .unwrap()
                .equal("follow_up"),
        )
        .unwrap();
    assert_eq!(
        value(&follow, "rep", Some("R2"), "requests"),
        AnyValue::Int64(3)
    );
    assert_eq!(
        f64_of(&follow, "rep", Some("R2"), "mean_response_minutes"),
        Some(47.5)
    );

    // Selling time, January: R1 (AE) 60 selling / 90 non-selling (prospecting is not selling
    // for an AE), 15 unclassified; R4 (SDR) all 155 selling. 23 weekdays × 480 = 11 040.
    let st = read_partition(&sb.output(), "selling_time", "month", "2024-01");
    assert_eq!(
        f64_of(&st, "rep", Some("R1"), "selling_time_pct"),
        Some(40.0)
    );
    assert_eq!(
        f64_of(&st, "rep", Some("R1"), "unclassified_minutes"),
        Some(15.0)
    );
    assert_eq!(
        f64_of(&st, "rep", Some("R4"), "selling_minutes"),
        Some(155.0)
    );
    assert_eq!(
        f64_of(&st, "company", None, "capacity_minutes"),
        Some(22_080.0)
    );

    // Scorecard, January: one row per entity with every headline figure.
    let sc = read_partition(&sb.output(), "rep_scorecard", "month", "2024-01");
    assert_eq!(
        f64_of(&sc, "company", None, "median_first_touch_response_minutes"),
        Some(67.5)
    );
    assert_eq!(
        f64_of(&sc, "company", None, "slippage_rate_pct"),
        Some(50.0)
    );
    assert_eq!(
        f64_of(&sc, "rep", Some("R4"), "selling_time_pct"),
        Some(100.0)
    );
    assert_eq!(
        f64_of(&sc, "rep", Some("R4"), "attainment_pct"),
        None,
        "R4 has no quota"
    );

    // The manifest sits in _runs/ and records inputs and partitions.
    let manifest = summary["manifest"].as_str().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(m["inputs"][4]["table"], "deals");
    assert_eq!(m["inputs"][4]["rows_read"], 16);
    assert_eq!(m["partitions"][0]["rows"], 7);
}

#[test]
fn rerun_gives_identical_partitions() {
    let sb = Sandbox::new();
    sb.run(&[]).assert().success();
    let first = snapshot(&sb.output());
    sb.run(&[]).assert().success();
    let second = snapshot(&sb.output());
    let parts = |s: &std::collections::BTreeMap<String, (Vec<u8>, std::time::SystemTime)>| {
        s.iter()
            .filter(|(k, _)| !k.starts_with("_runs"))
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(parts(&first), parts(&second));
    assert_eq!(
        second.keys().filter(|k| k.starts_with("_runs/")).count(),
        2,
        "one manifest per run"
    );
}

/// Reruns agree byte for byte in a reporting zone where the batching of the finished rows
/// differs between runs: in Pacific/Chatham the sample's January first-touch mean was
/// 496.33333333333337 minutes in some runs and 496.3333333333333 in others, while minutes were
/// divided by a polars literal (see `levels::divided`).
#[test]
fn reruns_agree_in_another_time_zone() {
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(sb.pipeline()).unwrap();
    let zoned = text.replace(
        "reporting_timezone = \"UTC\"",
        "reporting_timezone = \"Pacific/Chatham\"",
    );
    assert_ne!(zoned, text, "the sample pipeline names its reporting zone");
    std::fs::write(sb.pipeline(), zoned).unwrap();
    let parts = || {
        sb.run(&["--grain", "week", "--grain", "month"])
            .assert()
            .success();
        snapshot(&sb.output())
            .into_iter()
            .filter(|(k, _)| !k.starts_with("_runs"))
            .map(|(k, v)| (k, v.0))
            .collect::<Vec<_>>()
    };
    let first = parts();
    for rerun in 1..=4 {
        assert!(parts() == first, "rerun {rerun} changed a partition");
    }
}

#[test]
fn period_backfill_replaces_only_its_partitions() {
    let sb = Sandbox::new();
    sb.run(&[]).assert().success();
    let before = snapshot(&sb.output());
    std::thread::sleep(Duration::from_millis(1100));
    let summary = sb.summary(&["--period", "2024-03"]);
    assert_eq!(summary["grains"], serde_json::json!(["month"]));
    let after = snapshot(&sb.output());
    let mut changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k).is_none_or(|b| b.1 != v.1))
        .map(|(k, _)| k)
        .collect();
    changed.retain(|k| !k.starts_with("_runs/"));
    changed.sort();
    assert_eq!(
        changed,
        [
            "deal_size/grain=month/period=2024-03/part-0.parquet",
            "deal_slippage/grain=month/period=2024-03/part-0.parquet",
            "lead_response_time/grain=month/period=2024-03/part-0.parquet",
            "quota_attainment/grain=month/period=2024-03/part-0.parquet",
            "rep_scorecard/grain=month/period=2024-03/part-0.parquet",
            "selling_time/grain=month/period=2024-03/part-0.parquet",
        ]
    );
    for (k, (bytes, _)) in &before {
        assert_eq!(&after[k].0, bytes, "{k} changed");
    }
    // No temporary files left for Hive readers to trip over.
    assert!(
        after.keys().all(|k| !k.contains("/.")),
        "{:?}",
        after.keys().collect::<Vec<_>>()
    );
}

#[test]
fn backfill_range_and_extra_grain() {
    let sb = Sandbox::new();
    let out = sb
        .run(&[
            "--from", "2024-02", "--to", "2024-03", "--grain", "month", "--grain", "quarter",
        ])
        .assert()
        .success();
    let summary: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        summary["periods"]["month"],
        serde_json::json!(["2024-02", "2024-03"])
    );
    assert_eq!(
        summary["periods"]["quarter"],
        serde_json::json!(["2024-Q1"])
    );
}

#[test]
fn missing_column_exits_2_naming_it_and_writes_nothing() {
    let sb = Sandbox::new();
    sb.edit(&sb.data("deals.csv"), |t| t.replacen("stage", "phase", 1));
    sb.run(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "deals: canonical column `status` is mapped to `stage`",
        ))
        .stderr(predicate::str::contains("`phase`"));
    assert!(!sb.output().exists(), "nothing may be written");
}

#[test]
fn config_errors_exit_2() {
    let sb = Sandbox::new();
    sb.run(&["--period", "2024-13"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`2024-13`"));
    sb.run(&["--metrics", "win_rate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`win_rate` is not a known metric"));
    sb.edit(&sb.pipeline(), |t| t.replace("grains =", "grain ="));
    sb.run(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field `grain`"));
    bin()
        .args(["run", "--pipeline", "/nonexistent/p.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/p.toml"));
    sb.run(&["--follow-up-part-rows", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--follow-up-part-rows"));
    assert!(!sb.output().exists());
}

#[test]
fn missing_input_file_exits_2() {
    let sb = Sandbox::new();
    std::fs::remove_file(sb.data("quotas.csv")).unwrap();
    sb.run(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("quotas: no input file matches"));
    assert!(!sb.output().exists());
}

#[test]
fn too_many_rejects_exit_3_and_publish_no_partition() {
    let sb = Sandbox::new();
    let mut deals = std::fs::read_to_string(sb.data("deals.csv")).unwrap();
    deals.push_str("D99,R1,2024-02-01,Closed Won,2024-01-01,2024-02-01,100,\n"); // closed before created
    std::fs::write(sb.data("deals.csv"), deals).unwrap();
    sb.run(&[])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("deals: 1 of 17 rows rejected"))
        .stderr(predicate::str::contains("closed_before_created: 1"));
    let files = snapshot(&sb.output());
    assert!(
        files
            .keys()
            .all(|k| k.starts_with("_rejects/deals/") || k.starts_with("_runs/")),
        "{:?}",
        files.keys()
    );
    let rejects = files.keys().find(|k| k.starts_with("_rejects/")).unwrap();
    let df = ParquetReader::new(std::fs::File::open(sb.output().join(rejects)).unwrap())
        .finish()
        .unwrap();
    assert_eq!(
        df.column("reject_reason").unwrap().str().unwrap().get(0),
        Some("closed_before_created")
    );
    assert_eq!(
        df.column("deal_id").unwrap().str().unwrap().get(0),
        Some("D99")
    );
    // With a looser limit the run succeeds and still writes the rejects.
    sb.edit(&sb.pipeline(), |t| {
        t.replace("max_reject_fraction = 0.01", "max_reject_fraction = 0.1")
    });
    sb.run(&[]).assert().success();
}

#[test]
fn dry_run_lists_partitions_and_writes_nothing() {
    let sb = Sandbox::new();
    sb.run(&["--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "quota_attainment/grain=quarter/period=2024-Q2/part-0.parquet",
        ))
        .stdout(predicate::str::contains("deals:"));
    assert!(!sb.output().exists());
}

#[test]
fn validate_reports_and_writes_nothing() {
    let sb = Sandbox::new();
    bin()
        .args(["validate", "--pipeline"])
        .arg(sb.pipeline())
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"deals\s+16\s+16\s+0").unwrap());
    assert!(!sb.output().exists());
}

#[test]
fn json_logs_on_stderr() {
    let sb = Sandbox::new();
    let out = sb
        .run(&["--log-format", "json"])
        .env("RUST_LOG", "info")
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.lines().count() > 3);
    for line in stderr.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

#[test]
fn fiscal_year_labels_in_partition_paths() {
    let sb = Sandbox::new();
    sb.edit(&sb.pipeline(), |t| {
        t.replace("fiscal_year_start_month = 1", "fiscal_year_start_month = 2")
            .replace(
                "grains = [\"month\", \"quarter\"]",
                "grains = [\"quarter\", \"year\"]",
            )
    });
    let summary = sb.summary(&[]);
    // Jan 2024 is the last month of FY2024 (Feb 2023 – Jan 2024).
    assert_eq!(
        summary["periods"]["quarter"],
        serde_json::json!(["FY2024-Q4", "FY2025-Q1", "FY2025-Q2"])
    );
    assert_eq!(
        summary["periods"]["year"],
        serde_json::json!(["FY2024", "FY2025"])
    );
    // FY2025-Q1 = Feb–Apr 2024. R3's calendar-Q1 quota (91 000 over 91 days) gives Feb + Mar
    // = 60 days = 60 000; the Q2 quota (91 000 over Apr–Jun, 91 days) gives April's 30 000.
    let q = read_partition(&sb.output(), "quota_attainment", "quarter", "FY2025-Q1");
    assert_eq!(
        f64_of(&q, "rep", Some("R3"), "quota").map(|v| v.round()),
        Some(90_000.0)
    );
    assert_eq!(
        f64_of(&q, "rep", Some("R3"), "bookings"),
        Some(40_000.0),
        "D07 22 000 in Feb + D08 18 000 in Mar"
    );
}

/// Every partition of a run, as DataFrames by relative path.
fn tables(output: &std::path::Path) -> Vec<(String, DataFrame)> {
    snapshot(output)
        .into_keys()
        .filter(|k| k.ends_with(".parquet") && !k.starts_with('_'))
        .map(|k| {
            let df = ParquetReader::new(std::fs::File::open(output.join(&k)).unwrap())
                .finish()
                .unwrap();
            (k, df)
        })
        .collect()
}

fn assert_same_tables(a: &std::path::Path, b: &std::path::Path) {
    let (ta, tb) = (tables(a), tables(b));
    assert_eq!(
        ta.iter().map(|t| &t.0).collect::<Vec<_>>(),
        tb.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for ((name, da), (_, db)) in ta.iter().zip(&tb) {
        assert!(da.equals_missing(db), "{name} differs:\n{da}\n{db}");
    }
}

#[test]
fn typed_parquet_input_gives_the_same_rows_as_csv() {
    let sb = Sandbox::new();
    let csv_out = sb.dir.path().join("from_csv");
    sb.run(&["--output", csv_out.to_str().unwrap()])
        .assert()
        .success();

    // deals.csv as Parquet with typed columns where a real export would have them: dates as
    // DATE (D10's offset timestamp becomes its UTC date), money as DOUBLE; created_at stays text.
    let mut df = LazyCsvReader::new(PlRefPath::new(sb.data("deals.csv").to_str().unwrap()))
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .finish()
        .unwrap()
        .with_columns([
            coalesce(&[
                col("closed_at").str().to_date(StrptimeOptions {
                    format: Some("%Y-%m-%d".into()),
                    strict: false,
                    ..Default::default()
                }),
                col("closed_at")
                    .str()
                    .to_datetime(
                        Some(TimeUnit::Microseconds),
                        None,
                        StrptimeOptions {
                            format: Some("%Y-%m-%dT%H:%M:%S%:z".into()),
                            strict: false,
                            ..Default::default()
                        },
                        lit("raise"),
                    )
                    .dt()
                    .date(),
            ])
            .alias("closed_at"),
            col("expected_close_date").cast(DataType::Date),
            col("amount").cast(DataType::Float64),
            col("list_price").cast(DataType::Float64),
        ])
        .collect()
        .unwrap();
    assert_eq!(
        df.column("closed_at").unwrap().null_count(),
        2,
        "only the two open deals lack a close date"
    );
    let file = std::fs::File::create(sb.data("deals.parquet")).unwrap();
    ParquetWriter::new(file).finish(&mut df).unwrap();
    sb.edit(&sb.pipeline(), |t| t.replace("deals.csv", "deals.parquet"));
    let pq_out = sb.dir.path().join("from_parquet");
    sb.run(&["--output", pq_out.to_str().unwrap()])
        .assert()
        .success();
    assert_same_tables(&csv_out, &pq_out);
}

#[test]
fn glob_over_split_files_gives_the_same_rows() {
    let sb = Sandbox::new();
    let one_out = sb.run_into("one_file");
    let (header, body) = sb.csv_lines("deals.csv");
    let (a, b) = body.split_at(7);
    sb.write_csv("deals_part1.csv", &header, a);
    sb.write_csv("deals_part2.csv", &header, b);
    std::fs::remove_file(sb.data("deals.csv")).unwrap();
    sb.edit(&sb.pipeline(), |t| {
        t.replace("deals.csv", "deals_part*.csv")
    });
    let glob_out = sb.dir.path().join("glob");
    let summary = sb.summary(&["--output", glob_out.to_str().unwrap()]);
    assert_eq!(summary["inputs"][4]["rows_read"], 16);
    assert_same_tables(&one_out, &glob_out);
}

#[test]
fn reps_from_a_sql_query_give_the_same_tables_as_the_file() {
    // The reps as a `SELECT DISTINCT` over a file repeating each row 20 times, interleaved:
    // a query's row order need not repeat between evaluations, and the selling-time minutes
    // are keyed by each rep's row number, so every consumer must see one numbering.
    let sb = Sandbox::new();
    let file_out = sb.run_into("file");
    let (header, body) = sb.csv_lines("reps.csv");
    let repeated: Vec<String> = (0..20)
        .flat_map(|i| body.iter().cycle().skip(i % body.len()).take(body.len()))
        .cloned()
        .collect();
    sb.write_csv("reps_raw.csv", &header, &repeated);
    sb.edit(&sb.pipeline(), |t| {
        t.replace(
            "[inputs.reps]\nuri = \"../data/sample/reps.csv\"",
            "[sources.raw_reps]\nuri = \"../data/sample/reps_raw.csv\"\n\n[inputs.reps]\nsql = \"SELECT DISTINCT rep_id, rep_name, team_id, role FROM raw_reps\"",
        )
    });
    assert!(
        std::fs::read_to_string(sb.pipeline())
            .unwrap()
            .contains("raw_reps")
    );
    let sql_out = sb.dir.path().join("sql");
    let summary = sb.summary(&["--output", sql_out.to_str().unwrap()]);
    assert_eq!(summary["inputs"][0]["rows_read"], 5);
    assert_same_tables(&file_out, &sql_out);
}
