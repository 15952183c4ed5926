//! Shared helpers: a copy of the sample pipeline in a temp dir, running the binary,
//! reading outputs back.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use polars::prelude::*;

pub const AS_OF: &str = "2024-06-30";

/// The repository root (where `pipelines/` and `data/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample_pipeline() -> PathBuf {
    root().join("pipelines/sample.toml")
}

/// A temp dir with a copy of `data/sample/` and the sample pipeline pointing at it, so a test
/// can break an input without touching the repository.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data/sample");
        std::fs::create_dir_all(&data).unwrap();
        for entry in std::fs::read_dir(root().join("data/sample")).unwrap() {
            let p = entry.unwrap().path();
            std::fs::copy(&p, data.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        std::fs::copy(sample_pipeline(), dir.path().join("pipelines/sample.toml")).unwrap();
        Sandbox { dir }
    }

    pub fn pipeline(&self) -> PathBuf {
        self.dir.path().join("pipelines/sample.toml")
    }

    pub fn data(&self, file: &str) -> PathBuf {
        self.dir.path().join("data/sample").join(file)
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    /// Runs with `args`, expects success and returns the stdout JSON summary.
    pub fn summary(&self, args: &[&str]) -> serde_json::Value {
        let out = self
            .run(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).expect("one JSON line on stdout")
    }

    /// Rewrites a text file of the sandbox (the pipeline, or a data file).
    /// Runs with `--output <sandbox>/<name>`, expects success and returns that directory.
    pub fn run_into(&self, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        self.run(&["--output", out.to_str().expect("UTF-8 path")])
            .assert()
            .success();
        out
    }

    /// A sandbox data CSV's header line and data lines.
    pub fn csv_lines(&self, file: &str) -> (String, Vec<String>) {
        let text = std::fs::read_to_string(self.data(file)).expect("sandbox file");
        let mut lines = text.lines().map(str::to_string);
        let header = lines.next().expect("a header line");
        (header, lines.collect())
    }

    /// Writes a sandbox data CSV from a header line and data lines.
    pub fn write_csv(&self, file: &str, header: &str, lines: &[String]) {
        std::fs::write(self.data(file), format!("{header}\n{}\n", lines.join("\n")))
            .expect("sandbox file");
    }

    pub fn edit(&self, path: &Path, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(path).expect("sandbox file");
        std::fs::write(path, f(text)).expect("sandbox file");
    }

    /// `sales-metrics run --pipeline <sandbox> --as-of AS_OF` plus `args`.
    pub fn run(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.arg("run")
            .arg("--pipeline")
            .arg(self.pipeline())
            .args(["--as-of", AS_OF])
            .args(args);
        cmd
    }
}

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sales-metrics"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// One output partition as a DataFrame.
pub fn read_partition(output: &Path, table: &str, grain: &str, period: &str) -> DataFrame {
    let path = output.join(format!(
        "{table}/grain={grain}/period={period}/part-0.parquet"
    ));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(file).finish().expect("parquet")
}

/// Every file below `dir` (relative path -> bytes), for before/after comparisons.
pub fn snapshot(
    dir: &Path,
) -> std::collections::BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(
                    rel,
                    (
                        std::fs::read(&p).unwrap(),
                        std::fs::metadata(&p).unwrap().modified().unwrap(),
                    ),
                );
            }
        }
    }
    out
}

/// Value of `column` in the row where `level` (and `rep_id`/`team_id` when given) match.
pub fn value(df: &DataFrame, level: &str, id: Option<&str>, column: &str) -> AnyValue<'static> {
    let levels = df.column("level").unwrap().str().unwrap();
    let id_col = if level == "rep" { "rep_id" } else { "team_id" };
    let ids = df.column(id_col).unwrap().str().unwrap();
    for i in 0..df.height() {
        if levels.get(i) == Some(level) && (level == "company" || ids.get(i) == id) {
            return df.column(column).unwrap().get(i).unwrap().into_static();
        }
    }
    panic!("no {level} row {id:?}");
}

pub fn f64_of(df: &DataFrame, level: &str, id: Option<&str>, column: &str) -> Option<f64> {
    match value(df, level, id, column) {
        AnyValue::Float64(f) => Some(f),
        AnyValue::Null => None,
        v => panic!("{column} is {v:?}, not a float"),
    }
}
