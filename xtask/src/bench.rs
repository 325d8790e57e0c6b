//! `cargo xtask bench`: criterion benches + numpy baseline + PyTorch VAR baseline →
//! `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::SystemTime;

use serde_json::Value;

use crate::machine::{self, CpuInfo};
use crate::report::{self, Report};
use crate::{XResult, cargo, criterion, run_echoed, var, workspace_root};

/// Variables that work around old OpenBLAS builds on this machine but slow down a current
/// numpy; removed from the baseline's environment only.
const OPENBLAS_WORKAROUNDS: [&str; 2] = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

/// Options of `cargo xtask bench`.
#[derive(Debug, Default)]
pub struct BenchArgs {
    /// Criterion filter (a regex), forwarded to the numpy script too.
    pub filter: Option<String>,
    /// Skip the numpy baseline.
    pub no_baseline: bool,
    /// Do not run `cargo bench`; report what `target/criterion` holds.
    pub report_only: bool,
}

impl BenchArgs {
    /// Parses the arguments after `bench`.
    pub fn parse(args: &[String]) -> XResult<Self> {
        let mut out = BenchArgs::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--filter" => {
                    out.filter = Some(it.next().ok_or("--filter needs a value")?.clone());
                }
                s if s.starts_with("--filter=") => out.filter = Some(s["--filter=".len()..].into()),
                "--no-run-baseline" | "--no-baseline" => out.no_baseline = true,
                "--report-only" => out.report_only = true,
                other => return Err(format!("bench: unknown option `{other}`").into()),
            }
        }
        Ok(out)
    }
}

/// The numpy baseline's outcome.
#[derive(Debug)]
pub enum Baseline {
    /// Median seconds per id, the script's `_info`, and how it was run.
    Ran {
        /// id → median seconds.
        medians: BTreeMap<String, f64>,
        /// The `_info` object printed by the script.
        info: Value,
        /// The interpreter used.
        python: String,
        /// `VAR=value` for each workaround variable removed from its environment.
        removed_env: Vec<String>,
    },
    /// Not run, with the reason shown in the report.
    Skipped(String),
}

/// Runs the whole workflow.
pub fn run(args: &BenchArgs) -> XResult<()> {
    let root = workspace_root();
    let started = SystemTime::now();
    let load_before = load_average();
    if !args.report_only {
        run_criterion("core_ops", args.filter.as_deref(), &[])?;
    }
    // VAR-d16 generation: criterion (with the weights file shared with PyTorch), then the
    // official PyTorch code on the same weights and threads.
    let var_plan = var::plan(args.filter.as_deref(), args.report_only);
    if !args.report_only {
        run_criterion(
            var::BENCH_TARGET,
            args.filter.as_deref(),
            &var_plan.bench_env(),
        )?;
    }
    let var_torch = var::finish(&var_plan);

    let results = criterion::collect(&criterion_dir())?;
    if results.is_empty() {
        return Err(format!(
            "no criterion results under {} (run without --report-only?)",
            criterion_dir().display()
        )
        .into());
    }

    let baseline = if args.no_baseline {
        Baseline::Skipped("skipped (--no-run-baseline)".into())
    } else {
        run_baseline(args.filter.as_deref())
    };
    if let Baseline::Skipped(why) = &baseline {
        eprintln!("xtask bench: numpy baseline not included: {why}");
    }

    let cpu = CpuInfo::read();
    let peak = machine::peak(&cpu);
    let command = std::iter::once("cargo xtask".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let out_path = root.join("docs").join("benchmarks.md");
    let previous = std::fs::read_to_string(&out_path).ok();
    let report = Report {
        cpu: &cpu,
        peak: &peak,
        results: &results,
        baseline: &baseline,
        var_torch: &var_torch,
        command,
        run_started: (!args.report_only).then_some(started),
        load: (!args.report_only).then(|| (load_before, load_average())),
        rustc: tool_version("rustc"),
        git: git_describe(),
    };
    let text = report::render(&report, previous.as_deref());
    std::fs::create_dir_all(out_path.parent().ok_or("docs path has no parent")?)?;
    std::fs::write(&out_path, text)?;
    eprintln!("xtask bench: wrote {}", out_path.display());
    Ok(())
}

/// `cargo bench -p arvis-benches --bench <target> [-- <filter>]` with extra environment.
fn run_criterion(target: &str, filter: Option<&str>, env: &[(String, String)]) -> XResult<()> {
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "arvis-benches", "--bench", target]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    run_echoed(&mut cmd)
}

/// `$CARGO_TARGET_DIR/criterion`, or `<workspace>/target/criterion`.
fn criterion_dir() -> PathBuf {
    target_dir().join("criterion")
}

/// `$CARGO_TARGET_DIR` (relative to the workspace), or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Runs `xtask/py/bench_numpy.py` with `$ARVIS_PYTHON` (default `python3`).
fn run_baseline(filter: Option<&str>) -> Baseline {
    match try_baseline(filter) {
        Ok(b) => b,
        Err(e) => Baseline::Skipped(e.to_string()),
    }
}

fn try_baseline(filter: Option<&str>) -> XResult<Baseline> {
    let python = std::env::var("ARVIS_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Ok(Baseline::Skipped(format!(
            "`{python}` cannot import numpy; set ARVIS_PYTHON to an interpreter that can \
             (e.g. ARVIS_PYTHON=/work/venv/bin/python)"
        )));
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let script = workspace_root()
        .join("xtask")
        .join("py")
        .join("bench_numpy.py");
    let mut cmd = Command::new(&python);
    cmd.arg(&script).args(["--threads", &threads.to_string()]);
    if let Some(f) = filter {
        cmd.args(["--filter", f]);
    }
    let mut removed_env = Vec::new();
    for var in OPENBLAS_WORKAROUNDS {
        if let Ok(val) = std::env::var(var) {
            removed_env.push(format!("{var}={val}"));
        }
        cmd.env_remove(var);
    }
    eprintln!(
        "\n==> {python} {} --threads {threads}{} (without {})",
        script.display(),
        filter.map(|f| format!(" --filter {f}")).unwrap_or_default(),
        OPENBLAS_WORKAROUNDS.join(", ")
    );
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("bench_numpy.py failed ({})", out.status).into());
    }
    let json: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bench_numpy.py printed invalid JSON: {e}"))?;
    let obj = json
        .as_object()
        .ok_or("bench_numpy.py: expected a JSON object")?;
    let medians = obj
        .iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .filter_map(|(k, v)| Some((k.clone(), v.get("median_s")?.as_f64()?)))
        .collect();
    let info = obj.get("_info").cloned().unwrap_or(Value::Null);
    Ok(Baseline::Ran {
        medians,
        info,
        python,
        removed_env,
    })
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// First line of `<tool> -V`.
fn tool_version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("-V").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.lines().next().map(str::to_owned)
}

/// `git describe --always --dirty`, if this is a repository with a commit.
fn git_describe() -> Option<String> {
    let out = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(workspace_root())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_owned())
}
