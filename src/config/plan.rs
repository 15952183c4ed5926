//! `RunPlan`: flags + pipeline file + "today", validated and resolved into concrete values.
//!
//! After `RunPlan::from_parts`, nothing re-reads flags, files, the environment or the clock.
//! The periods of an automatic window depend on the data, so they are resolved later
//! (`Window::Auto`), but everything the user can get wrong fails here, with exit code 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::calendar::{Calendar, Grain, Period};
use crate::cli::RunArgs;
use crate::columns::{Need, Table};
use crate::config::spec::{CsvSpec, InputSpec, PipelineSpec, StatusMapSpec};
use crate::error::Error;
use crate::metrics::selling_time::{SellingSettings, TypeLists};
use crate::metrics::{MetricId, Settings};
use crate::storage::Location;
use crate::storage::s3::S3Settings;
use std::sync::Arc;

pub const DEFAULT_MAX_REJECT_FRACTION: f64 = 0.01;

/// Which periods the run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// From the period holding the earliest input date ≤ as-of to the one holding as-of.
    Auto,
    /// Every period of each grain overlapping these dates (from `--period` or `--from/--to`).
    Dates { start: NaiveDate, end: NaiveDate },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// Status values as the source writes them, mapped to won/lost/open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusMap {
    pub won: Vec<String>,
    pub lost: Vec<String>,
    /// Values that mean "open"; only consulted when `strict`.
    pub open: Vec<String>,
    /// A value in none of the lists is a rejected row (`unknown_status`), not an open deal.
    pub strict: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub date_format: Option<String>,
    pub timestamp_format: Option<String>,
    pub null_values: Vec<String>,
}

/// A file (or glob) and its format.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSource {
    pub location: Location,
    pub format: Format,
}

/// A named raw file that SQL inputs query.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSource {
    pub name: String,
    pub file: FileSource,
    pub csv: CsvOptions,
}

/// Where an input's rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    File(FileSource),
    /// A polars SQL query over the pipeline's raw sources.
    Sql {
        query: String,
        sources: Vec<RawSource>,
    },
}

/// One input table, resolved: where it comes from, column mapping, parsing and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSource {
    pub table: Table,
    pub origin: Origin,
    /// canonical name -> source column name, for every canonical column of the table.
    pub columns: BTreeMap<&'static str, String>,
    pub csv: CsvOptions,
    pub status_map: Option<StatusMap>,
    pub max_reject_fraction: f64,
    /// Quotas with `quota_grain`: `period_end` is the end of this grain's period holding
    /// `period_start` (in the pipeline's calendar) when the source has no `period_end`.
    pub period_end_from: Option<(Grain, Calendar)>,
}

impl InputSource {
    /// Where the rows come from, as a user wrote it (a path, or `sql: <query>`).
    pub fn uri(&self) -> String {
        match &self.origin {
            Origin::File(f) => f.location.display(),
            Origin::Sql { query, .. } => format!(
                "sql: {}",
                query.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        }
    }
}

/// Everything a run needs, resolved.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub pipeline_name: String,
    pub pipeline_path: PathBuf,
    pub pipeline_sha256: String,
    pub as_of: NaiveDate,
    pub reporting_tz: Tz,
    pub source_tz: Tz,
    pub calendar: Calendar,
    pub grains: Vec<Grain>,
    pub window: Window,
    pub metrics: Vec<MetricId>,
    pub inputs: BTreeMap<Table, InputSource>,
    pub output: Location,
    pub dry_run: bool,
    pub settings: Settings,
    /// Activities per part when the follow-ups are computed apart from the inputs stage, a
    /// part at a time (`--follow-up-part-rows`; see `inputs::spill::StagedRequests`). `None`: the
    /// default, [`FOLLOW_UP_PART_ROWS`], where rows can be counted without reading them.
    pub follow_up_part_rows: Option<u64>,
}

/// The default of [`RunPlan::follow_up_part_rows`]: at 50 M activities, 4 parts.
pub const FOLLOW_UP_PART_ROWS: u64 = 15_000_000;

impl RunPlan {
    /// Validates and resolves. `pipeline_text` is the file's content, `cwd` resolves relative
    /// flag paths, `env` expands `${VAR}`, `now` gives the default as-of date.
    pub fn from_parts(
        args: RunArgs,
        pipeline_path: &Path,
        pipeline_text: &str,
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        now: DateTime<Utc>,
    ) -> Result<RunPlan, Error> {
        let spec = PipelineSpec::parse(pipeline_text, env).map_err(|e| {
            Error::config(format!("pipeline file {}: {e}", pipeline_path.display()))
        })?;
        let pipeline_path = absolute(cwd, pipeline_path);
        let base = pipeline_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.to_path_buf());
        let p = &spec.pipeline;
        let storage = spec.storage.clone().unwrap_or_default();
        let s3 = Arc::new(S3Settings::resolve(
            storage.endpoint.as_deref(),
            storage.region.as_deref(),
            env,
        ));

        let reporting_tz = parse_tz(p.reporting_timezone.as_deref(), "reporting_timezone")?;
        let source_tz = parse_tz(p.source_timezone.as_deref(), "source_timezone")?;
        let calendar = Calendar::new(p.fiscal_year_start_month.unwrap_or(1))?;
        let as_of = match &args.as_of {
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                Error::config(format!("--as-of `{s}` is not a date; use YYYY-MM-DD"))
            })?,
            None => now.with_timezone(&reporting_tz).date_naive(),
        };

        let default_max = p.max_reject_fraction.unwrap_or(DEFAULT_MAX_REJECT_FRACTION);
        check_fraction(default_max, "[pipeline] max_reject_fraction")?;

        let mut sources = Vec::new();
        for (name, src) in &spec.sources {
            sources.push(RawSource {
                name: name.clone(),
                file: resolve_file(
                    &format!("[sources.{name}]"),
                    &src.uri,
                    src.format.as_deref(),
                    &base,
                    &s3,
                )?,
                csv: resolve_csv(&format!("[sources.{name}.csv]"), src.csv.as_ref())?,
            });
        }
        let mut inputs = BTreeMap::new();
        for table in Table::ALL {
            if let Some(input) = spec.input(table) {
                let src = resolve_input(table, input, &sources, calendar, &base, &s3, default_max)?;
                inputs.insert(table, src);
            }
        }

        let requested: Option<Vec<String>> = if !args.metrics.is_empty() {
            Some(
                args.metrics
                    .iter()
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect(),
            )
        } else {
            p.metrics.clone()
        };
        let metrics: Vec<MetricId> = match requested {
            Some(names) => {
                let mut metrics = Vec::new();
                for name in &names {
                    let id = MetricId::parse(name)?;
                    if !metrics.contains(&id) {
                        metrics.push(id);
                    }
                }
                metrics.sort();
                metrics
            }
            // Nothing named: every metric whose tables are configured (SPEC's "default: all",
            // without failing a pipeline that simply has no activity export).
            None => MetricId::ALL
                .into_iter()
                .filter(|m| m.required_tables().iter().all(|t| inputs.contains_key(t)))
                .collect(),
        };
        if metrics.is_empty() {
            return Err(Error::config(
                "no metrics to compute; list some in [pipeline] metrics or --metrics",
            ));
        }

        for m in &metrics {
            for t in m.required_tables() {
                if !inputs.contains_key(t) {
                    return Err(Error::config(format!(
                        "metric `{}` needs the `{t}` table; add [inputs.{t}] to the pipeline file or leave the metric out",
                        m.name()
                    )));
                }
            }
        }
        let (grains, window) = resolve_window(&args, p.grains.as_deref(), &calendar)?;

        let output = match (&args.output, &spec.output) {
            (Some(flag), _) => Location::parse(flag, cwd, &s3)?,
            (None, Some(o)) => Location::parse(&o.uri, &base, &s3)?,
            (None, None) => {
                return Err(Error::config(
                    "no output location: set [output] uri in the pipeline file or pass --output",
                ));
            }
        };

        Ok(RunPlan {
            pipeline_name: p.name.clone(),
            pipeline_sha256: sha256_hex(pipeline_text.as_bytes()),
            pipeline_path,
            as_of,
            reporting_tz,
            source_tz,
            calendar,
            grains,
            window,
            metrics,
            inputs,
            output,
            dry_run: args.dry_run,
            settings: resolve_settings(&spec)?,
            follow_up_part_rows: args.follow_up_part_rows,
        })
    }

    /// The periods of `grain` for a window whose automatic start (if any) is `earliest`.
    pub fn periods(&self, grain: Grain, earliest: Option<NaiveDate>) -> Vec<Period> {
        match self.window {
            Window::Auto => {
                let from = earliest.filter(|d| *d <= self.as_of).unwrap_or(self.as_of);
                self.calendar.periods_between(grain, from, self.as_of)
            }
            Window::Dates { start, end } => self.calendar.periods_between(grain, start, end),
        }
    }
}

fn resolve_settings(spec: &PipelineSpec) -> Result<Settings, Error> {
    let mut settings = Settings::default();
    if let Some(sla) = spec
        .metrics
        .lead_response_time
        .as_ref()
        .and_then(|l| l.sla_minutes.clone())
    {
        let mut sla = sla;
        sla.sort_unstable();
        sla.dedup();
        settings.sla_minutes = sla;
    }
    if let Some(st) = &spec.metrics.selling_time {
        if let Some(w) = st.working_minutes_per_day
            && !(w > 0.0 && w <= 1440.0)
        {
            return Err(Error::config(format!(
                "[metrics.selling_time] working_minutes_per_day must be in (0, 1440], not {w}"
            )));
        }
        // Lists left out keep SPEC's defaults, so `working_minutes_per_day = 480` alone works.
        let defaults = SellingSettings::default();
        let listed = !st.selling.is_empty() || !st.non_selling.is_empty();
        settings.selling = SellingSettings {
            default: if listed {
                TypeLists {
                    selling: st.selling.clone(),
                    non_selling: st.non_selling.clone(),
                }
            } else {
                defaults.default
            },
            roles: if st.roles.is_empty() && !listed {
                defaults.roles
            } else {
                st.roles
                    .iter()
                    .map(|(role, l)| {
                        (
                            role.clone(),
                            TypeLists {
                                selling: l.selling.clone(),
                                non_selling: l.non_selling.clone(),
                            },
                        )
                    })
                    .collect()
            },
            working_minutes_per_day: st.working_minutes_per_day,
        };
    }
    Ok(settings)
}

fn resolve_window(
    args: &RunArgs,
    pipeline_grains: Option<&[String]>,
    calendar: &Calendar,
) -> Result<(Vec<Grain>, Window), Error> {
    let explicit: Vec<Grain> = args
        .grain
        .iter()
        .map(|g| Grain::parse(g))
        .collect::<Result<_, _>>()?;
    let labelled = match (&args.period, &args.from, &args.to) {
        (Some(p), _, _) => {
            let p = calendar.parse_label(p)?;
            Some((p.grain, p.start, p.end))
        }
        (None, Some(f), Some(t)) => {
            let (f, t) = (calendar.parse_label(f)?, calendar.parse_label(t)?);
            if f.grain != t.grain {
                return Err(Error::config(format!(
                    "--from `{}` is a {} and --to `{}` is a {}; use two labels of the same grain",
                    f.label, f.grain, t.label, t.grain
                )));
            }
            if t.start < f.start {
                return Err(Error::config(format!(
                    "--to `{}` comes before --from `{}`",
                    t.label, f.label
                )));
            }
            Some((f.grain, f.start, t.end))
        }
        _ => None,
    };
    let mut grains = match (&labelled, explicit.is_empty()) {
        // A label names its grain; --grain widens a backfill to other grains over the same dates.
        (_, false) => explicit,
        (Some((g, _, _)), true) => vec![*g],
        (None, true) => match pipeline_grains {
            Some(gs) => gs
                .iter()
                .map(|g| Grain::parse(g))
                .collect::<Result<_, _>>()?,
            None => vec![Grain::Month, Grain::Quarter],
        },
    };
    grains.sort();
    grains.dedup();
    if grains.is_empty() {
        return Err(Error::config(
            "no grains to compute; list some in [pipeline] grains or pass --grain",
        ));
    }
    let window = match labelled {
        Some((_, start, end)) => Window::Dates { start, end },
        None => Window::Auto,
    };
    Ok((grains, window))
}

/// A file location and its format (from `format`, else the extension).
fn resolve_file(
    what: &str,
    uri: &str,
    format: Option<&str>,
    base: &Path,
    s3: &Arc<S3Settings>,
) -> Result<FileSource, Error> {
    let location = Location::parse(uri, base, s3)?;
    let format = match format {
        Some("csv") => Format::Csv,
        Some("parquet") => Format::Parquet,
        Some(other) => {
            return Err(Error::config(format!(
                "{what}: format `{other}` is not csv or parquet"
            )));
        }
        None => {
            let lower = uri.to_ascii_lowercase();
            if lower.ends_with(".parquet") || lower.ends_with(".pq") {
                Format::Parquet
            } else if lower.ends_with(".csv") || lower.ends_with(".txt") || lower.ends_with(".tsv")
            {
                Format::Csv
            } else {
                return Err(Error::config(format!(
                    "{what}: cannot tell the format of `{uri}` from its extension; set format = \"csv\" or \"parquet\""
                )));
            }
        }
    };
    Ok(FileSource { location, format })
}

fn resolve_input(
    table: Table,
    spec: &InputSpec,
    sources: &[RawSource],
    calendar: Calendar,
    base: &Path,
    s3: &Arc<S3Settings>,
    default_max: f64,
) -> Result<InputSource, Error> {
    let origin = match (&spec.uri, &spec.sql) {
        (Some(uri), None) => Origin::File(resolve_file(
            table.name(),
            uri,
            spec.format.as_deref(),
            base,
            s3,
        )?),
        (None, Some(query)) => Origin::Sql {
            query: query.clone(),
            sources: sources.to_vec(),
        },
        (Some(_), Some(_)) => {
            return Err(Error::config(format!(
                "[inputs.{table}] has both `uri` and `sql`; keep one"
            )));
        }
        (None, None) => {
            return Err(Error::config(format!(
                "[inputs.{table}] needs `uri` (a file) or `sql` (a query over [sources.*])"
            )));
        }
    };
    let period_end_from = match (&spec.quota_grain, table) {
        (Some(g), Table::Quotas) => Some((Grain::parse(g)?, calendar)),
        (Some(_), _) => {
            return Err(Error::config(format!(
                "{table}: quota_grain only applies to quotas"
            )));
        }
        (None, _) => None,
    };
    let defs = table.columns();
    for canonical in spec.columns.keys() {
        if !defs.iter().any(|d| d.name == canonical) {
            let known: Vec<&str> = defs.iter().map(|d| d.name).collect();
            return Err(Error::config(format!(
                "[inputs.{table}.columns]: `{canonical}` is not a canonical column of {table}; known: {}",
                known.join(", ")
            )));
        }
    }
    let mut columns = BTreeMap::new();
    for d in defs {
        let filled = period_end_from.is_some() && d.name == "period_end";
        match spec.columns.get(d.name) {
            Some(src) => {
                columns.insert(d.name, src.clone());
            }
            None if d.need != Need::Optional && !filled => {
                columns.insert(d.name, d.name.to_string());
            }
            // Optional and not mapped: used only if the source has a column of that name.
            None => {}
        }
    }
    let csv = resolve_csv(&format!("[inputs.{table}.csv]"), spec.csv.as_ref())?;
    let status_map = match (&spec.status_map, table) {
        (Some(m), Table::Deals) => Some(resolve_status_map(m)),
        (Some(_), _) => {
            return Err(Error::config(format!(
                "{table}: status_map only applies to deals"
            )));
        }
        (None, _) => None,
    };
    let max = spec.max_reject_fraction.unwrap_or(default_max);
    check_fraction(max, &format!("[inputs.{table}] max_reject_fraction"))?;
    Ok(InputSource {
        table,
        origin,
        columns,
        csv,
        status_map,
        max_reject_fraction: max,
        period_end_from,
    })
}

fn resolve_csv(section: &str, spec: Option<&CsvSpec>) -> Result<CsvOptions, Error> {
    let spec = spec.cloned().unwrap_or_default();
    let delimiter = match spec.delimiter.as_deref() {
        None => b',',
        Some("\\t") | Some("\t") => b'\t',
        Some(d) if d.len() == 1 => d.as_bytes()[0],
        Some(d) => {
            return Err(Error::config(format!(
                "{section} delimiter `{d}` must be a single ASCII character"
            )));
        }
    };
    Ok(CsvOptions {
        delimiter,
        date_format: spec.date_format,
        timestamp_format: spec.timestamp_format,
        null_values: spec.null_values.unwrap_or_else(|| vec![String::new()]),
    })
}

fn resolve_status_map(m: &StatusMapSpec) -> StatusMap {
    StatusMap {
        won: m.won.clone(),
        lost: m.lost.clone(),
        open: m.open.clone(),
        strict: m.strict.unwrap_or(false),
    }
}

fn check_fraction(v: f64, what: &str) -> Result<(), Error> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{what} must be between 0 and 1, not {v}"
        )))
    }
}

fn parse_tz(name: Option<&str>, key: &str) -> Result<Tz, Error> {
    let name = name.unwrap_or("UTC");
    name.parse::<Tz>().map_err(|_| {
        Error::config(format!(
            "{key} `{name}` is not an IANA time zone name (e.g. UTC, Europe/Berlin)"
        ))
    })
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[pipeline]
name = "t"
grains = ["month"]
[inputs.reps]
uri = "reps.csv"
[inputs.deals]
uri = "deals.csv"
[inputs.quotas]
uri = "q.parquet"
[output]
uri = "out"
"#;

    fn plan(args: RunArgs, text: &str) -> Result<RunPlan, Error> {
        let now = DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        RunPlan::from_parts(
            args,
            Path::new("/p/pipelines/x.toml"),
            text,
            Path::new("/cwd"),
            &|_| None,
            now,
        )
    }

    #[test]
    fn relative_paths_resolve_against_the_pipeline_file() {
        let p = plan(RunArgs::default(), MINIMAL).unwrap();
        assert_eq!(
            p.inputs[&Table::Reps].origin,
            Origin::File(FileSource {
                location: Location::Local("/p/pipelines/reps.csv".into()),
                format: Format::Csv
            })
        );
        assert!(
            matches!(&p.inputs[&Table::Quotas].origin, Origin::File(f) if f.format == Format::Parquet)
        );
        assert_eq!(p.output, Location::Local("/p/pipelines/out".into()));
        assert_eq!(p.as_of, NaiveDate::from_ymd_opt(2024, 5, 10).unwrap());
        assert_eq!(p.window, Window::Auto);
        assert_eq!(p.grains, vec![Grain::Month]);
    }

    #[test]
    fn period_label_sets_grain_and_window() {
        let args = RunArgs {
            period: Some("2024-Q1".into()),
            output: Some("o".into()),
            ..Default::default()
        };
        let p = plan(args, MINIMAL).unwrap();
        assert_eq!(p.grains, vec![Grain::Quarter]);
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            p.window,
            Window::Dates {
                start: d("2024-01-01"),
                end: d("2024-03-31")
            }
        );
        assert_eq!(p.output, Location::Local("/cwd/o".into()));
        let args = RunArgs {
            from: Some("2024-01".into()),
            to: Some("2024-Q1".into()),
            ..Default::default()
        };
        assert!(
            plan(args, MINIMAL)
                .unwrap_err()
                .to_string()
                .contains("same grain")
        );
    }

    #[test]
    fn default_metrics_are_those_whose_tables_are_configured() {
        let p = plan(RunArgs::default(), MINIMAL).unwrap();
        let names: Vec<&str> = p.metrics.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "quota_attainment",
                "deal_slippage",
                "deal_size",
                "rep_scorecard"
            ]
        );
        let args = RunArgs {
            metrics: vec!["selling_time".into()],
            ..Default::default()
        };
        let e = plan(args, MINIMAL).unwrap_err().to_string();
        assert!(
            e.contains("`selling_time` needs the `activities` table"),
            "{e}"
        );
    }

    #[test]
    fn metric_needing_a_missing_table_is_named() {
        let text = MINIMAL.replace("[inputs.quotas]\nuri = \"q.parquet\"\n", "");
        let args = RunArgs {
            metrics: vec!["quota_attainment".into()],
            ..Default::default()
        };
        let e = plan(args, &text).unwrap_err().to_string();
        assert!(
            e.contains("quota_attainment") && e.contains("quotas"),
            "{e}"
        );
        let args = RunArgs {
            metrics: vec!["win_rate".into()],
            ..Default::default()
        };
        assert!(
            plan(args, MINIMAL)
                .unwrap_err()
                .to_string()
                .contains("`win_rate`")
        );
    }

    #[test]
    fn bad_timezone_and_column_are_config_errors() {
        let text = MINIMAL.replace("grains", "reporting_timezone = \"Mars/Olympus\"\ngrains");
        assert!(
            plan(RunArgs::default(), &text)
                .unwrap_err()
                .to_string()
                .contains("Mars/Olympus")
        );
        let text = MINIMAL.replace(
            "uri = \"deals.csv\"",
            "uri = \"deals.csv\"\ncolumns = { amout = \"Amt\" }",
        );
        assert!(
            plan(RunArgs::default(), &text)
                .unwrap_err()
                .to_string()
                .contains("`amout`")
        );
    }

    #[test]
    fn every_shipped_pipeline_plans() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut planned = 0;
        for dir in [root.clone(), root.join("examples")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = fs_err::read_to_string(&path).unwrap();
                    RunPlan::from_parts(
                        RunArgs::default(),
                        &path,
                        &text,
                        &dir,
                        &|_| Some("x".into()),
                        Utc::now(),
                    )
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    planned += 1;
                }
            }
        }
        assert_eq!(planned, 4, "sample + three examples");
    }
}
