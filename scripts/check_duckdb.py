"""Reads every output table with DuckDB, as an analyst would, and checks the column types.

Usage: python3 scripts/check_duckdb.py OUTPUT_DIR
Exits non-zero if a table is missing, a type is wrong, or a table has no rows.
"""
import glob
import os
import sys

import duckdb

EXPECTED = {
    "quota_attainment": {
        "bookings": "DOUBLE", "quota": "DOUBLE", "attainment_pct": "DOUBLE",
        "reps_with_quota": "BIGINT", "reps_at_or_above_quota": "BIGINT",
        "share_reps_at_quota_pct": "DOUBLE",
    },
    "deal_size": {
        "won_deals": "BIGINT", "won_amount": "DOUBLE", "avg_deal_size": "DOUBLE",
        "median_deal_size": "DOUBLE", "list_amount": "DOUBLE", "net_amount": "DOUBLE",
        "discount_amount": "DOUBLE", "avg_discount_pct": "DOUBLE",
        "prev_avg_deal_size": "DOUBLE", "avg_deal_size_change_pct": "DOUBLE",
    },
    "deal_slippage": {
        "deals_expected": "BIGINT", "deals_due": "BIGINT", "deals_closed_on_time": "BIGINT",
        "deals_won_on_time": "BIGINT", "deals_lost": "BIGINT", "deals_slipped": "BIGINT",
        "slipped_amount": "DOUBLE", "slippage_rate_pct": "DOUBLE", "avg_slip_days": "DOUBLE",
        "median_slip_days": "DOUBLE", "close_date_pushes": "BIGINT",
    },
    "lead_response_time": {
        "response_kind": "VARCHAR", "requests": "BIGINT", "responded": "BIGINT",
        "unresponded": "BIGINT", "mean_response_minutes": "DOUBLE",
        "median_response_minutes": "DOUBLE", "p90_response_minutes": "DOUBLE",
        "within_sla_5m": "BIGINT", "within_sla_5m_pct": "DOUBLE",
        "within_sla_60m": "BIGINT", "within_sla_60m_pct": "DOUBLE",
        "within_sla_1440m": "BIGINT", "within_sla_1440m_pct": "DOUBLE",
    },
    "selling_time": {
        "selling_minutes": "DOUBLE", "non_selling_minutes": "DOUBLE",
        "unclassified_minutes": "DOUBLE", "total_minutes": "DOUBLE", "selling_time_pct": "DOUBLE",
        "capacity_minutes": "DOUBLE", "selling_pct_of_capacity": "DOUBLE",
    },
    "rep_scorecard": {
        "attainment_pct": "DOUBLE", "bookings": "DOUBLE", "quota": "DOUBLE",
        "slippage_rate_pct": "DOUBLE", "deals_slipped": "BIGINT", "deals_due": "BIGINT",
        "median_first_touch_response_minutes": "DOUBLE", "first_touch_requests": "BIGINT",
        "first_touch_responded": "BIGINT", "avg_deal_size": "DOUBLE", "won_amount": "DOUBLE",
        "won_deals": "BIGINT", "selling_time_pct": "DOUBLE", "selling_minutes": "DOUBLE",
        "non_selling_minutes": "DOUBLE",
    },
}
SHARED = {
    "level": "VARCHAR", "team_id": "VARCHAR", "team_name": "VARCHAR", "rep_id": "VARCHAR",
    "rep_name": "VARCHAR", "period_start": "DATE", "period_end": "DATE",
    "is_partial_period": "BOOLEAN", "grain": "VARCHAR", "period": "VARCHAR",
}


def main(out: str) -> int:
    con = duckdb.connect()
    failures = []
    for table, metric_cols in EXPECTED.items():
        files = glob.glob(os.path.join(out, table, "**", "*.parquet"), recursive=True)
        if not files:
            failures.append(f"{table}: no parquet files under {out}")
            continue
        src = f"read_parquet('{out}/{table}/**/*.parquet', hive_partitioning=true)"
        types = {name: typ for name, typ, *_ in con.sql(f"describe select * from {src}").fetchall()}
        for col, want in {**SHARED, **metric_cols}.items():
            if types.get(col) != want:
                failures.append(f"{table}.{col}: {types.get(col)} (want {want})")
        n = con.sql(f"select count(*) from {src}").fetchall()[0][0]
        if n == 0:
            failures.append(f"{table}: no rows")
        print(f"{table}: {n} rows, {len(types)} columns")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
