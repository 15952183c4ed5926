//! Properties: malformed inputs never panic and every row is accounted for; periods tile.

use chrono::{NaiveDate, Utc};
use proptest::prelude::*;
use sales_metrics::calendar::{Calendar, Grain};
use sales_metrics::cli::RunArgs;
use sales_metrics::config::plan::RunPlan;
use sales_metrics::inputs::{self, InputReport};
use sales_metrics::{exit_code, run};

use crate::common::*;

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, u8),
    DuplicateLine(usize),
    ReplaceLine(usize, String),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = prop::sample::select(vec![
        b',', b'\n', b'\r', b'"', b'-', b'0', b'9', b' ', b'x', 0xFF, 0xE9, 0,
    ]);
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), bytes).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), "[ -~]{0,40}").prop_map(|(i, s)| Edit::ReplaceLine(i, s)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), *b),
            Edit::DuplicateLine(i) | Edit::ReplaceLine(i, _) => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let k = i % lines.len();
                match e {
                    Edit::DuplicateLine(_) => lines.insert(k, lines[k].clone()),
                    Edit::ReplaceLine(_, s) => lines[k] = s.clone().into_bytes(),
                    _ => unreachable!(),
                }
                bytes = lines.join(&b'\n');
            }
            Edit::Truncate(i) => bytes.truncate(i % n),
            Edit::Delete(_) => {}
        }
    }
    bytes
}

const FILES: [&str; 8] = [
    "reps.csv",
    "teams.csv",
    "team_memberships.csv",
    "quotas.csv",
    "deals.csv",
    "deal_history.csv",
    "leads.csv",
    "activities.csv",
];

/// What `validate` reported for one input, and the rows of the frames the metrics read
/// (accepted) and of the rejects, counted by collecting those frames.
struct Counted {
    report: InputReport,
    accepted_rows: usize,
    rejected_rows: usize,
}

/// `validate` in process: Ok(its reports, with each input's frames counted) or the exit code
/// the error maps to.
fn validate(sb: &Sandbox) -> Result<Vec<Counted>, i32> {
    let text = std::fs::read_to_string(sb.pipeline()).unwrap();
    let args = RunArgs {
        as_of: Some(AS_OF.into()),
        ..Default::default()
    };
    let plan = RunPlan::from_parts(
        args,
        &sb.pipeline(),
        &text,
        sb.dir.path(),
        &|_| None,
        Utc::now(),
    )
    .map_err(|e| exit_code(&e.into()))?;
    let reports = run::validate(&plan, None).map_err(|e| exit_code(&e))?;
    let loaded = inputs::load(&plan).map_err(|e| exit_code(&e))?;
    let mut out = Vec::new();
    for report in reports {
        let input = loaded
            .inputs
            .iter()
            .find(|i| i.table.name() == report.table)
            .expect("a report per input");
        let accepted_rows = input.accepted().collect().expect("accepted rows").height();
        let rejected = input.rejected().expect("rejected rows");
        let rejected_rows = rejected.collect().expect("rejected rows").height();
        out.push(Counted {
            report,
            accepted_rows,
            rejected_rows,
        });
    }
    Ok(out)
}

/// Every row read is in exactly one of the accepted frame (what the metrics read) and the
/// rejects, and the report counts both.
fn rows_add_up(counted: &[Counted]) -> Result<(), TestCaseError> {
    for c in counted {
        let r = &c.report;
        prop_assert_eq!(
            c.accepted_rows as u64,
            r.rows_accepted,
            "{} accepted",
            r.table
        );
        prop_assert_eq!(
            c.rejected_rows as u64,
            r.rows_rejected,
            "{} rejected",
            r.table
        );
        prop_assert_eq!(
            (c.accepted_rows + c.rejected_rows) as u64,
            r.rows_read,
            "{} read",
            r.table
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_inputs_never_panic_and_rows_add_up(file in prop::sample::select(FILES.to_vec()), edits in prop::collection::vec(edit(), 1..5)) {
        let sb = Sandbox::new();
        let original = std::fs::read(sb.data(file)).unwrap();
        std::fs::write(sb.data(file), apply(original, &edits)).unwrap();
        match validate(&sb) {
            Ok(counted) => rows_add_up(&counted)?,
            Err(code) => prop_assert!(code == 2 || code == 3, "exit code {} for {} {:?}", code, file, edits),
        }
    }

    #[test]
    fn random_bytes_as_an_input_exit_2_or_3(file in prop::sample::select(FILES.to_vec()), bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let sb = Sandbox::new();
        std::fs::write(sb.data(file), bytes).unwrap();
        match validate(&sb) {
            Ok(counted) => rows_add_up(&counted)?,
            Err(code) => prop_assert!(code == 2 || code == 3, "exit code {}", code),
        }
    }

    #[test]
    fn periods_tile_any_window(start_month in 1u32..=12, from in 0i64..3000, len in 0i64..800) {
        let cal = Calendar::new(start_month).unwrap();
        let base = NaiveDate::from_ymd_opt(2018, 1, 1).unwrap();
        let (a, b) = (base + chrono::Days::new(from as u64), base + chrono::Days::new((from + len) as u64));
        for g in Grain::ALL {
            let ps = cal.periods_between(g, a, b);
            prop_assert!(ps[0].start <= a && ps.last().unwrap().end >= b);
            for w in ps.windows(2) {
                prop_assert_eq!(w[0].end + chrono::Days::new(1), w[1].start);
            }
            for p in &ps {
                prop_assert_eq!(cal.period_of(g, p.start), p.clone());
                prop_assert_eq!(cal.period_of(g, p.end), p.clone());
            }
        }
    }
}
