//! `cargo xtask gpu-report`: one prepared command for a machine with a real GPU. Times matmul
//! 4096³, attention (VAR-d16's block-causal shapes and a long causal one) and VAR-d16
//! generation at B = 1 and 64 through arvis's wgpu path, and the same through PyTorch (fp32,
//! TF32 off) in the same run when torch is importable, then prints one table of TFLOP/s,
//! % of the fp32 peak and ratios, also written to `target/gpu-report.md`. On a lent machine
//! without Rust, `xtask/device/gpu_report.sh` runs both sides and `--from DIR` renders here.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{XResult, cargo, display_cmd, run_echoed, workspace_root};

/// Options of `cargo xtask gpu-report`.
#[derive(Debug, Default)]
struct Args {
    quick: bool,
    profile: bool,
    runs: Option<String>,
    /// Render from the JSON files `xtask/device/gpu_report.sh` wrote on a lent machine.
    from: Option<std::path::PathBuf>,
}

fn parse(args: &[String]) -> XResult<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => out.quick = true,
            "--profile" => out.profile = true,
            "--runs" => out.runs = Some(it.next().ok_or("--runs needs a value")?.clone()),
            "--from" => out.from = Some(it.next().ok_or("--from needs a folder")?.into()),
            other => return Err(format!("gpu-report: unknown option `{other}`").into()),
        }
    }
    Ok(out)
}

/// Dense fp32 (non-tensor-core) peak in TFLOP/s of known adapters, or `ARVIS_FP32_PEAK_TFLOPS`.
fn fp32_peak(name: &str) -> Option<f64> {
    if let Some(v) = std::env::var("ARVIS_FP32_PEAK_TFLOPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Some(v);
    }
    // Vendor datasheets (SXM boards): H100/H200 67 TFLOP/s, A100 19.5 TFLOP/s.
    let n = name.to_uppercase();
    [("H200", 67.0), ("H100", 67.0), ("A100", 19.5)]
        .iter()
        .find(|(k, _)| n.contains(k))
        .map(|(_, v)| *v)
}

/// Runs `cmd`, passing stderr through, and parses the last stdout line as JSON.
fn json_of(cmd: &mut Command) -> XResult<Value> {
    let line = display_cmd(cmd);
    eprintln!("\n==> {line}");
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("`{line}` failed").into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().ok_or("no output")?;
    Ok(serde_json::from_str(last)?)
}

/// Runs the report.
/// The times PyTorch's side reported: `gpu_report_torch.py`'s results (id → seconds) and its
/// device name, plus the official VAR code's median totals as `var/d16/b<B>` and the official
/// LlamaGen code's as `llamagen/gpt_b/b<B>`.
fn torch_times(t: &Value, theirs: &mut BTreeMap<String, f64>) -> String {
    if let Some(r) = t["results"].as_object() {
        for (k, v) in r {
            if let Some(s) = v["s"].as_f64() {
                theirs.insert(k.clone(), s);
            }
        }
    }
    format!(
        "torch {} on {}",
        t["torch"].as_str().unwrap_or("?"),
        t["name"].as_str().unwrap_or("?")
    )
}

/// Reads the JSON files of a device run (`xtask/device/gpu_report.sh`).
fn from_folder(dir: &std::path::Path) -> XResult<(Value, BTreeMap<String, f64>, String)> {
    let read = |name: &str| -> XResult<Option<Value>> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => {
                let last = text.lines().last().unwrap_or_default();
                Ok(Some(
                    serde_json::from_str(last).map_err(|e| format!("{name}: {e}"))?,
                ))
            }
            Err(_) => Ok(None),
        }
    };
    let ours = read("arvis.json")?.ok_or_else(|| format!("{}: no arvis.json", dir.display()))?;
    let mut theirs = BTreeMap::new();
    let mut torch_name = String::from("(no torch.json)");
    if let Some(t) = read("torch.json")? {
        torch_name = torch_times(&t, &mut theirs);
    }
    for b in [1, 64] {
        let v = read(&format!("var_b{b}.json"))?;
        if let Some(s) = v.as_ref().and_then(|v| v["median"]["total_s"].as_f64()) {
            theirs.insert(format!("var/d16/b{b}"), s);
        }
        let v = read(&format!("llamagen_b{b}.json"))?;
        if let Some(s) = v.as_ref().and_then(|v| v["median_s"].as_f64()) {
            theirs.insert(format!("llamagen/gpt_b/b{b}"), s);
        }
    }
    Ok((ours, theirs, torch_name))
}

/// Runs the report.
pub fn run(args: &[String]) -> XResult<()> {
    let a = parse(args)?;
    let (ours, theirs, torch_name) = match &a.from {
        Some(dir) => from_folder(dir)?,
        None => measure(&a)?,
    };
    render(&ours, &theirs, &torch_name)
}

/// Runs both sides on this machine.
fn measure(a: &Args) -> XResult<(Value, BTreeMap<String, f64>, String)> {
    run_echoed(cargo().args([
        "build",
        "--release",
        "-p",
        "arvis-benches",
        "--bin",
        "gpu_report",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let mut cmd = Command::new(target.join("release/gpu_report"));
    if a.quick {
        cmd.arg("--quick");
    }
    if a.profile {
        cmd.arg("--profile");
    }
    if let Some(r) = &a.runs {
        cmd.args(["--runs", r]);
    }
    let ours = json_of(&mut cmd)?;

    let python = std::env::var("ARVIS_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_torch = Command::new(&python)
        .args(["-c", "import torch"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let py = workspace_root().join("xtask/py");
    let mut theirs = BTreeMap::<String, f64>::new();
    let mut torch_name = String::from("(torch not importable)");
    if has_torch {
        let mut c = Command::new(&python);
        c.arg(py.join("gpu_report_torch.py"));
        if a.quick {
            c.arg("--quick");
        }
        let t = json_of(&mut c)?;
        torch_name = torch_times(&t, &mut theirs);
        // The official VAR code on the same device, same random-weight layout (d16).
        if let (Ok(repo), false) = (std::env::var("ARVIS_VAR_REPO"), a.quick) {
            for b in [1, 64] {
                let mut c = Command::new(&python);
                c.arg(py.join("bench_var_torch.py"))
                    .args(["--var-repo", &repo, "--depth", "16", "--device", "cuda"])
                    .args(["--batch", &b.to_string(), "--runs", "3", "--warmup", "1"]);
                let v = json_of(&mut c)?;
                if let Some(s) = v["median"]["total_s"].as_f64() {
                    theirs.insert(format!("var/d16/b{b}"), s);
                }
            }
        }
        // The official LlamaGen code: GPT-B, random weights, 256 tokens, CFG 4, top-k 2000.
        if let (Ok(repo), false) = (std::env::var("ARVIS_LLAMAGEN_REPO"), a.quick) {
            for b in [1, 64] {
                let mut c = Command::new(&python);
                c.arg(py.join("bench_llamagen_torch.py"))
                    .args(["--llamagen-repo", &repo, "--device", "cuda"])
                    .args(["--batch", &b.to_string(), "--runs", "3", "--warmup", "1"]);
                let v = json_of(&mut c)?;
                if let Some(s) = v["median_s"].as_f64() {
                    theirs.insert(format!("llamagen/gpt_b/b{b}"), s);
                }
            }
        }
    }

    Ok((ours, theirs, torch_name))
}

/// Prints the table and writes it to `target/gpu-report.md`.
fn render(ours: &Value, theirs: &BTreeMap<String, f64>, torch_name: &str) -> XResult<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let name = ours["name"].as_str().unwrap_or("?").to_owned();
    let peak = fp32_peak(&name);
    let mut md = format!(
        "GPU report: arvis (wgpu, {} {}) vs {torch_name}; fp32, medians; ratio = PyTorch time / \
         arvis time (> 1: arvis faster){}\n\n| what | arvis | PyTorch | ratio | arvis % of fp32 peak |\n|---|---|---|---|---|\n",
        name,
        ours["backend"].as_str().unwrap_or("?"),
        peak.map_or(String::new(), |p| format!("; fp32 peak {p} TFLOP/s"))
    );
    if let Some(r) = ours["results"].as_object() {
        for (k, v) in r {
            let s = v["s"].as_f64().unwrap_or(f64::NAN);
            let flops = v["flops"].as_f64();
            let fmt = |s: f64| match (flops, v["images_per_s"].as_f64()) {
                (Some(f), _) => format!("{:.3} ms, {:.2} TFLOP/s", s * 1e3, f / s / 1e12),
                (None, Some(_)) => format!(
                    "{:.3} s, {:.2} img/s",
                    s,
                    k.rsplit("/b")
                        .next()
                        .and_then(|b| b.parse::<f64>().ok())
                        .unwrap_or(1.0)
                        / s
                ),
                _ => format!("{s:.4} s"),
            };
            let t = theirs.get(k);
            md.push_str(&format!(
                "| {k} | {} | {} | {} | {} |\n",
                fmt(s),
                t.map_or("—".into(), |&t| fmt(t)),
                t.map_or("—".into(), |&t| format!("{:.2}×", t / s)),
                match (flops, peak) {
                    (Some(f), Some(p)) => format!("{:.0} %", 100.0 * f / s / 1e12 / p),
                    _ => "—".into(),
                }
            ));
        }
    }
    println!("\n{md}");
    let path = target.join("gpu-report.md");
    std::fs::write(&path, &md)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
