"""Nightly sales-metrics run from Airflow (BashOperator).

`{{ ds }}` is the DAG run's logical date, passed as `--as-of`, so every run evaluates the data
as of its own day, and `airflow dags backfill` recomputes history day by day. The job replaces
only the partitions it computes and writes each one atomically, so retries and reruns are safe.

Exit codes and retries:
- 0: success; stdout holds one JSON line (run id, partitions, rows, manifest path).
- 1: runtime or storage failure (network, S3 throttling, disk full): a retry may fix it.
- 2: bad flags, pipeline file or input schema: a retry will not help; fix the configuration.
- 3: too many rejected input rows (see `<output>/_rejects/`): a retry will not help; fix the
  export or raise `max_reject_fraction`.
BashOperator retries every non-zero exit, so the retry count is kept small: a run that fails
with 2 or 3 publishes nothing and fails again within seconds, then the task alerts.
"""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="sales_metrics_nightly",
    start_date=datetime(2024, 1, 1),
    schedule="30 2 * * *",  # after the CRM export lands
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=15)},
    tags=["sales", "metrics"],
) as dag:
    BashOperator(
        task_id="sales_metrics",
        bash_command=(
            "/opt/sales-metrics/bin/sales-metrics run "
            "--pipeline /opt/sales-metrics/pipelines/sample.toml "
            "--as-of {{ ds }} --log-format json"
        ),
    )
