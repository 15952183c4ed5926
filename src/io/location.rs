//! `Location`: where an input is read from or the output tree lives, and the one place that
//! writes files there.
//!
//! Publishing is atomic per object: a partition is written to a hidden temporary name in its
//! own directory (leading `.`, which Hive readers skip) and renamed over the old file, so a
//! reader sees the old file or the new one, never a part.

use std::path::{Path, PathBuf};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An absolute local path (may contain a glob for inputs).
    Local(PathBuf),
}

impl Location {
    /// Parses a URI from the pipeline file or a flag; relative paths resolve against `base`.
    pub fn parse(uri: &str, base: &Path) -> Result<Location, Error> {
        if let Some((scheme, _)) = uri.split_once("://") {
            return match scheme {
                "file" => Ok(Location::Local(PathBuf::from(&uri["file://".len()..]))),
                _ => Err(Error::config(format!(
                    "`{uri}`: {scheme}:// locations are not supported by this build; use a local path"
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
        }
    }

    /// A child location (`rel` uses `/` separators).
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(rel)),
        }
    }

    /// Concrete files an input location stands for (a glob expanded, sorted for a stable order).
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
        }
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
