//! `Location`: where an input is read from or the output tree lives, and the one place that
//! writes objects there. Local paths and `s3://bucket/key` behave the same above this module.
//!
//! Publishing is atomic per object. Locally, a file is written to a hidden temporary name in
//! its own directory (leading `.`, which Hive readers skip) and renamed over the old one; on
//! S3 an object is one PUT or one completed multipart upload. Either way a reader sees the old
//! object or the new one, never a part.

use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
pub mod s3;

use s3::S3Settings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute local path (may contain a glob for inputs).
    Local(PathBuf),
    /// A key or prefix in a bucket (may contain a glob for inputs), with the settings to reach it.
    S3 {
        bucket: String,
        key: String,
        settings: Arc<S3Settings>,
    },
}

impl Location {
    /// Parses a URI from the pipeline file or a flag; relative paths resolve against `base`.
    pub fn parse(uri: &str, base: &Path, s3: &Arc<S3Settings>) -> Result<Location, Error> {
        if let Some((scheme, rest)) = uri.split_once("://") {
            return match scheme {
                "file" => Ok(Location::Local(PathBuf::from(rest))),
                "s3" | "s3a" => {
                    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        return Err(Error::config(format!("`{uri}` has no bucket name")));
                    }
                    Ok(Location::S3 {
                        bucket: bucket.to_string(),
                        key: key.trim_end_matches('/').to_string(),
                        settings: s3.clone(),
                    })
                }
                _ => Err(Error::config(format!(
                    "`{uri}`: {scheme}:// locations are not supported; use a local path or s3://bucket/key"
                ))),
            };
        }
        let p = Path::new(uri);
        Ok(Location::Local(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }))
    }

    /// The location as users write it.
    pub fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }

    /// A child location (`rel` uses `/` separators).
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(rel)),
            Location::S3 {
                bucket,
                key,
                settings,
            } => Location::S3 {
                bucket: bucket.clone(),
                key: child_key(key, rel),
                settings: settings.clone(),
            },
        }
    }

    /// Settings for polars' scans of this location (S3 only).
    pub fn cloud_options(&self) -> Result<Option<polars::io::cloud::CloudOptions>, Error> {
        match self {
            Location::Local(_) => Ok(None),
            Location::S3 { settings, .. } => settings.cloud_options().map(Some),
        }
    }

    /// Concrete files an input location stands for (a glob expanded, sorted for a stable
    /// order), as URIs.
    pub fn expand(&self) -> Result<Vec<String>, Error> {
        match self {
            Location::Local(p) => {
                let s = p.to_string_lossy();
                if s.contains(['*', '?', '[']) {
                    let paths = glob::glob(&s)
                        .map_err(|e| Error::config(format!("`{s}` is not a valid glob: {e}")))?;
                    let mut out: Vec<String> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .map(|p| p.to_string_lossy().into_owned())
                        .collect();
                    out.sort();
                    Ok(out)
                } else if p.is_file() {
                    Ok(vec![s.into_owned()])
                } else {
                    Ok(vec![])
                }
            }
            Location::S3 {
                bucket,
                key,
                settings,
            } => {
                let glob_at = key.find(['*', '?', '[']);
                // List below the last `/` before the first glob character (or the key's folder).
                let prefix_end = key[..glob_at.unwrap_or(key.len())]
                    .rfind('/')
                    .map_or(0, |i| i + 1);
                let listed = s3::list(settings, bucket, &key[..prefix_end])?;
                let matches: Vec<String> = match glob_at {
                    Some(_) => {
                        let pattern = glob::Pattern::new(key).map_err(|e| {
                            Error::config(format!("`s3://{bucket}/{key}` is not a valid glob: {e}"))
                        })?;
                        listed.into_iter().filter(|k| pattern.matches(k)).collect()
                    }
                    None => listed.into_iter().filter(|k| k == key).collect(),
                };
                Ok(matches
                    .into_iter()
                    .map(|k| format!("s3://{bucket}/{k}"))
                    .collect())
            }
        }
    }

    /// The first `n` bytes of one file that [`Location::expand`] returned.
    pub fn head(&self, file: &str, n: u64) -> Result<Vec<u8>, Error> {
        match self {
            Location::Local(_) => {
                use std::io::Read;
                let mut head = Vec::new();
                fs_err::File::open(file)
                    .and_then(|f| f.take(n).read_to_end(&mut head))
                    .map_err(storage)?;
                Ok(head)
            }
            Location::S3 {
                bucket, settings, ..
            } => {
                let key = file
                    .strip_prefix(&format!("s3://{bucket}/"))
                    .unwrap_or(file);
                s3::head(settings, bucket, key, n)
            }
        }
    }

    /// Fails early when an output location cannot be written to: for S3, one listing of the
    /// prefix answers "does the bucket exist, do the credentials work" before any work is done.
    pub fn preflight(&self) -> Result<(), Error> {
        match self {
            Location::Local(_) => Ok(()),
            Location::S3 {
                bucket,
                key,
                settings,
            } => s3::list(settings, bucket, &format!("{key}/_runs/")).map(|_| ()),
        }
    }

    /// Writes files (`rel`, `bytes`) below this location, each as [`Location::put_atomic`]
    /// does, several at once: local files on rayon's threads (each is a create, write, rename
    /// and directory read), S3 objects through one client ([`s3::put_all`]). Stops at the
    /// first failure.
    pub fn put_all_atomic(&self, files: &[(String, &[u8])], run_id: &str) -> Result<(), Error> {
        match self {
            Location::Local(_) => files
                .par_iter()
                .try_for_each(|(rel, bytes)| self.put_atomic(rel, bytes, run_id)),
            Location::S3 {
                bucket,
                key,
                settings,
            } => {
                let objects: Vec<(String, &[u8])> = files
                    .iter()
                    .map(|(rel, bytes)| (child_key(key, rel), *bytes))
                    .collect();
                s3::put_all(settings, bucket, &objects)
            }
        }
    }

    /// Writes `bytes` to `rel` below this location, atomically replacing any old object.
    pub fn put_atomic(&self, rel: &str, bytes: &[u8], run_id: &str) -> Result<(), Error> {
        match self {
            Location::Local(root) => {
                let target = root.join(rel);
                let dir = target.parent().unwrap_or(root);
                fs_err::create_dir_all(dir).map_err(storage)?;
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = dir.join(format!(".{name}.{run_id}.tmp"));
                fs_err::write(&tmp, bytes).map_err(storage)?;
                // rename(2) within one directory replaces the old file atomically.
                fs_err::rename(&tmp, &target).map_err(storage)?;
                remove_stale_temps(dir, &name);
                Ok(())
            }
            Location::S3 {
                bucket,
                key,
                settings,
            } => s3::put(settings, bucket, &child_key(key, rel), bytes),
        }
    }
}

/// The object key of `rel` below the key prefix `key` ("" for a bucket's root).
fn child_key(key: &str, rel: &str) -> String {
    if key.is_empty() {
        rel.to_string()
    } else {
        format!("{key}/{rel}")
    }
}

fn storage(e: std::io::Error) -> Error {
    Error::Storage(e.to_string())
}

/// Removes `.<name>.<run>.tmp` files left in `dir` by runs that were killed mid-write. Hive
/// readers skip them anyway (leading `.`); this keeps the tree clean. Best effort.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            let _ = fs_err::remove_file(entry.path());
        }
    }
}
