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
