//! Column names (canonical inputs and outputs) and the canonical input schemas of SPEC §2.
//!
//! Every name the code uses lives here, so a rename is one edit and a typo is a compile error.

use std::fmt;

// Shared keys.
pub const REP_ID: &str = "rep_id";
pub const REP_NAME: &str = "rep_name";
pub const TEAM_ID: &str = "team_id";
pub const TEAM_NAME: &str = "team_name";
pub const ROLE: &str = "role";
pub const LEVEL: &str = "level";
pub const PERIOD: &str = "period";
pub const PERIOD_IDX: &str = "period_idx";
pub const PERIOD_START: &str = "period_start";
pub const PERIOD_END: &str = "period_end";
pub const IS_PARTIAL_PERIOD: &str = "is_partial_period";
pub const DATE: &str = "date";
pub const SOURCE_ROW: &str = "source_row";
pub const REJECT_REASON: &str = "reject_reason";
/// Integer stand-ins for `rep_id` and `team_id` inside the tables stage
/// ([`crate::metrics::entities::Codes`]).
pub const REP_CODE: &str = "__rep_code";
pub const TEAM_CODE: &str = "__team_code";
/// A deal's row number among the deals as of T: the integer stand-in for `deal_id` in the
/// slippage inputs ([`crate::metrics::deal_slippage::expected_closes`]).
pub const DEAL_CODE: &str = "__deal_code";

// Input columns.
pub const VALID_FROM: &str = "valid_from";
pub const VALID_TO: &str = "valid_to";
pub const QUOTA_AMOUNT: &str = "quota_amount";
pub const DEAL_ID: &str = "deal_id";
pub const CREATED_AT: &str = "created_at";
pub const STATUS: &str = "status";
pub const CLOSED_AT: &str = "closed_at";
pub const EXPECTED_CLOSE_DATE: &str = "expected_close_date";
pub const AMOUNT: &str = "amount";
pub const LIST_AMOUNT: &str = "list_amount";

// Derived columns.
pub const CLOSED_DATE: &str = "closed_date";
pub const CREATED_DATE: &str = "created_date";

// quota_attainment outputs.
pub const BOOKINGS: &str = "bookings";
pub const QUOTA: &str = "quota";
pub const ATTAINMENT_PCT: &str = "attainment_pct";
pub const REPS_WITH_QUOTA: &str = "reps_with_quota";
pub const REPS_AT_OR_ABOVE_QUOTA: &str = "reps_at_or_above_quota";
pub const SHARE_REPS_AT_QUOTA_PCT: &str = "share_reps_at_quota_pct";

// deal_size outputs.
pub const WON_DEALS: &str = "won_deals";
pub const WON_AMOUNT: &str = "won_amount";
pub const AVG_DEAL_SIZE: &str = "avg_deal_size";
pub const MEDIAN_DEAL_SIZE: &str = "median_deal_size";
pub const NET_AMOUNT: &str = "net_amount";
pub const DISCOUNT_AMOUNT: &str = "discount_amount";
pub const AVG_DISCOUNT_PCT: &str = "avg_discount_pct";
pub const PREV_AVG_DEAL_SIZE: &str = "prev_avg_deal_size";
pub const AVG_DEAL_SIZE_CHANGE_PCT: &str = "avg_deal_size_change_pct";

/// The input tables of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Reps,
    Teams,
    TeamMemberships,
    Quotas,
    Deals,
    DealHistory,
    Leads,
    Activities,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Reps,
        Table::Teams,
        Table::TeamMemberships,
        Table::Quotas,
        Table::Deals,
        Table::DealHistory,
        Table::Leads,
        Table::Activities,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Reps => "reps",
            Table::Teams => "teams",
            Table::TeamMemberships => "team_memberships",
            Table::Quotas => "quotas",
            Table::Deals => "deals",
            Table::DealHistory => "deal_history",
            Table::Leads => "leads",
            Table::Activities => "activities",
        }
    }

    /// The canonical columns of this table, in SPEC order.
    pub fn columns(self) -> &'static [ColumnDef] {
        match self {
            Table::Reps => &REPS_COLUMNS,
            Table::Teams => &TEAMS_COLUMNS,
            Table::TeamMemberships => &TEAM_MEMBERSHIPS_COLUMNS,
            Table::Quotas => &QUOTAS_COLUMNS,
            Table::Deals => &DEALS_COLUMNS,
            Table::DealHistory => &DEAL_HISTORY_COLUMNS,
            Table::Leads => &LEADS_COLUMNS,
            Table::Activities => &ACTIVITIES_COLUMNS,
        }
    }

    /// The primary key, checked for nulls and duplicates.
    pub fn primary_key(self) -> Option<&'static str> {
        match self {
            Table::Reps => Some(REP_ID),
            Table::Teams => Some(TEAM_ID),
            Table::Deals => Some(DEAL_ID),
            Table::Leads => Some("lead_id"),
            Table::Activities => Some("activity_id"),
            Table::TeamMemberships | Table::Quotas | Table::DealHistory => None,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a canonical column holds, which decides how it is parsed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string that must not be null (`null_key` otherwise).
    Key,
    /// A free string.
    Text,
    /// A calendar date; a timestamp value (e.g. a `closed_at` with a time) becomes its date
    /// in the reporting time zone.
    Date,
    /// An instant: ISO 8601 with offset, or naive in `source_timezone`.
    Timestamp,
    /// A float that must be ≥ 0 (`negative_amount` otherwise).
    Amount,
}

/// Whether the source must have the column and whether values may be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Column must exist; a null value is a rejected row.
    Required,
    /// Column must exist; values may be null.
    Nullable,
    /// Column may be absent (then all null).
    Optional,
}

#[derive(Debug, Clone, Copy)]
pub struct ColumnDef {
    pub name: &'static str,
    pub kind: Kind,
    pub need: Need,
}

const fn c(name: &'static str, kind: Kind, need: Need) -> ColumnDef {
    ColumnDef { name, kind, need }
}

use Kind::{Amount, Date, Key, Text, Timestamp};
use Need::{Nullable, Optional, Required};

const REPS_COLUMNS: [ColumnDef; 4] = [
    c(REP_ID, Key, Required),
    c(REP_NAME, Text, Optional),
    c(TEAM_ID, Text, Optional),
    c(ROLE, Text, Optional),
];
const TEAMS_COLUMNS: [ColumnDef; 4] = [
    c(TEAM_ID, Key, Required),
    c(TEAM_NAME, Text, Optional),
    c("manager", Text, Optional),
    c("region", Text, Optional),
];
const TEAM_MEMBERSHIPS_COLUMNS: [ColumnDef; 4] = [
    c(REP_ID, Key, Required),
    c(TEAM_ID, Key, Required),
    c(VALID_FROM, Date, Required),
    c(VALID_TO, Date, Nullable),
];
const QUOTAS_COLUMNS: [ColumnDef; 4] = [
    c(REP_ID, Key, Required),
    c("period_start", Date, Required),
    c("period_end", Date, Required),
    c(QUOTA_AMOUNT, Amount, Required),
];
const DEALS_COLUMNS: [ColumnDef; 8] = [
    c(DEAL_ID, Key, Required),
    c(REP_ID, Key, Required),
    c(CREATED_AT, Timestamp, Required),
    c(STATUS, Text, Required),
    c(CLOSED_AT, Date, Nullable),
    c(EXPECTED_CLOSE_DATE, Date, Nullable),
    c(AMOUNT, Amount, Nullable),
    c(LIST_AMOUNT, Amount, Optional),
];
const DEAL_HISTORY_COLUMNS: [ColumnDef; 5] = [
    c(DEAL_ID, Key, Required),
    c("changed_at", Timestamp, Required),
    c("field", Text, Required),
    c("old_value", Text, Nullable),
    c("new_value", Text, Nullable),
];
const LEADS_COLUMNS: [ColumnDef; 4] = [
    c("lead_id", Key, Required),
    c(REP_ID, Text, Nullable),
    c(CREATED_AT, Timestamp, Required),
    c("source", Text, Optional),
];
const ACTIVITIES_COLUMNS: [ColumnDef; 8] = [
    c("activity_id", Key, Required),
    c(REP_ID, Key, Required),
    c("lead_id", Text, Nullable),
    c(DEAL_ID, Text, Nullable),
    c("activity_type", Text, Required),
    c("direction", Text, Required),
    c("started_at", Timestamp, Required),
    c("duration_minutes", Amount, Nullable),
];

// deal_slippage outputs.
pub const DEALS_EXPECTED: &str = "deals_expected";
pub const DEALS_DUE: &str = "deals_due";
pub const DEALS_CLOSED_ON_TIME: &str = "deals_closed_on_time";
pub const DEALS_WON_ON_TIME: &str = "deals_won_on_time";
pub const DEALS_LOST: &str = "deals_lost";
pub const DEALS_SLIPPED: &str = "deals_slipped";
pub const SLIPPED_AMOUNT: &str = "slipped_amount";
pub const SLIPPAGE_RATE_PCT: &str = "slippage_rate_pct";
pub const AVG_SLIP_DAYS: &str = "avg_slip_days";
pub const MEDIAN_SLIP_DAYS: &str = "median_slip_days";
pub const CLOSE_DATE_PUSHES: &str = "close_date_pushes";

// lead_response_time outputs.
pub const RESPONSE_KIND: &str = "response_kind";
pub const FIRST_TOUCH: &str = "first_touch";
pub const FOLLOW_UP: &str = "follow_up";
pub const REQUESTS: &str = "requests";
pub const RESPONDED: &str = "responded";
pub const UNRESPONDED: &str = "unresponded";
pub const MEAN_RESPONSE_MINUTES: &str = "mean_response_minutes";
pub const MEDIAN_RESPONSE_MINUTES: &str = "median_response_minutes";
pub const P90_RESPONSE_MINUTES: &str = "p90_response_minutes";

// selling_time outputs.
pub const SELLING_MINUTES: &str = "selling_minutes";
pub const NON_SELLING_MINUTES: &str = "non_selling_minutes";
pub const UNCLASSIFIED_MINUTES: &str = "unclassified_minutes";
pub const TOTAL_MINUTES: &str = "total_minutes";
pub const SELLING_TIME_PCT: &str = "selling_time_pct";
pub const CAPACITY_MINUTES: &str = "capacity_minutes";
pub const SELLING_PCT_OF_CAPACITY: &str = "selling_pct_of_capacity";

// rep_scorecard outputs.
pub const FIRST_TOUCH_REQUESTS: &str = "first_touch_requests";
pub const FIRST_TOUCH_RESPONDED: &str = "first_touch_responded";
pub const MEDIAN_FIRST_TOUCH_RESPONSE_MINUTES: &str = "median_first_touch_response_minutes";

// Other input columns.
pub const LEAD_ID: &str = "lead_id";
pub const ACTIVITY_ID: &str = "activity_id";
pub const ACTIVITY_TYPE: &str = "activity_type";
pub const DIRECTION: &str = "direction";
pub const STARTED_AT: &str = "started_at";
pub const DURATION_MINUTES: &str = "duration_minutes";
pub const CHANGED_AT: &str = "changed_at";
pub const FIELD: &str = "field";
pub const OLD_VALUE: &str = "old_value";
pub const NEW_VALUE: &str = "new_value";
