//! The VAR-d16 generation benches (`benches/benches/var_generate.rs`) and their PyTorch
//! baseline: the official FoundationVision/VAR code, timed by `xtask/py/bench_var_torch.py` on
//! the same weights file and thread count, in the same `cargo xtask bench` run.
//!
//! [`plan`] decides before `cargo bench` (and makes the shared weights file if needed),
//! [`Plan::bench_env`] gives the criterion run its environment, and [`finish`] runs the PyTorch
//! side afterwards, or falls back to its cached result (`target/bench-data/var_torch.json`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::{XResult, display_cmd, workspace_root};

/// Criterion id of the guided transformer loop (ten scales, KV cache, sampling) up to `f̂`.
pub const GENERATE_ID: &str = "arvis-models/var_generate/cpu/d16_b1_cfg";
/// Criterion id of the VQ-VAE decode of `f̂` to the 256×256 image.
pub const DECODE_ID: &str = "arvis-models/var_decode/cpu/d16_b1";
/// Prefix of the VAR benches' criterion groups (`…/var_generate`, `…/var_decode`).
pub const GROUP_PREFIX: &str = "arvis-models/var_";
/// Threads on both sides (`RAYON_NUM_THREADS`, `torch.set_num_threads`).
pub const THREADS: usize = 2;
/// Timed PyTorch generations (the median is reported).
pub const TORCH_RUNS: usize = 3;
/// Untimed PyTorch generations before them.
pub const TORCH_WARMUP: usize = 1;
/// The benched depth.
const DEPTH: usize = 16;
/// The criterion bench target.
pub const BENCH_TARGET: &str = "var_generate";
/// Environment variable naming the weights file both sides load.
pub const WEIGHTS_ENV: &str = "ARVIS_VAR_D16_WEIGHTS";
/// Environment variable naming the official checkout.
pub const REPO_ENV: &str = "ARVIS_VAR_REPO";

/// The PyTorch side's outcome.
#[derive(Debug)]
pub enum TorchBaseline {
    /// Timed by this command or read from the cache.
    Ran(TorchRun),
    /// Not available, with the reason shown in the report.
    Skipped(String),
}

/// One `bench_var_torch.py` result (medians over its timed runs).
#[derive(Debug, Clone)]
pub struct TorchRun {
    /// Everything before the VAE decode, seconds.
    pub transformer_s: f64,
    /// `fhat_to_img`, seconds.
    pub decode_s: f64,
    /// The whole `autoregressive_infer_cfg` call, seconds.
    pub total_s: f64,
    /// The script's JSON.
    pub info: Value,
    /// When it ran (seconds since the Unix epoch).
    pub unix_time: u64,
    /// The weights file it loaded.
    pub weights: Option<String>,
    /// `None`: timed by this command; `Some(why)`: read from the cache because of `why`.
    pub cached: Option<String>,
}

/// What to do for the PyTorch side, decided before `cargo bench`.
#[derive(Debug)]
enum Action {
    /// Run the script with this interpreter, checkout and weights file.
    Run {
        python: String,
        repo: String,
        weights: PathBuf,
    },
    /// Show the cached result (if any) because of the reason given.
    Cache(String),
    /// Show arvis only, for the reason given.
    Skip(String),
}

/// The VAR part of one `cargo xtask bench`.
#[derive(Debug)]
pub struct Plan {
    action: Action,
}

impl Plan {
    /// The environment of the criterion `var_generate` run: the thread count, and the weights
    /// file when the PyTorch side times the same weights.
    pub fn bench_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("RAYON_NUM_THREADS".to_owned(), THREADS.to_string())];
        if let Action::Run { weights, .. } = &self.action {
            env.push((WEIGHTS_ENV.to_owned(), weights.display().to_string()));
        }
        env
    }
}

/// Decides what the PyTorch side does; creates the shared weights file when it will run and
/// the file is missing. Never fails: problems become a skipped baseline.
pub fn plan(filter: Option<&str>, report_only: bool) -> Plan {
    let action = if report_only {
        Action::Cache("--report-only".into())
    } else {
        match decide(filter) {
            Ok(a) => a,
            Err(e) => Action::Skip(e.to_string()),
        }
    };
    match &action {
        Action::Skip(why) => eprintln!("xtask bench: PyTorch VAR baseline not included: {why}"),
        Action::Cache(why) if !report_only => {
            eprintln!("xtask bench: PyTorch VAR baseline not re-run ({why}): using its cache")
        }
        _ => {}
    }
    Plan { action }
}

fn decide(filter: Option<&str>) -> XResult<Action> {
    let Some(repo) = std::env::var(REPO_ENV).ok().filter(|r| !r.is_empty()) else {
        return Ok(Action::Skip(format!(
            "{REPO_ENV} is not set (the path of a FoundationVision/VAR checkout, e.g. \
             {REPO_ENV}=/work/var-ref): arvis numbers only"
        )));
    };
    let python = std::env::var("ARVIS_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Ok(Action::Skip(format!(
            "`{python}` cannot import torch and safetensors; set ARVIS_PYTHON to an \
             interpreter that can (e.g. ARVIS_PYTHON=/work/venv/bin/python)"
        )));
    }
    if let Some(f) = filter
        && !selected(&python, f)
    {
        return Ok(Action::Cache(format!(
            "--filter {f} matches neither VAR bench"
        )));
    }
    let weights = ensure_weights(&python, &repo)?;
    Ok(Action::Run {
        python,
        repo,
        weights,
    })
}

/// Whether the criterion filter (a regex, `re.search` semantics like criterion's
/// `Regex::is_match`) matches either VAR id. Python's `re` stands in for the regex crate,
/// which xtask does not depend on.
fn selected(python: &str, filter: &str) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import re, sys; sys.exit(0 if any(re.search(sys.argv[1], i) for i in sys.argv[2:]) \
             else 1)",
            filter,
            GENERATE_ID,
            DECODE_ID,
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `$ARVIS_VAR_D16_WEIGHTS`, or `<target>/bench-data/var_d16_random.safetensors`.
pub fn weights_path() -> PathBuf {
    match std::env::var_os(WEIGHTS_ENV).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => bench_data_dir().join("var_d16_random.safetensors"),
    }
}

/// `<target>/bench-data`: the shared weights and the cached PyTorch result.
fn bench_data_dir() -> PathBuf {
    crate::bench::target_dir().join("bench-data")
}

fn cache_path() -> PathBuf {
    bench_data_dir().join("var_torch.json")
}

fn script() -> PathBuf {
    workspace_root()
        .join("xtask")
        .join("py")
        .join("bench_var_torch.py")
}

/// The weights file, written by the official code with seeded random weights if missing
/// (through a temporary name, so an interrupted run leaves no truncated file behind).
fn ensure_weights(python: &str, repo: &str) -> XResult<PathBuf> {
    let path = weights_path();
    if path.is_file() {
        return Ok(path);
    }
    let mut tmp = path.clone().into_os_string();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut cmd = Command::new(python);
    cmd.arg(script())
        .args([
            "--var-repo",
            repo,
            "--depth",
            &DEPTH.to_string(),
            "--runs",
            "0",
        ])
        .arg("--save-weights")
        .arg(&tmp);
    eprintln!(
        "\n==> {} (random VAR-d{DEPTH} weights for both sides)",
        display_cmd(&cmd)
    );
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() || !tmp.is_file() {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("bench_var_torch.py --save-weights failed ({})", out.status).into());
    }
    std::fs::rename(&tmp, &path)
        .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), path.display()))?;
    Ok(path)
}

/// Runs the PyTorch side (after the criterion benches), or reads its cache.
pub fn finish(plan: &Plan) -> TorchBaseline {
    match &plan.action {
        Action::Skip(why) => TorchBaseline::Skipped(why.clone()),
        Action::Cache(why) => from_cache(&cache_path(), why),
        Action::Run {
            python,
            repo,
            weights,
        } => match run_torch(python, repo, weights) {
            Ok(run) => TorchBaseline::Ran(run),
            Err(e) => {
                eprintln!("xtask bench: PyTorch VAR baseline failed: {e}");
                TorchBaseline::Skipped(format!("bench_var_torch.py failed: {e}"))
            }
        },
    }
}

fn run_torch(python: &str, repo: &str, weights: &Path) -> XResult<TorchRun> {
    let mut cmd = Command::new(python);
    cmd.arg(script())
        .args(["--var-repo", repo, "--load-weights"])
        .arg(weights)
        .args(["--threads", &THREADS.to_string()])
        .args(["--runs", &TORCH_RUNS.to_string()])
        .args(["--warmup", &TORCH_WARMUP.to_string()]);
    let line = display_cmd(&cmd);
    eprintln!("\n==> {line}");
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("`{line}` failed ({})", out.status).into());
    }
    let result: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bench_var_torch.py printed invalid JSON: {e}"))?;
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cached = json!({
        "unix_time": unix_time,
        "command": line,
        "weights": weights.display().to_string(),
        "result": result,
    });
    let path = cache_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&cached)?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse_cache(&cached, None)
}

/// The cached result, or a skipped baseline saying why there is none.
fn from_cache(path: &Path, why: &str) -> TorchBaseline {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        .and_then(|v| parse_cache(&v, Some(why.to_owned())).map_err(|e| e.to_string()));
    match parsed {
        Ok(run) => TorchBaseline::Ran(run),
        Err(e) => TorchBaseline::Skipped(format!(
            "not re-run ({why}) and no usable cached result in {} ({e})",
            path.display()
        )),
    }
}

/// Reads the cache format `{unix_time, command, weights, result: <script JSON>}`.
fn parse_cache(v: &Value, cached: Option<String>) -> XResult<TorchRun> {
    let result = v.get("result").ok_or("no `result`")?;
    let median = result.get("median").ok_or("no `result.median`")?;
    let get = |k: &str| {
        median
            .get(k)
            .and_then(Value::as_f64)
            .filter(|t| *t > 0.0)
            .ok_or_else(|| format!("no positive `result.median.{k}`"))
    };
    Ok(TorchRun {
        transformer_s: get("transformer_s")?,
        decode_s: get("decode_s")?,
        total_s: get("total_s")?,
        info: result.clone(),
        unix_time: v.get("unix_time").and_then(Value::as_u64).unwrap_or(0),
        weights: v.get("weights").and_then(Value::as_str).map(str::to_owned),
        cached,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "unix_time": 1_700_000_000u64,
            "command": "python bench_var_torch.py",
            "weights": "/tmp/w.safetensors",
            "result": {"median": {"total_s": 9.0, "transformer_s": 6.5, "decode_s": 2.4},
                       "torch": "2.15.0", "threads": 2}
        })
    }

    #[test]
    fn parses_the_cache() -> XResult<()> {
        let run = parse_cache(&sample(), Some("filtered".into()))?;
        assert_eq!(run.transformer_s, 6.5);
        assert_eq!(run.decode_s, 2.4);
        assert_eq!(run.total_s, 9.0);
        assert_eq!(run.unix_time, 1_700_000_000);
        assert_eq!(run.weights.as_deref(), Some("/tmp/w.safetensors"));
        assert_eq!(run.cached.as_deref(), Some("filtered"));
        let mut bad = sample();
        bad["result"]["median"]["decode_s"] = json!(0.0);
        assert!(parse_cache(&bad, None).is_err());
        Ok(())
    }

    #[test]
    fn missing_cache_is_a_skip() {
        let path = std::env::temp_dir().join(format!("xtask-no-cache-{}.json", std::process::id()));
        match from_cache(&path, "--report-only") {
            TorchBaseline::Skipped(why) => assert!(why.contains("--report-only")),
            TorchBaseline::Ran(_) => panic!("no cache file: must be skipped"),
        }
    }

    #[test]
    fn bench_env_sets_threads_and_weights() {
        let plan = Plan {
            action: Action::Run {
                python: "python3".into(),
                repo: "/r".into(),
                weights: PathBuf::from("/w.safetensors"),
            },
        };
        let env = plan.bench_env();
        assert!(env.contains(&("RAYON_NUM_THREADS".into(), "2".into())));
        assert!(env.contains(&(WEIGHTS_ENV.into(), "/w.safetensors".into())));
        let plan = Plan {
            action: Action::Skip("x".into()),
        };
        assert_eq!(plan.bench_env().len(), 1);
    }
}
