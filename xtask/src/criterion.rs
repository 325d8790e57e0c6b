//! Reads criterion's saved results: `target/criterion/**/new/{benchmark,estimates}.json`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::XResult;

/// What one iteration of a benchmark processes (criterion's `Throughput`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Throughput {
    /// FLOPs per iteration (the benches use criterion's "elements" for FLOPs).
    Flops(u64),
    /// Bytes read + written per iteration.
    Bytes(u64),
}

/// One benchmark's saved result.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Full id, `<crate>/<op>/<device>/<shape>`.
    pub id: String,
    /// Criterion group, `<crate>/<op>`.
    pub group: String,
    /// Median time per iteration, seconds (criterion's median point estimate).
    pub median_s: f64,
    /// Median absolute deviation, seconds: a noise indicator.
    pub mad_s: f64,
    /// Throughput per iteration, if the bench declared one.
    pub throughput: Option<Throughput>,
    /// When `benchmark.json` was written.
    pub modified: Option<SystemTime>,
}

/// Every `new/` result under `criterion_dir`, sorted by id. A missing directory is an empty
/// list.
pub fn collect(criterion_dir: &Path) -> XResult<Vec<BenchResult>> {
    let mut dirs = Vec::new();
    find_new_dirs(criterion_dir, &mut dirs)?;
    let mut out = Vec::new();
    for dir in dirs {
        out.push(read_one(&dir).map_err(|e| format!("{}: {e}", dir.display()))?);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Recursively finds directories named `new` holding a `benchmark.json`.
fn find_new_dirs(dir: &Path, out: &mut Vec<PathBuf>) -> XResult<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display()).into()),
    };
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        if entry.file_name() == "new" {
            if path.join("benchmark.json").is_file() {
                out.push(path);
            }
        } else if entry.file_name() != "report" {
            find_new_dirs(&path, out)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> XResult<Value> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Parses one `new/` directory.
fn read_one(dir: &Path) -> XResult<BenchResult> {
    let bench_path = dir.join("benchmark.json");
    let bench = read_json(&bench_path)?;
    let est = read_json(&dir.join("estimates.json"))?;

    let str_field = |k: &str| bench.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = str_field("full_id").ok_or("benchmark.json has no `full_id`")?;
    let group = str_field("group_id").ok_or("benchmark.json has no `group_id`")?;
    let point = |k: &str| {
        est.get(k)
            .and_then(|v| v.get("point_estimate"))
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("estimates.json has no `{k}.point_estimate`"))
    };
    let median_ns = point("median")?;
    let mad_ns = point("median_abs_dev").unwrap_or(0.0);
    let throughput = bench.get("throughput").and_then(parse_throughput);
    let modified = fs::metadata(&bench_path).and_then(|m| m.modified()).ok();
    Ok(BenchResult {
        id,
        group,
        median_s: median_ns * 1e-9,
        mad_s: mad_ns * 1e-9,
        throughput,
        modified,
    })
}

/// Criterion serialises `Throughput` as an externally tagged enum: `{"Elements": n}`,
/// `{"Bytes": n}`, `{"BytesDecimal": n}`, `{"ElementsAndBytes": {"elements": e, "bytes": b}}`.
fn parse_throughput(v: &Value) -> Option<Throughput> {
    let obj = v.as_object()?;
    let (kind, val) = obj.iter().next()?;
    match kind.as_str() {
        "Elements" => val.as_u64().map(Throughput::Flops),
        "Bytes" | "BytesDecimal" => val.as_u64().map(Throughput::Bytes),
        "ElementsAndBytes" => val.get("elements")?.as_u64().map(Throughput::Flops),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) -> XResult<()> {
        fs::create_dir_all(path.parent().ok_or("no parent")?)?;
        fs::write(path, text)?;
        Ok(())
    }

    #[test]
    fn parses_a_fake_criterion_dir() -> XResult<()> {
        let root = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let bench = root.join("arvis-core_matmul/cpu/256x256x256");
        write(
            &bench.join("new/benchmark.json"),
            r#"{"group_id":"arvis-core/matmul","function_id":"cpu","value_str":"256x256x256",
                "throughput":{"Elements":33554432},"full_id":"arvis-core/matmul/cpu/256x256x256",
                "directory_name":"arvis-core_matmul/cpu/256x256x256","title":"x"}"#,
        )?;
        write(
            &bench.join("new/estimates.json"),
            r#"{"median":{"point_estimate":250000.0},"median_abs_dev":{"point_estimate":5000.0}}"#,
        )?;
        // `base/` copies and `report/` folders must be ignored.
        write(&bench.join("base/benchmark.json"), "{}")?;
        write(&root.join("report/index.html"), "")?;
        let got = collect(&root)?;
        fs::remove_dir_all(&root)?;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "arvis-core/matmul/cpu/256x256x256");
        assert_eq!(got[0].group, "arvis-core/matmul");
        assert!((got[0].median_s - 250e-6).abs() < 1e-12);
        assert_eq!(got[0].throughput, Some(Throughput::Flops(33554432)));
        Ok(())
    }

    #[test]
    fn throughput_kinds() {
        let j = |s: &str| serde_json::from_str::<Value>(s).ok();
        assert_eq!(
            j(r#"{"Bytes":8}"#).as_ref().and_then(parse_throughput),
            Some(Throughput::Bytes(8))
        );
        assert_eq!(j(r#"{"Bits":8}"#).as_ref().and_then(parse_throughput), None);
    }
}
