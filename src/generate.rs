//! `sales-metrics generate`: a realistic, deterministic dataset in the SPEC §2 schema plus a
//! pipeline file that runs every metric over it. For tests at scale and the benchmark.
//!
//! Every value is a pure function of (seed, table, row, field) through a splitmix64 hash, so
//! the same arguments give the same files, any chunk can be made without the others, and
//! tables that refer to each other (a first touch and its lead, a push and its deal) agree
//! without holding either in memory. Large tables stream to disk in chunks of
//! [`CHUNK_ROWS`]: one Parquet row group (or one CSV block) at a time, so 100 M activities
//! need about one chunk of memory.
//!
//! The data spans 2023-01-01 .. 2024-12-31; run it with `--as-of 2024-12-31`. It has reps in
//! teams (SDRs and AEs, 5 % moving team once), monthly and quarterly quotas (some zero), open,
//! won and lost deals with list prices and discounts, close-date pushes in deal_history, leads
//! (10 % unowned, 15 % never answered) with first touches, and inbound/outbound/internal deal
//! activities with durations.

use std::path::{Path, PathBuf};

use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;

use crate::metrics::dates::epoch_days;

/// Rows per chunk (and per Parquet row group) for large tables.
pub const CHUNK_ROWS: usize = 1_000_000;

const SPAN_DAYS: i64 = 731;
const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub out: PathBuf,
    pub reps: u64,
    pub deals: u64,
    pub leads: u64,
    pub activities: u64,
    pub seed: u64,
    pub format: OutFormat,
}

#[derive(Debug, Serialize)]
pub struct Generated {
    pub pipeline: String,
    pub tables: Vec<(String, u64)>,
}

/// Deterministic pseudo-random values per (table, row, field).
#[derive(Clone, Copy)]
struct Hash {
    seed: u64,
    table: u64,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Hash {
    fn new(seed: u64, table: u64) -> Hash {
        Hash {
            seed: splitmix(seed),
            table: splitmix(table.wrapping_mul(0xA24B_AED4_963E_E407)),
        }
    }
    fn u(self, row: u64, field: u64) -> u64 {
        splitmix(self.seed ^ self.table ^ splitmix(row.wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ field))
    }
    /// Uniform in [0, 1).
    fn unit(self, row: u64, field: u64) -> f64 {
        (self.u(row, field) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(self, row: u64, field: u64, n: u64) -> u64 {
        self.u(row, field) % n.max(1)
    }
}

/// The dataset's shape and the facts tables share about each other.
struct Model {
    o: GenerateOptions,
    start_day: i64,
    teams: u64,
}

const T_REP: u64 = 1;
const T_DEAL: u64 = 2;
const T_LEAD: u64 = 3;
const T_ACT: u64 = 4;
const T_QUOTA: u64 = 5;

impl Model {
    fn rep_is_sdr(&self, r: u64) -> bool {
        Hash::new(self.o.seed, T_REP).unit(r, 1) < 0.3
    }
    fn rep_team(&self, r: u64) -> u64 {
        r % self.teams
    }
    fn rep_moves(&self, r: u64) -> Option<i64> {
        let h = Hash::new(self.o.seed, T_REP);
        (h.unit(r, 2) < 0.05)
            .then(|| self.start_day + 60 + h.below(r, 3, (SPAN_DAYS - 120) as u64) as i64)
    }
    /// Deal owner: an AE (an SDR only when there is no AE among a few draws).
    fn deal_rep(&self, d: u64) -> u64 {
        let h = Hash::new(self.o.seed, T_DEAL);
        (0..4)
            .map(|k| h.below(d, 10 + k, self.o.reps))
            .find(|r| !self.rep_is_sdr(*r))
            .unwrap_or(h.below(d, 10, self.o.reps))
    }
    /// Deal creation instant (µs since the epoch).
    fn deal_created(&self, d: u64) -> i64 {
        let h = Hash::new(self.o.seed, T_DEAL);
        (self.start_day + h.below(d, 1, (SPAN_DAYS - 30) as u64) as i64) * MICROS_PER_DAY
            + h.below(d, 2, 36_000) as i64 * 1_000_000
            + 8 * 3_600_000_000
    }
    /// Expected close dates: the original one, then each push (1–3 for a quarter of deals).
    fn deal_expected(&self, d: u64) -> Vec<(i64, i64)> {
        let h = Hash::new(self.o.seed, T_DEAL);
        let created_day = self.deal_created(d) / MICROS_PER_DAY;
        let mut e = created_day + 10 + h.below(d, 3, 110) as i64;
        // (value, day the value was set)
        let mut out = vec![(e, created_day)];
        let pushes = if h.unit(d, 4) < 0.25 {
            1 + h.below(d, 5, 3)
        } else {
            0
        };
        for k in 0..pushes {
            let set_on = e - 3 - h.below(d, 20 + k, 10) as i64;
            e += 7 + h.below(d, 30 + k, 40) as i64;
            out.push((e, set_on.max(created_day)));
        }
        out
    }
    fn lead_created(&self, l: u64) -> i64 {
        let h = Hash::new(self.o.seed, T_LEAD);
        (self.start_day + h.below(l, 1, SPAN_DAYS as u64) as i64) * MICROS_PER_DAY
            + h.below(l, 2, 86_400) as i64 * 1_000_000
    }
    fn lead_owner(&self, l: u64) -> Option<u64> {
        let h = Hash::new(self.o.seed, T_LEAD);
        (h.unit(l, 3) >= 0.1).then(|| {
            (0..4)
                .map(|k| h.below(l, 10 + k, self.o.reps))
                .find(|r| self.rep_is_sdr(*r))
                .unwrap_or(h.below(l, 10, self.o.reps))
        })
    }
}

/// Writes `dir/<name>.<ext>` chunk by chunk.
struct TableWriter {
    inner: Inner,
    rows: u64,
}

enum Inner {
    Parquet(Box<polars::io::parquet::write::BatchedWriter<std::fs::File>>),
    Csv(polars::io::csv::write::BatchedWriter<std::fs::File>),
}

impl TableWriter {
    fn create(path: &Path, format: OutFormat, schema: &Schema) -> Result<TableWriter> {
        let file = fs_err::File::create(path)?.into_parts().0;
        let inner = match format {
            OutFormat::Parquet => {
                Inner::Parquet(Box::new(ParquetWriter::new(file).batched(schema)?))
            }
            OutFormat::Csv => {
                Inner::Csv(CsvWriter::new(file).include_header(true).batched(schema)?)
            }
        };
        Ok(TableWriter { inner, rows: 0 })
    }

    fn write(&mut self, df: &mut DataFrame) -> Result<()> {
        self.rows += df.height() as u64;
        match &mut self.inner {
            Inner::Parquet(w) => w.write_batch(df)?,
            Inner::Csv(w) => w.write_batch(df)?,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        match &mut self.inner {
            Inner::Parquet(w) => {
                w.finish()?;
            }
            Inner::Csv(w) => w.finish()?,
        }
        Ok(self.rows)
    }
}

fn ids(prefix: &str, col_name: &str) -> Expr {
    // A null id stays null (an unowned lead), not the bare prefix.
    concat_str(
        [
            lit(prefix.to_string()),
            col(col_name).cast(DataType::String),
        ],
        "",
        false,
    )
}

fn utc(c: &str) -> Expr {
    col(c).cast(DataType::Datetime(
        TimeUnit::Microseconds,
        Some(TimeZone::UTC),
    ))
}

fn day(c: &str) -> Expr {
    col(c).cast(DataType::Int32).cast(DataType::Date)
}

/// Writes the dataset and its pipeline file to `o.out`.
pub fn generate(o: GenerateOptions) -> Result<Generated> {
    fs_err::create_dir_all(&o.out)?;
    let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default();
    let m = Model {
        teams: (o.reps / 8).max(2),
        start_day: i64::from(epoch_days(start)),
        o,
    };
    let ext = match m.o.format {
        OutFormat::Csv => "csv",
        OutFormat::Parquet => "parquet",
    };
    let mut tables = Vec::new();
    let mut write =
        |name: &str, chunks: &mut dyn Iterator<Item = Result<DataFrame>>| -> Result<()> {
            let path = m.o.out.join(format!("{name}.{ext}"));
            let mut writer: Option<TableWriter> = None;
            for chunk in chunks {
                let mut df = chunk?;
                if writer.is_none() {
                    writer = Some(TableWriter::create(&path, m.o.format, df.schema())?);
                }
                if let Some(w) = writer.as_mut() {
                    w.write(&mut df)?;
                }
            }
            let rows = match writer {
                Some(w) => w.finish()?,
                None => 0,
            };
            tables.push((name.to_string(), rows));
            Ok(())
        };
    write("teams", &mut std::iter::once(teams(&m)))?;
    write("reps", &mut std::iter::once(reps(&m)))?;
    write("team_memberships", &mut std::iter::once(memberships(&m)))?;
    write("quotas", &mut std::iter::once(quotas(&m)))?;
    write("deals", &mut chunked(m.o.deals, |r| deals(&m, r)))?;
    write("deal_history", &mut chunked(m.o.deals, |r| history(&m, r)))?;
    write("leads", &mut chunked(m.o.leads, |r| leads(&m, r)))?;
    write(
        "activities",
        &mut chunked(m.o.activities, |r| activities(&m, r)),
    )?;
    let pipeline = m.o.out.join("pipeline.toml");
    fs_err::write(&pipeline, pipeline_text(ext))?;
    Ok(Generated {
        pipeline: pipeline.display().to_string(),
        tables,
    })
}

fn chunked<'a>(
    n: u64,
    f: impl Fn(std::ops::Range<u64>) -> Result<DataFrame> + 'a,
) -> impl Iterator<Item = Result<DataFrame>> + 'a {
    (0..n.div_ceil(CHUNK_ROWS as u64).max(1)).map(move |c| {
        let lo = c * CHUNK_ROWS as u64;
        f(lo..((c + 1) * CHUNK_ROWS as u64).min(n))
    })
}

fn teams(m: &Model) -> Result<DataFrame> {
    let n: Vec<u64> = (0..m.teams).collect();
    let regions = ["EMEA", "North America", "APAC", "LATAM"];
    let df = df!(
        "t" => &n,
        "region" => n.iter().map(|t| regions[(*t % 4) as usize]).collect::<Vec<_>>()
    )?;
    Ok(df
        .lazy()
        .select([
            ids("T", "t").alias("team_id"),
            ids("Team ", "t").alias("team_name"),
            ids("Manager ", "t").alias("manager"),
            col("region"),
        ])
        .collect()?)
}

fn reps(m: &Model) -> Result<DataFrame> {
    let r: Vec<u64> = (0..m.o.reps).collect();
    let df = df!(
        "r" => &r,
        "t" => r.iter().map(|r| m.rep_team(*r)).collect::<Vec<_>>(),
        "role" => r.iter().map(|r| if m.rep_is_sdr(*r) { "SDR" } else { "AE" }).collect::<Vec<_>>()
    )?;
    Ok(df
        .lazy()
        .select([
            ids("R", "r").alias("rep_id"),
            ids("Rep ", "r").alias("rep_name"),
            ids("T", "t").alias("team_id"),
            col("role"),
        ])
        .collect()?)
}

fn memberships(m: &Model) -> Result<DataFrame> {
    let (mut r, mut t, mut from, mut to) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..m.o.reps {
        if let Some(moved) = m.rep_moves(rep) {
            let old = m.rep_team(rep);
            r.extend([rep, rep]);
            t.extend([old, (old + 1) % m.teams]);
            from.extend([m.start_day, moved]);
            to.extend([Some(moved), None]);
        }
    }
    let df = df!("r" => r, "t" => t, "from" => from, "to" => to)?;
    Ok(df
        .lazy()
        .select([
            ids("R", "r").alias("rep_id"),
            ids("T", "t").alias("team_id"),
            day("from").alias("valid_from"),
            day("to").alias("valid_to"),
        ])
        .collect()?)
}

fn quotas(m: &Model) -> Result<DataFrame> {
    let h = Hash::new(m.o.seed, T_QUOTA);
    let (mut r, mut s, mut e, mut amount) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let cal = crate::calendar::Calendar::new(1)?;
    let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_default();
    let end = chrono::NaiveDate::from_ymd_opt(2024, 12, 31).unwrap_or_default();
    for rep in (0..m.o.reps).filter(|r| !m.rep_is_sdr(*r)) {
        let monthly = h.unit(rep, 1) < 0.5;
        let grain = if monthly {
            crate::calendar::Grain::Month
        } else {
            crate::calendar::Grain::Quarter
        };
        let base = 20_000.0 + (h.below(rep, 2, 40) * 1000) as f64;
        for (k, p) in cal
            .periods_between(grain, start, end)
            .into_iter()
            .enumerate()
        {
            let zero = h.unit(rep, 100 + k as u64) < 0.02;
            r.push(rep);
            s.push(i64::from(epoch_days(p.start)));
            e.push(i64::from(epoch_days(p.end)));
            amount.push(if zero {
                0.0
            } else if monthly {
                base
            } else {
                3.0 * base
            });
        }
    }
    let df = df!("r" => r, "s" => s, "e" => e, "quota_amount" => amount)?;
    Ok(df
        .lazy()
        .select([
            ids("R", "r").alias("rep_id"),
            day("s").alias("period_start"),
            day("e").alias("period_end"),
            col("quota_amount"),
        ])
        .collect()?)
}

fn deals(m: &Model, rows: std::ops::Range<u64>) -> Result<DataFrame> {
    let h = Hash::new(m.o.seed, T_DEAL);
    let n = (rows.end - rows.start) as usize;
    let (mut id, mut rep, mut created, mut status, mut closed, mut expected, mut amount, mut list) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for d in rows {
        let c = m.deal_created(d);
        let outcome = h.unit(d, 6);
        let st = if outcome < 0.35 {
            "won"
        } else if outcome < 0.6 {
            "lost"
        } else {
            "open"
        };
        let value = (1000.0 * (100f64).powf(h.unit(d, 7)) * 100.0).round() / 100.0;
        id.push(d);
        rep.push(m.deal_rep(d));
        created.push(c);
        status.push(st);
        closed.push((st != "open").then(|| c / MICROS_PER_DAY + 5 + h.below(d, 8, 150) as i64));
        expected.push(m.deal_expected(d).last().map(|x| x.0).unwrap_or_default());
        let lost_empty = st == "lost" && h.unit(d, 9) < 0.2;
        amount.push(if lost_empty { 0.0 } else { value });
        list.push(
            (h.unit(d, 11) < 0.7)
                .then(|| ((value / (1.0 - 0.35 * h.unit(d, 12))) * 100.0).round() / 100.0),
        );
    }
    let df = df!(
        "d" => id, "r" => rep, "created" => created, "status" => status, "closed" => closed,
        "expected" => expected, "amount" => amount, "list_amount" => list
    )?;
    Ok(df
        .lazy()
        .select([
            ids("D", "d").alias("deal_id"),
            ids("R", "r").alias("rep_id"),
            utc("created").alias("created_at"),
            col("status"),
            day("closed").alias("closed_at"),
            day("expected").alias("expected_close_date"),
            col("amount"),
            col("list_amount"),
        ])
        .collect()?)
}

fn history(m: &Model, rows: std::ops::Range<u64>) -> Result<DataFrame> {
    let (mut id, mut at, mut old, mut new) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for d in rows {
        let versions = m.deal_expected(d);
        for w in versions.windows(2) {
            id.push(d);
            at.push(w[1].1 * MICROS_PER_DAY + 10 * 3_600_000_000);
            old.push(w[0].0);
            new.push(w[1].0);
        }
    }
    let df = df!("d" => id, "at" => at, "old" => old, "new" => new)?;
    Ok(df
        .lazy()
        .select([
            ids("D", "d").alias("deal_id"),
            utc("at").alias("changed_at"),
            lit("expected_close_date").alias("field"),
            day("old").cast(DataType::String).alias("old_value"),
            day("new").cast(DataType::String).alias("new_value"),
        ])
        .collect()?)
}

fn leads(m: &Model, rows: std::ops::Range<u64>) -> Result<DataFrame> {
    let h = Hash::new(m.o.seed, T_LEAD);
    let sources = ["web", "event", "referral", "outbound", "partner"];
    let (mut id, mut owner, mut created, mut source) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for l in rows {
        id.push(l);
        owner.push(m.lead_owner(l));
        created.push(m.lead_created(l));
        source.push(sources[h.below(l, 4, 5) as usize]);
    }
    let df = df!("l" => id, "r" => owner, "created" => created, "source" => source)?;
    Ok(df
        .lazy()
        .select([
            ids("L", "l").alias("lead_id"),
            ids("R", "r").alias("rep_id"),
            utc("created").alias("created_at"),
            col("source"),
        ])
        .collect()?)
}

fn activities(m: &Model, rows: std::ops::Range<u64>) -> Result<DataFrame> {
    let h = Hash::new(m.o.seed, T_ACT);
    let hl = Hash::new(m.o.seed, T_LEAD);
    let n = (rows.end - rows.start) as usize;
    let mut id = Vec::with_capacity(n);
    let mut rep = Vec::with_capacity(n);
    let mut lead: Vec<Option<u64>> = Vec::with_capacity(n);
    let mut deal: Vec<Option<u64>> = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut direction = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut minutes: Vec<Option<f64>> = Vec::with_capacity(n);
    for a in rows {
        id.push(a);
        let duration = (h.unit(a, 9) >= 0.05).then(|| (5 + h.below(a, 10, 55)) as f64);
        // The first activities are first touches: activity i answers lead i (85 % of leads).
        if a < m.o.leads && hl.unit(a, 5) < 0.85 {
            let owner = m.lead_owner(a).unwrap_or_else(|| h.below(a, 1, m.o.reps));
            // Minutes to respond: log-uniform from 1 minute to ~3 days.
            let wait = (60.0 * 1e6 * (4300f64).powf(h.unit(a, 2))) as i64;
            rep.push(owner);
            lead.push(Some(a));
            deal.push(None);
            kind.push(if h.unit(a, 3) < 0.5 { "call" } else { "email" });
            direction.push("outbound");
            started.push(m.lead_created(a) + wait);
            minutes.push(duration);
            continue;
        }
        let d = h.below(a, 4, m.o.deals);
        let created = m.deal_created(d);
        let u = h.unit(a, 5);
        let (dir, kinds): (&str, &[&str]) = if u < 0.35 {
            ("inbound", &["email", "call", "meeting"])
        } else if u < 0.8 {
            ("outbound", &["email", "call", "demo", "meeting"])
        } else if u < 0.95 {
            ("internal", &["note", "crm_update", "admin"])
        } else {
            ("outbound", &["prospecting"])
        };
        rep.push(if h.unit(a, 6) < 0.8 {
            m.deal_rep(d)
        } else {
            h.below(a, 7, m.o.reps)
        });
        lead.push(None);
        deal.push((kinds[0] != "prospecting").then_some(d));
        kind.push(kinds[h.below(a, 8, kinds.len() as u64) as usize]);
        direction.push(dir);
        started.push(created + h.below(a, 11, 120 * 86_400) as i64 * 1_000_000);
        minutes.push(duration);
    }
    let df = df!(
        "a" => id, "r" => rep, "l" => lead, "d" => deal, "activity_type" => kind,
        "direction" => direction, "started" => started, "duration_minutes" => minutes
    )?;
    Ok(df
        .lazy()
        .select([
            ids("A", "a").alias("activity_id"),
            ids("R", "r").alias("rep_id"),
            ids("L", "l").alias("lead_id"),
            ids("D", "d").alias("deal_id"),
            col("activity_type"),
            col("direction"),
            utc("started").alias("started_at"),
            col("duration_minutes"),
        ])
        .collect()?)
}

fn pipeline_text(ext: &str) -> String {
    let mut s = String::from(
        "# Written by `sales-metrics generate`. Data spans 2023-01-01 .. 2024-12-31:\n\
         # sales-metrics run --pipeline pipeline.toml --as-of 2024-12-31\n\n\
         [pipeline]\nname = \"generated\"\ngrains = [\"month\", \"quarter\"]\n\n",
    );
    for t in [
        "reps",
        "teams",
        "team_memberships",
        "quotas",
        "deals",
        "deal_history",
        "leads",
        "activities",
    ] {
        s.push_str(&format!("[inputs.{t}]\nuri = \"{t}.{ext}\"\n\n"));
    }
    s.push_str(
        "[metrics.selling_time]\nworking_minutes_per_day = 480\n\n[output]\nuri = \"output\"\n",
    );
    s
}
