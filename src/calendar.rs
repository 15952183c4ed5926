//! Periods: grains, fiscal years and period labels (SPEC §3). Pure date arithmetic, no Polars.
//!
//! Weeks are ISO weeks (Monday start, ISO week-year) and never fiscal; months are calendar
//! months; quarters and years follow `fiscal_year_start_month`. A fiscal year is named after
//! the calendar year in which it ends: with start month 2, FY2025 = 2024-02-01 ..= 2025-01-31.

use std::fmt;

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};

use crate::error::Error;

/// The length of a reporting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    Week,
    Month,
    Quarter,
    Year,
}

impl Grain {
    pub const ALL: [Grain; 4] = [Grain::Week, Grain::Month, Grain::Quarter, Grain::Year];

    pub fn name(self) -> &'static str {
        match self {
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Result<Grain, Error> {
        Grain::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                Error::config(format!(
                    "`{s}` is not a grain; use one of week, month, quarter, year"
                ))
            })
    }
}

impl fmt::Display for Grain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One period of one grain: a label and an inclusive date range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    pub grain: Grain,
    pub label: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// The calendar of one pipeline: where its fiscal year starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    fiscal_start_month: u32,
}

impl Calendar {
    pub fn new(fiscal_start_month: u32) -> Result<Calendar, Error> {
        if !(1..=12).contains(&fiscal_start_month) {
            return Err(Error::config(format!(
                "fiscal_year_start_month must be 1 to 12, not {fiscal_start_month}"
            )));
        }
        Ok(Calendar { fiscal_start_month })
    }

    pub fn is_fiscal(&self) -> bool {
        self.fiscal_start_month != 1
    }

    /// The fiscal (or calendar) year holding `date`, named by the year it ends in.
    fn fiscal_year(&self, date: NaiveDate) -> i32 {
        if self.is_fiscal() && date.month() >= self.fiscal_start_month {
            date.year() + 1
        } else {
            date.year()
        }
    }

    /// First day of fiscal year `fy`.
    fn fiscal_year_start(&self, fy: i32) -> NaiveDate {
        let year = if self.is_fiscal() { fy - 1 } else { fy };
        ymd(year, self.fiscal_start_month, 1)
    }

    /// The period of `grain` that holds `date`.
    pub fn period_of(&self, grain: Grain, date: NaiveDate) -> Period {
        match grain {
            Grain::Week => {
                let start = date - Days::new(u64::from(date.weekday().num_days_from_monday()));
                let iso = date.iso_week();
                Period {
                    grain,
                    label: format!("{:04}-W{:02}", iso.year(), iso.week()),
                    start,
                    end: start + Days::new(6),
                }
            }
            Grain::Month => {
                let start = ymd(date.year(), date.month(), 1);
                Period {
                    grain,
                    label: format!("{:04}-{:02}", date.year(), date.month()),
                    start,
                    end: last_day(start, 1),
                }
            }
            Grain::Quarter => {
                let fy = self.fiscal_year(date);
                let months_in = (date.month() + 12 - self.fiscal_start_month) % 12;
                let q = months_in / 3 + 1;
                let start = self.fiscal_year_start(fy) + Months::new(3 * (q - 1));
                Period {
                    grain,
                    label: self.quarter_label(fy, q),
                    start,
                    end: last_day(start, 3),
                }
            }
            Grain::Year => {
                let fy = self.fiscal_year(date);
                let start = self.fiscal_year_start(fy);
                let label = if self.is_fiscal() {
                    format!("FY{fy:04}")
                } else {
                    format!("{fy:04}")
                };
                Period {
                    grain,
                    label,
                    start,
                    end: last_day(start, 12),
                }
            }
        }
    }

    fn quarter_label(&self, fy: i32, q: u32) -> String {
        if self.is_fiscal() {
            format!("FY{fy:04}-Q{q}")
        } else {
            format!("{fy:04}-Q{q}")
        }
    }

    pub fn next(&self, p: &Period) -> Period {
        self.period_of(p.grain, p.end + Days::new(1))
    }

    pub fn prev(&self, p: &Period) -> Period {
        self.period_of(p.grain, p.start - Days::new(1))
    }

    /// Every period of `grain` from the one holding `from` to the one holding `to`, in order.
    pub fn periods_between(&self, grain: Grain, from: NaiveDate, to: NaiveDate) -> Vec<Period> {
        let mut out = Vec::new();
        let mut p = self.period_of(grain, from);
        while p.start <= to {
            let next = self.next(&p);
            out.push(p);
            p = next;
        }
        out
    }

    /// Parses a label such as `2024-03`, `2024-Q1`, `2024`, `2024-W09`, `FY2025-Q1`, `FY2025`.
    pub fn parse_label(&self, label: &str) -> Result<Period, Error> {
        let bad = |why: &str| {
            Error::config(format!(
                "`{label}` is not a period label ({why}); use 2024-03, 2024-Q1, 2024, 2024-W09, FY2025-Q1 or FY2025"
            ))
        };
        let (fiscal, rest) = match label.strip_prefix("FY") {
            Some(rest) => (true, rest),
            None => (false, label),
        };
        let (year_s, tail) = match rest.split_once('-') {
            Some((y, t)) => (y, Some(t)),
            None => (rest, None),
        };
        if year_s.len() != 4 {
            return Err(bad("the year needs four digits"));
        }
        let year: i32 = year_s
            .parse()
            .map_err(|_| bad("the year is not a number"))?;
        let calendar_named_fiscal = !fiscal && self.is_fiscal();
        let period = match tail {
            None => {
                if calendar_named_fiscal {
                    return Err(self.fiscal_hint(label, &format!("FY{year}")));
                }
                self.period_of(Grain::Year, self.fiscal_year_start(year))
            }
            Some(t) if t.starts_with('Q') => {
                let q: u32 = t[1..]
                    .parse()
                    .map_err(|_| bad("the quarter is not 1 to 4"))?;
                if !(1..=4).contains(&q) {
                    return Err(bad("the quarter is not 1 to 4"));
                }
                if calendar_named_fiscal {
                    return Err(self.fiscal_hint(label, &format!("FY{year}-Q{q}")));
                }
                let start = self.fiscal_year_start(year) + Months::new(3 * (q - 1));
                self.period_of(Grain::Quarter, start)
            }
            Some(t) if t.starts_with('W') && !fiscal => {
                let w: u32 = t[1..]
                    .parse()
                    .map_err(|_| bad("the week is not a number"))?;
                let start = NaiveDate::from_isoywd_opt(year, w, Weekday::Mon)
                    .ok_or_else(|| bad("no such ISO week in that year"))?;
                self.period_of(Grain::Week, start)
            }
            Some(t) if !fiscal && t.len() == 2 => {
                let m: u32 = t.parse().map_err(|_| bad("the month is not a number"))?;
                let start = NaiveDate::from_ymd_opt(year, m, 1)
                    .ok_or_else(|| bad("the month is not 01 to 12"))?;
                self.period_of(Grain::Month, start)
            }
            Some(_) => return Err(bad("unknown form")),
        };
        Ok(period)
    }

    fn fiscal_hint(&self, label: &str, suggestion: &str) -> Error {
        Error::config(format!(
            "`{label}` is a calendar label, but the pipeline's fiscal year starts in month {}: name fiscal periods like `{suggestion}`",
            self.fiscal_start_month
        ))
    }
}

/// Number of Monday–Friday days in `[start, end]`.
pub fn weekdays_between(start: NaiveDate, end: NaiveDate) -> i64 {
    start
        .iter_days()
        .take_while(|d| *d <= end)
        .filter(|d| d.weekday().num_days_from_monday() < 5)
        .count() as i64
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    // Callers pass month 1..=12 and day 1, which always exist.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

fn last_day(start: NaiveDate, months: u32) -> NaiveDate {
    start + Months::new(months) - Days::new(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn calendar_labels() {
        let c = Calendar::new(1).unwrap();
        assert_eq!(c.period_of(Grain::Month, d("2024-02-29")).label, "2024-02");
        let q = c.period_of(Grain::Quarter, d("2024-05-31"));
        assert_eq!(
            (q.label.as_str(), q.start, q.end),
            ("2024-Q2", d("2024-04-01"), d("2024-06-30"))
        );
        assert_eq!(c.period_of(Grain::Year, d("2024-12-31")).label, "2024");
        let w = c.period_of(Grain::Week, d("2024-02-29"));
        assert_eq!(
            (w.label.as_str(), w.start, w.end),
            ("2024-W09", d("2024-02-26"), d("2024-03-03"))
        );
    }

    #[test]
    fn iso_week_year_starts_in_december() {
        let c = Calendar::new(1).unwrap();
        let w = c.period_of(Grain::Week, d("2024-12-30"));
        assert_eq!((w.label.as_str(), w.start), ("2025-W01", d("2024-12-30")));
        assert_eq!(c.parse_label("2025-W01").unwrap().start, d("2024-12-30"));
    }

    #[test]
    fn fiscal_year_named_by_end_year() {
        // SPEC §3: start month 2, FY2025 = 2024-02-01 .. 2025-01-31; FY2025-Q1 = Feb–Apr 2024.
        let c = Calendar::new(2).unwrap();
        let y = c.period_of(Grain::Year, d("2024-03-15"));
        assert_eq!(
            (y.label.as_str(), y.start, y.end),
            ("FY2025", d("2024-02-01"), d("2025-01-31"))
        );
        assert_eq!(c.period_of(Grain::Year, d("2025-01-31")).label, "FY2025");
        assert_eq!(c.period_of(Grain::Year, d("2025-02-01")).label, "FY2026");
        let q = c.period_of(Grain::Quarter, d("2024-04-30"));
        assert_eq!(
            (q.label.as_str(), q.start, q.end),
            ("FY2025-Q1", d("2024-02-01"), d("2024-04-30"))
        );
        let q4 = c.period_of(Grain::Quarter, d("2025-01-15"));
        assert_eq!(
            (q4.label.as_str(), q4.start, q4.end),
            ("FY2025-Q4", d("2024-11-01"), d("2025-01-31"))
        );
        // Months and weeks are never fiscal.
        assert_eq!(c.period_of(Grain::Month, d("2024-02-10")).label, "2024-02");
    }

    #[test]
    fn fiscal_july_start() {
        let c = Calendar::new(7).unwrap();
        let q = c.period_of(Grain::Quarter, d("2023-07-01"));
        assert_eq!((q.label.as_str(), q.start), ("FY2024-Q1", d("2023-07-01")));
        assert_eq!(c.parse_label("FY2024-Q3").unwrap().start, d("2024-01-01"));
        assert_eq!(c.parse_label("FY2024").unwrap().end, d("2024-06-30"));
    }

    #[test]
    fn labels_round_trip() {
        for m in 1..=12 {
            let c = Calendar::new(m).unwrap();
            for g in Grain::ALL {
                for p in c.periods_between(g, d("2023-11-20"), d("2025-03-05")) {
                    assert_eq!(c.parse_label(&p.label).unwrap(), p, "start month {m}");
                }
            }
        }
    }

    #[test]
    fn periods_tile_without_gaps() {
        let c = Calendar::new(4).unwrap();
        for g in Grain::ALL {
            let ps = c.periods_between(g, d("2022-01-01"), d("2025-12-31"));
            for w in ps.windows(2) {
                assert_eq!(w[0].end + Days::new(1), w[1].start);
            }
        }
    }

    #[test]
    fn bad_labels_say_why() {
        let c = Calendar::new(2).unwrap();
        let e = c.parse_label("2024-Q1").unwrap_err().to_string();
        assert!(e.contains("FY2024-Q1"), "{e}");
        assert!(Calendar::new(1).unwrap().parse_label("2024-13").is_err());
        assert!(Calendar::new(1).unwrap().parse_label("24-01").is_err());
        assert!(Calendar::new(13).is_err());
    }

    #[test]
    fn weekdays() {
        assert_eq!(weekdays_between(d("2024-03-01"), d("2024-03-31")), 21);
    }
}
