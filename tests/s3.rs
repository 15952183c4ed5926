//! S3 end to end against a real S3-compatible server (moto) that the test starts on 127.0.0.1.
//!
//! Every call carries an explicit endpoint and test credentials, so nothing falls back to an
//! instance-metadata lookup. Without `moto_server` on the PATH the tests say SKIPPED and pass,
//! unless `SALES_METRICS_REQUIRE_S3` is set (`.ci/run` sets it, after `pip install 'moto[server]'`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::*;
use predicates::prelude::*;
use sales_metrics::storage::Location;
use sales_metrics::storage::s3::{self, S3Settings};

use crate::common::*;

/// A moto server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto; `None` (and a SKIPPED line) when it is not installed.
    fn start(test: &str, enforce_auth: bool) -> Option<Moto> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if enforce_auth {
            // moto then checks every request's access key: ours are unknown to it.
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if std::env::var_os("SALES_METRICS_REQUIRE_S3").is_some() => {
                panic!(
                    "{test}: moto_server is required here (SALES_METRICS_REQUIRE_S3) but did not start: {e}"
                )
            }
            Err(_) => {
                // Straight to the stderr handle: the test harness captures eprintln! of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED {test}: moto_server is not installed (pip install 'moto[server]')"
                );
                return None;
            }
        };
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn settings(&self) -> Arc<S3Settings> {
        Arc::new(S3Settings {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("testsecret".into()),
            session_token: None,
            allow_http: true,
        })
    }

    /// Creates a bucket (a path-style `PUT /bucket`; moto accepts it unsigned).
    fn create_bucket(&self, bucket: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    fn location(&self, uri: &str) -> Location {
        Location::parse(uri, std::path::Path::new("/"), &self.settings()).unwrap()
    }

    fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        s3::head(&self.settings(), bucket, key, u64::MAX).unwrap()
    }

    /// The binary with this server's endpoint and test credentials (and no metadata lookups).
    fn bin(&self) -> assert_cmd::Command {
        let mut cmd = bin();
        cmd.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "testsecret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
        cmd
    }
}

impl Moto {
    /// `run --as-of AS_OF --pipeline <pipeline>` plus `extra`, against this server.
    fn run(&self, pipeline: &std::path::Path, extra: &[&str]) -> assert_cmd::Command {
        let mut cmd = self.bin();
        cmd.args(["run", "--as-of", AS_OF, "--pipeline"])
            .arg(pipeline)
            .args(extra);
        cmd
    }

    /// [`Moto::run`], expecting success; the stdout summary.
    fn summary(&self, pipeline: &std::path::Path, extra: &[&str]) -> serde_json::Value {
        let out = self
            .run(pipeline, extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uploads the sandbox's data files to `s3://bucket/exports/` and writes a pipeline reading
/// them from there and publishing to `s3://bucket/metrics`.
fn s3_pipeline(moto: &Moto, sb: &Sandbox, bucket: &str) -> std::path::PathBuf {
    let exports = moto.location(&format!("s3://{bucket}/exports"));
    for entry in std::fs::read_dir(sb.dir.path().join("data/sample")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        exports
            .put_atomic(&name, &std::fs::read(&path).unwrap(), "test")
            .unwrap();
    }
    let text = std::fs::read_to_string(sb.pipeline())
        .unwrap()
        .replace("../data/sample/", &format!("s3://{bucket}/exports/"))
        .replace(
            "uri = \"../output\"",
            &format!("uri = \"s3://{bucket}/metrics\""),
        );
    let path = sb.dir.path().join("pipelines/s3.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn s3_inputs_and_output_match_a_local_run() {
    let Some(moto) = Moto::start("s3_inputs_and_output_match_a_local_run", false) else {
        return;
    };
    moto.create_bucket("crm");
    let sb = Sandbox::new();
    let pipeline = s3_pipeline(&moto, &sb, "crm");
    sb.run(&[]).assert().success();
    let summary = moto.summary(&pipeline, &[]);
    assert_eq!(summary["output"], "s3://crm/metrics");
    assert_eq!(summary["inputs"][4]["uri"], "s3://crm/exports/deals.csv");
    let parts = summary["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 48);
    // Every partition on S3 holds the same rows as the local run's file.
    for p in parts {
        let path = p["path"].as_str().unwrap();
        let key = path.strip_prefix("s3://crm/").unwrap();
        let remote = ParquetReader::new(std::io::Cursor::new(moto.get("crm", key)))
            .finish()
            .unwrap();
        let rel = key.strip_prefix("metrics/").unwrap();
        let local = ParquetReader::new(std::fs::File::open(sb.output().join(rel)).unwrap())
            .finish()
            .unwrap();
        assert!(remote.equals_missing(&local), "{rel}");
    }
    // The manifest is there too, written last.
    let manifest = summary["manifest"]
        .as_str()
        .unwrap()
        .strip_prefix("s3://crm/")
        .unwrap()
        .to_string();
    assert!(!moto.get("crm", &manifest).is_empty());
    // A glob over S3 keys works like a local one.
    let listed = moto.location("s3://crm/exports/dea*.csv").expand().unwrap();
    assert_eq!(
        listed,
        [
            "s3://crm/exports/deal_history.csv",
            "s3://crm/exports/deals.csv"
        ]
    );
}

#[test]
fn many_files_go_up_at_once_each_whole_and_a_failure_names_its_key() {
    let Some(moto) = Moto::start(
        "many_files_go_up_at_once_each_whole_and_a_failure_names_its_key",
        false,
    ) else {
        return;
    };
    moto.create_bucket("many");
    // 60 files (more than go up at once), each with its own bytes and length; one of 9 MB,
    // above the multipart threshold.
    let payloads: Vec<Vec<u8>> = (0..60u32)
        .map(|i| {
            let len = if i == 37 {
                9_000_000
            } else {
                1 + 997 * i as usize
            };
            (0..len as u32)
                .map(|j| (j.wrapping_add(i).wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect()
        })
        .collect();
    let files: Vec<(String, &[u8])> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("t/period={i:02}/part-0.parquet"), p.as_slice()))
        .collect();
    let root = moto.location("s3://many/out");
    root.put_all_atomic(&files, "test").unwrap();
    let listed = s3::list(&moto.settings(), "many", "out/").unwrap();
    assert_eq!(listed.len(), 60, "{listed:?}");
    for (rel, bytes) in &files {
        assert_eq!(moto.get("many", &format!("out/{rel}")), *bytes, "{rel}");
    }
    // Into a bucket that does not exist: an error naming the bucket and a key, nothing written.
    let err = moto
        .location("s3://gone/out")
        .put_all_atomic(&files, "test")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bucket `gone` does not exist"), "{err}");
    assert!(err.contains("s3://gone/out/t/period="), "{err}");
}

#[test]
fn objects_over_10_mb_go_up_in_parts_and_read_back_whole() {
    let Some(moto) = Moto::start(
        "objects_over_10_mb_go_up_in_parts_and_read_back_whole",
        false,
    ) else {
        return;
    };
    moto.create_bucket("big");
    // 12 MB of non-repeating bytes: above the multipart threshold, three 5 MiB parts.
    let payload: Vec<u8> = (0..12_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    moto.location("s3://big/blobs")
        .put_atomic("payload.bin", &payload, "test")
        .unwrap();
    let (size, etag) = s3::stat(&moto.settings(), "big", "blobs/payload.bin").unwrap();
    assert_eq!(size, 12_000_000);
    let etag = etag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "a multipart upload's ETag ends in -<parts>: {etag}"
    );
    assert_eq!(moto.get("big", "blobs/payload.bin"), payload);

    // And a job input over 10 MB is scanned straight from S3: 16 sample deals plus 200 000
    // open deals in one 12+ MB CSV.
    let sb = Sandbox::new();
    let mut deals = std::fs::read_to_string(sb.data("deals.csv")).unwrap();
    for i in 0..200_000 {
        deals.push_str(&format!(
            "X{i:07},R{},2024-02-01T10:00:00Z,Negotiation,,2024-09-30,{}.50,{}.00\n",
            1 + i % 5,
            1000 + i % 977,
            1200 + i % 977
        ));
    }
    assert!(deals.len() > 10_000_000, "{} bytes", deals.len());
    std::fs::write(sb.data("deals.csv"), deals).unwrap();
    let pipeline = s3_pipeline(&moto, &sb, "big");
    let (_, etag) = s3::stat(&moto.settings(), "big", "exports/deals.csv").unwrap();
    assert!(
        etag.unwrap_or_default().contains('-'),
        "the input went up in parts too"
    );
    let summary = moto.summary(&pipeline, &["--metrics", "deal_size"]);
    assert_eq!(summary["inputs"][4]["rows_read"], 200_016);
    assert_eq!(summary["inputs"][4]["rows_rejected"], 0);
}

#[test]
fn a_missing_bucket_exits_1_naming_it_and_writes_nothing() {
    let Some(moto) = Moto::start(
        "a_missing_bucket_exits_1_naming_it_and_writes_nothing",
        false,
    ) else {
        return;
    };
    moto.create_bucket("crm");
    let sb = Sandbox::new();
    let pipeline = s3_pipeline(&moto, &sb, "crm");
    let run = |extra: &[&str]| moto.run(&pipeline, extra);
    // Output bucket missing: found before any work is done.
    run(&["--output", "s3://no-such-bucket/metrics"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "bucket `no-such-bucket` does not exist",
        ));
    // Input bucket missing.
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("s3://crm/exports/deals.csv", "s3://gone/exports/deals.csv");
    std::fs::write(&pipeline, text).unwrap();
    run(&[])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bucket `gone` does not exist"));
    assert!(
        s3::list(&moto.settings(), "crm", "metrics/")
            .unwrap()
            .is_empty(),
        "nothing was published"
    );
}

#[test]
fn wrong_credentials_exit_1_with_the_likely_cause() {
    let Some(moto) = Moto::start("wrong_credentials_exit_1_with_the_likely_cause", true) else {
        return;
    };
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(sb.pipeline())
        .unwrap()
        .replace("uri = \"../output\"", "uri = \"s3://crm/metrics\"");
    std::fs::write(sb.pipeline(), text).unwrap();
    moto.run(&sb.pipeline(), &[])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("s3://crm/metrics"))
        .stderr(predicate::str::contains(
            "access denied: check the credentials",
        ));
}
