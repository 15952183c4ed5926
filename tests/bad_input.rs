//! SPEC §8 end to end: every exit code, encodings, wrong formats, rejects, and kills.

use std::time::Duration;

use polars::prelude::*;
use predicates::prelude::*;

use crate::common::*;

#[test]
fn exit_1_when_the_output_cannot_be_written() {
    let sb = Sandbox::new();
    let blocker = sb.dir.path().join("not_a_dir");
    std::fs::write(&blocker, "x").unwrap();
    sb.run(&["--output", blocker.join("out").to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("storage:"));
}

#[test]
fn utf16_and_latin1_exit_2_naming_the_encoding() {
    let sb = Sandbox::new();
    let reps = std::fs::read_to_string(sb.data("reps.csv")).unwrap();
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(reps.encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    std::fs::write(sb.data("reps.csv"), utf16).unwrap();
    sb.run(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("reps.csv is UTF-16"));
    let mut latin1 = reps.into_bytes();
    latin1.extend_from_slice(b"R6,Jos\xe9 Saraiva,T1,AE\n");
    std::fs::write(sb.data("reps.csv"), latin1).unwrap();
    sb.run(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not valid UTF-8 (byte 0xE9 on line 7",
        ));
    assert!(!sb.output().exists());
}

/// Found by `props.rs`: `validate` read only the columns it checks, which passed a line with a
/// field too many that the run's full read then failed on, unnamed.
#[test]
fn a_line_with_a_field_too_many_exits_2_in_validate_and_run() {
    let sb = Sandbox::new();
    let path = sb.data("deal_history.csv");
    sb.edit(&path, |text| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[2].push(',');
        lines.join("\n") + "\n"
    });
    let named = || {
        predicate::str::contains("deal_history: cannot parse")
            .and(predicate::str::contains("deal_history.csv"))
    };
    bin()
        .args(["validate", "--as-of", AS_OF, "--pipeline"])
        .arg(sb.pipeline())
        .assert()
        .code(2)
        .stderr(named());
    sb.run(&["--output", sb.output().to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(named());
    assert!(!sb.output().exists());
}

#[test]
fn bom_and_crlf_give_the_same_rows() {
    let sb = Sandbox::new();
    let plain = sb.dir.path().join("plain");
    sb.run(&[
        "--output",
        plain.to_str().unwrap(),
        "--metrics",
        "deal_size",
    ])
    .assert()
    .success();
    for file in ["reps.csv", "deals.csv"] {
        let text = std::fs::read_to_string(sb.data(file))
            .unwrap()
            .replace('\n', "\r\n");
        std::fs::write(sb.data(file), format!("\u{feff}{text}")).unwrap();
    }
    let windows = sb.dir.path().join("windows");
    sb.run(&[
        "--output",
        windows.to_str().unwrap(),
        "--metrics",
        "deal_size",
    ])
    .assert()
    .success();
    let a = read_partition(&plain, "deal_size", "quarter", "2024-Q1");
    let b = read_partition(&windows, "deal_size", "quarter", "2024-Q1");
    assert!(a.equals_missing(&b));
}

#[test]
fn a_day_first_export_exits_2_until_its_date_format_is_set() {
    let sb = Sandbox::new();
    let iso = sb.dir.path().join("iso");
    sb.run(&[
        "--output",
        iso.to_str().unwrap(),
        "--metrics",
        "quota_attainment",
    ])
    .assert()
    .success();
    // The same quotas exported day-first (31/01/2024), as European CRMs do.
    let quotas = std::fs::read_to_string(sb.data("quotas.csv")).unwrap();
    let day_first: String = quotas
        .lines()
        .map(|l| {
            l.split(',')
                .map(|f| match f.split('-').collect::<Vec<_>>()[..] {
                    [y, m, d] if y.len() == 4 => format!("{d}/{m}/{y}"),
                    _ => f.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(day_first.contains("R1,01/01/2024,31/03/2024,90000"));
    std::fs::write(sb.data("quotas.csv"), day_first).unwrap();
    sb.run(&["--metrics", "quota_attainment"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "quotas: 12 of 12 values of `period_start` (source column `period_start`)",
        ))
        .stderr(predicate::str::contains(
            "e.g. `01/01/2024`; set [inputs.quotas.csv] date_format",
        ));
    assert!(!sb.output().exists());
    sb.edit(&sb.pipeline(), |t| {
        t.replace(
            "uri = \"../data/sample/quotas.csv\"",
            "uri = \"../data/sample/quotas.csv\"\ncsv = { date_format = \"%d/%m/%Y\" }",
        )
    });
    let fixed = sb.dir.path().join("fixed");
    sb.run(&[
        "--output",
        fixed.to_str().unwrap(),
        "--metrics",
        "quota_attainment",
    ])
    .assert()
    .success();
    let a = read_partition(&iso, "quota_attainment", "quarter", "2024-Q1");
    let b = read_partition(&fixed, "quota_attainment", "quarter", "2024-Q1");
    assert!(a.equals_missing(&b));
}

#[test]
fn exit_3_prints_the_summary_with_counts_by_reason() {
    let sb = Sandbox::new();
    let mut deals = std::fs::read_to_string(sb.data("deals.csv")).unwrap();
    deals.push_str("D01,R1,2024-01-03,Closed Won,2024-01-20,2024-01-31,1,\n"); // duplicate_key
    deals.push_str("D98,R9,2024-01-03,Closed Won,2024-01-20,2024-01-31,1,\n"); // unknown_rep
    deals.push_str("D99,R1,2024-01-03,Closed Won,2024-01-20,2024-01-31,-1,\n"); // negative_amount
    std::fs::write(sb.data("deals.csv"), deals).unwrap();
    let out = sb.run(&[]).assert().code(3).get_output().clone();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["status"], "failed_rejects");
    let deals = summary["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == "deals")
        .unwrap();
    assert_eq!(deals["rows_read"], 19);
    assert_eq!(deals["rows_accepted"], 16);
    assert_eq!(
        deals["rejected_by_reason"],
        serde_json::json!({"duplicate_key": 1, "negative_amount": 1, "unknown_rep": 1})
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("deals: 3 of 19 rows rejected (15.79 %)"),
        "{stderr}"
    );
    // The rejects carry the source line, the manifest the failed status; no partition exists.
    let files = snapshot(&sb.output());
    assert!(
        files
            .keys()
            .all(|k| k.starts_with("_rejects/") || k.starts_with("_runs/"))
    );
    let rejects = files
        .keys()
        .find(|k| k.starts_with("_rejects/deals/"))
        .unwrap();
    let df = ParquetReader::new(std::fs::File::open(sb.output().join(rejects)).unwrap())
        .finish()
        .unwrap();
    let lines: Vec<i64> = df
        .column("source_line")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(lines, [18, 19, 20]);
}

#[test]
fn validate_exit_codes_and_write_rejects() {
    let sb = Sandbox::new();
    let mut reps = std::fs::read_to_string(sb.data("reps.csv")).unwrap();
    reps.push_str(",Nobody,T1,AE\n"); // null_key: 1 of 6 reps
    std::fs::write(sb.data("reps.csv"), reps).unwrap();
    let validate = || {
        let mut cmd = bin();
        cmd.args(["validate", "--pipeline"]).arg(sb.pipeline());
        cmd
    };
    validate()
        .assert()
        .code(3)
        .stdout(predicate::str::is_match(r"reps\s+6\s+5\s+1\s+null_key=1").unwrap());
    assert!(!sb.output().exists(), "validate writes nothing by default");
    validate().arg("--write-rejects").assert().code(3);
    let files = snapshot(&sb.output());
    assert_eq!(files.len(), 1, "{:?}", files.keys());
    assert!(
        files
            .keys()
            .next()
            .unwrap()
            .starts_with("_rejects/reps/run=")
    );
}

#[test]
fn stale_temporary_files_are_cleaned_up() {
    let sb = Sandbox::new();
    sb.run(&["--metrics", "deal_size"]).assert().success();
    let dir = sb.output().join("deal_size/grain=month/period=2024-03");
    std::fs::write(
        dir.join(".part-0.parquet.20240101T000000Z-dead.tmp"),
        b"half a file",
    )
    .unwrap();
    sb.run(&["--metrics", "deal_size"]).assert().success();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["part-0.parquet"]);
}

/// Every Parquet file below `dir` opens, and no temporary file is visible to a Hive reader.
fn assert_readable(dir: &std::path::Path) {
    for (rel, (bytes, _)) in snapshot(dir) {
        let name = rel.rsplit('/').next().unwrap();
        if name.starts_with('.') {
            continue; // hidden: Hive readers skip it, the next run removes it
        }
        if rel.ends_with(".parquet") {
            ParquetReader::new(std::io::Cursor::new(bytes))
                .finish()
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
        } else {
            assert!(
                rel.starts_with("_runs/") && rel.ends_with(".json"),
                "unexpected file {rel}"
            );
        }
    }
}

#[test]
fn killed_runs_leave_whole_files_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let reference = sb.dir.path().join("reference");
    sb.run(&["--output", reference.to_str().unwrap()])
        .assert()
        .success();
    // Kill runs at several points of the compute and publish stages.
    for delay_ms in [300, 900, 1500, 2100, 2700, 3300, 3900] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sales-metrics"))
            .args(["run", "--as-of", AS_OF, "--pipeline"])
            .arg(sb.pipeline())
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_readable(&sb.output());
    }
    sb.run(&[]).assert().success();
    assert_readable(&sb.output());
    let tables = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        snapshot(dir)
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .map(|(k, v)| (k, v.0))
            .collect()
    };
    assert_eq!(tables(&sb.output()), tables(&reference));
}

/// Regression: a field that is a lone `"` crashed polars' CSV null-value check
/// (out-of-bounds `get_unchecked`, polars-io 0.55.2 csv/read/parser.rs:1154). Found by
/// `props::mutated_inputs_never_panic_and_rows_add_up`; now a clean exit 2.
#[test]
fn lone_quote_field_is_a_clear_error_not_a_crash() {
    let sb = Sandbox::new();
    let mut deals = std::fs::read_to_string(sb.data("deals.csv")).unwrap();
    deals.push_str("D17,\"");
    std::fs::write(sb.data("deals.csv"), deals).unwrap();
    sb.run(&[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("deals: cannot parse"))
        .stderr(predicate::str::contains("not properly escaped"));
}

#[test]
fn configured_null_markers_are_nulls() {
    let sb = Sandbox::new();
    sb.edit(&sb.data("deals.csv"), |t| {
        t.replace(
            "D06,R2,2024-03-01,Negotiation,,2024-04-30,25000,30000",
            "D06,R2,2024-03-01,Negotiation,NULL,2024-04-30,25000,-",
        )
    });
    sb.edit(&sb.pipeline(), |t| {
        t.replace(
            "[inputs.deals.columns]",
            "csv = { null_values = [\"\", \"NULL\", \"-\"] }\n[inputs.deals.columns]",
        )
    });
    let summary = sb.summary(&["--metrics", "deal_size"]);
    assert_eq!(summary["inputs"][4]["rows_rejected"], 0);
}
