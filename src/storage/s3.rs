//! S3 (and S3-compatible stores): settings, and the object operations the job needs —
//! list (for globs), read a prefix of an object (encoding sniffing), and put.
//!
//! Reading whole inputs is polars' job (lazy scans straight from S3 with pushdown); this module
//! hands it the same settings as [`S3Settings::cloud_options`]. Writing uses `object_store`: a
//! single PUT, or a multipart upload completed in one call for objects over
//! [`MULTIPART_THRESHOLD`], so readers see the old object or the new one, never a part.
//! Transient failures (timeouts, 5xx, throttling) are retried with backoff by `object_store`;
//! permanent ones (403, missing bucket) fail at once with the bucket, key and likely cause.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use crate::error::Error;

/// Objects larger than this are uploaded in parts (5 MiB each).
pub const MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Where and how to reach S3, resolved from the pipeline's `[storage]`, then the environment
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...), then the shared profile files.
/// Without keys, `object_store` uses the container or instance role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: bool,
}

impl S3Settings {
    /// `pipeline_endpoint`/`pipeline_region` come from `[storage]`; `env` is the process
    /// environment (passed in: only `main` reads it).
    pub fn resolve(
        pipeline_endpoint: Option<&str>,
        pipeline_region: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> S3Settings {
        let profile = SharedProfile::load(env);
        let first = |keys: &[&str]| keys.iter().find_map(|k| env(k).filter(|v| !v.is_empty()));
        let endpoint = first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"])
            .or_else(|| pipeline_endpoint.map(str::to_string));
        let region = first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
            .or_else(|| pipeline_region.map(str::to_string))
            .or_else(|| profile.region.clone());
        let (access_key_id, secret_access_key, session_token) = match first(&["AWS_ACCESS_KEY_ID"])
        {
            Some(key) => (
                Some(key),
                first(&["AWS_SECRET_ACCESS_KEY"]),
                first(&["AWS_SESSION_TOKEN"]),
            ),
            None => (
                profile.access_key_id,
                profile.secret_access_key,
                profile.session_token,
            ),
        };
        let allow_http = first(&["AWS_ALLOW_HTTP"]).is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
        S3Settings {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token,
            allow_http,
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(
            "aws_region",
            self.region.clone().unwrap_or_else(|| "us-east-1".into()),
        )];
        let opt = [
            ("aws_endpoint_url", &self.endpoint),
            ("aws_access_key_id", &self.access_key_id),
            ("aws_secret_access_key", &self.secret_access_key),
            ("aws_session_token", &self.session_token),
        ];
        out.extend(
            opt.into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k, v))),
        );
        if self.allow_http {
            out.push(("aws_allow_http", "true".into()));
        }
        out
    }

    /// The same settings for polars' scans.
    pub fn cloud_options(&self) -> Result<polars::io::cloud::CloudOptions, Error> {
        polars::io::cloud::CloudOptions::from_untyped_config(
            Some(polars::prelude::CloudScheme::S3),
            self.pairs(),
        )
        .map_err(|e| Error::config(format!("S3 settings: {e}")))
    }

    fn store(&self, bucket: &str) -> Result<AmazonS3, Error> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
            });
        for (k, v) in self.pairs() {
            let key = k
                .parse()
                .map_err(|e| Error::config(format!("S3 setting `{k}`: {e}")))?;
            b = b.with_config(key, v);
        }
        b.build()
            .map_err(|e| Error::config(format!("S3 settings for bucket `{bucket}`: {e}")))
    }
}

/// Keys from `~/.aws/credentials` and `~/.aws/config` for `AWS_PROFILE` (default `default`).
#[derive(Default)]
struct SharedProfile {
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
}

impl SharedProfile {
    fn load(env: &dyn Fn(&str) -> Option<String>) -> SharedProfile {
        let Some(home) = env("HOME") else {
            return SharedProfile::default();
        };
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let file =
            |var: &str, name: &str| env(var).unwrap_or_else(|| format!("{home}/.aws/{name}"));
        let read = |path: String, section: &str| -> Option<ini::Properties> {
            let conf = ini::Ini::load_from_file(path).ok()?;
            conf.section(Some(section)).cloned()
        };
        let creds = read(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), &profile);
        let config_section = if profile == "default" {
            profile.clone()
        } else {
            format!("profile {profile}")
        };
        let config = read(file("AWS_CONFIG_FILE", "config"), &config_section);
        let get = |p: &Option<ini::Properties>, k: &str| {
            p.as_ref().and_then(|p| p.get(k)).map(str::to_string)
        };
        SharedProfile {
            region: get(&config, "region"),
            access_key_id: get(&creds, "aws_access_key_id"),
            secret_access_key: get(&creds, "aws_secret_access_key"),
            session_token: get(&creds, "aws_session_token"),
        }
    }
}

/// Runs one async storage call to completion on a small runtime of our own (polars keeps its
/// own; nothing else in the job is async).
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Storage(format!("cannot start the I/O runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// A storage error with the bucket, key and the likely cause named (exit 1).
fn storage_error(bucket: &str, key: &str, e: object_store::Error) -> Error {
    let full = e.to_string();
    // Keep the client's sentence, drop the XML body the server sent with it.
    let msg = full
        .split('<')
        .next()
        .unwrap_or(&full)
        .trim_end_matches([' ', ':', '\n'])
        .to_string();
    let cause = if full.contains("NoSuchBucket") || full.contains("bucket does not exist") {
        format!("bucket `{bucket}` does not exist (check the name, the region and the endpoint)")
    } else if full.contains("AccessDenied")
        || full.contains("InvalidAccessKeyId")
        || full.contains("SignatureDoesNotMatch")
        || full.contains("403")
    {
        "access denied: check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) and the region".to_string()
    } else if full.contains("error sending request")
        || full.contains("Connect")
        || full.contains("timed out")
    {
        "the endpoint did not answer: check AWS_ENDPOINT_URL / [storage] endpoint and the network"
            .to_string()
    } else {
        "see the error above".to_string()
    };
    Error::Storage(format!("s3://{bucket}/{key}: {cause} ({msg})"))
}

/// Keys below `prefix` (recursively), sorted.
pub fn list(settings: &S3Settings, bucket: &str, prefix: &str) -> Result<Vec<String>, Error> {
    let store = settings.store(bucket)?;
    let p = ObjectPath::from(prefix);
    block_on(async {
        let mut out = Vec::new();
        let mut stream = store.list(if prefix.is_empty() { None } else { Some(&p) });
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| storage_error(bucket, prefix, e))?;
            out.push(meta.location.to_string());
        }
        out.sort();
        Ok(out)
    })?
}

/// An object's size and ETag (a multipart upload's ETag ends in `-<parts>`).
pub fn stat(
    settings: &S3Settings,
    bucket: &str,
    key: &str,
) -> Result<(u64, Option<String>), Error> {
    let store = settings.store(bucket)?;
    let path = ObjectPath::from(key);
    block_on(async {
        let meta = store
            .head(&path)
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
        Ok((meta.size, meta.e_tag))
    })?
}

/// The first `n` bytes of an object (fewer if it is shorter).
pub fn head(settings: &S3Settings, bucket: &str, key: &str, n: u64) -> Result<Vec<u8>, Error> {
    let store = settings.store(bucket)?;
    let path = ObjectPath::from(key);
    block_on(async {
        let size = store
            .head(&path)
            .await
            .map_err(|e| storage_error(bucket, key, e))?
            .size;
        let bytes = store
            .get_range(&path, 0..size.min(n))
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
        Ok(bytes.to_vec())
    })?
}

/// How many objects [`put_all`] uploads at once. A run publishes one object per table, grain
/// and period (192 for two years of months and quarters), each small: one at a time, each
/// would wait for a round trip.
const PUT_CONCURRENCY: usize = 16;

/// Writes one object ([`put_all`]).
pub fn put(settings: &S3Settings, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Error> {
    put_all(settings, bucket, &[(key.to_string(), bytes)])
}

/// Writes objects (`key`, `bytes`) through one client, `PUT_CONCURRENCY` at a time: each a
/// single PUT, or a multipart upload for large objects. Either way each object appears whole,
/// or not at all. At the first failure the uploads still in flight are dropped and the error,
/// naming its key, is returned; objects already written stay (the run's manifest is then not
/// written as succeeded).
pub fn put_all(
    settings: &S3Settings,
    bucket: &str,
    objects: &[(String, &[u8])],
) -> Result<(), Error> {
    let store = settings.store(bucket)?;
    let store = &store;
    block_on(async {
        futures::stream::iter(
            objects
                .iter()
                .map(|(key, bytes)| put_one(store, bucket, key, bytes)),
        )
        .buffer_unordered(PUT_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
    })?
}

async fn put_one(store: &AmazonS3, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = ObjectPath::from(key);
    if bytes.len() <= MULTIPART_THRESHOLD {
        store
            .put(&path, PutPayload::from(bytes.to_vec()))
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
    } else {
        let upload = store
            .put_multipart(&path)
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.write(bytes);
        writer
            .finish()
            .await
            .map_err(|e| storage_error(bucket, key, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn environment_overrides_the_pipeline_and_http_endpoints_allow_http() {
        let env = env_of(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]);
        let s = S3Settings::resolve(Some("https://minio.example"), Some("eu-west-1"), &env);
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            s.region.as_deref(),
            Some("eu-west-1"),
            "pipeline region kept when the env has none"
        );
        assert!(s.allow_http);
        assert_eq!(
            (s.access_key_id.as_deref(), s.secret_access_key.as_deref()),
            (Some("k"), Some("s"))
        );
    }

    #[test]
    fn shared_profile_supplies_keys_and_region() {
        let dir = tempfile::tempdir().unwrap();
        let aws = dir.path().join(".aws");
        fs_err::create_dir_all(&aws).unwrap();
        fs_err::write(aws.join("credentials"), "[default]\naws_access_key_id = D\naws_secret_access_key = DS\n[etl]\naws_access_key_id = E\naws_secret_access_key = ES\n").unwrap();
        fs_err::write(
            aws.join("config"),
            "[default]\nregion = us-west-2\n[profile etl]\nregion = eu-central-1\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        let env = |k: &str| match k {
            "HOME" => Some(home.clone()),
            "AWS_PROFILE" => Some("etl".to_string()),
            _ => None,
        };
        let s = S3Settings::resolve(None, None, &env);
        assert_eq!(
            (s.access_key_id.as_deref(), s.region.as_deref()),
            (Some("E"), Some("eu-central-1"))
        );
        assert!(!s.allow_http);
    }
}
