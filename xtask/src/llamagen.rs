//! `cargo xtask llamagen-bench`: LlamaGen GPT-B class-to-image generation (256 tokens, CFG, KV
//! cache, fp32, CPU) in arvis against the official FoundationVision/LlamaGen code, same weights
//! file and thread count, **alternating** the two sides run by run so that a slow spell of this
//! noisy machine hits both. The arvis side is `benches/src/bin/llamagen_cpu.rs` (release build),
//! the PyTorch side `xtask/py/bench_llamagen_torch.py`; each process does one untimed and one
//! timed generation. Prints a markdown table (median seconds per side, ratio, tokens/s and the
//! weight-streaming rate the decode reaches) and writes it with the raw runs to
//! `target/bench-data/llamagen.{md,json}`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::{XResult, cargo, display_cmd, run_echoed, workspace_root};

/// Threads on both sides (`RAYON_NUM_THREADS`, `torch.set_num_threads`).
const THREADS: usize = 2;

#[derive(Debug)]
struct Args {
    batches: Vec<usize>,
    rounds: usize,
    weights: PathBuf,
}

fn parse(args: &[String]) -> XResult<Args> {
    let mut out = Args {
        batches: vec![1, 8],
        rounds: 3,
        weights: crate::bench::target_dir()
            .join("bench-data")
            .join("llamagen_gpt_b_random.safetensors"),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--batches" => {
                out.batches = value()?
                    .split(',')
                    .map(|b| {
                        b.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--batches {b}: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                if out.batches.contains(&0) {
                    return Err("--batches: a batch must be at least 1".into());
                }
            }
            "--rounds" => {
                out.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?;
                if out.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--weights" => out.weights = value()?.into(),
            other => return Err(format!("llamagen-bench: unknown option `{other}`").into()),
        }
    }
    Ok(out)
}

/// Runs `cmd` (stderr passed through) and parses its stdout's last line as JSON.
fn json_of(cmd: &mut Command) -> XResult<Value> {
    let line = display_cmd(cmd);
    eprintln!("==> {line}");
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(format!("`{line}` failed ({})", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(last).map_err(|e| format!("`{line}` printed no JSON: {e}"))?)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// The timed seconds of one side's JSON (`runs`, one per process here).
fn runs_of(v: &Value) -> Vec<f64> {
    v.get("runs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// Bytes of fp32 weights one decode step streams: every linear layer and the output head
/// (the embeddings are gathered, not streamed). GPT-B: 12 × (4·768² + 3·768·2048) + 768·16384.
fn streamed_bytes(weights: &Path) -> XResult<u64> {
    use std::io::Read as _;
    // The safetensors header: a little-endian u64 length, then that much JSON.
    let mut f = std::fs::File::open(weights)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(format!("{}: implausible safetensors header", weights.display()).into());
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header)?;
    let header: Value = serde_json::from_slice(&header)?;
    let mut total = 0u64;
    for (name, info) in header.as_object().into_iter().flatten() {
        let shape: Vec<u64> = info
            .get("shape")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if name.ends_with(".weight") && shape.len() == 2 && !name.contains("embedding") {
            total += shape.iter().product::<u64>() * 4;
        }
    }
    Ok(total)
}

/// Entry point of `cargo xtask llamagen-bench`.
pub fn run(args: &[String]) -> XResult<()> {
    let args = parse(args)?;
    let repo = std::env::var("ARVIS_LLAMAGEN_REPO")
        .ok()
        .filter(|r| !r.is_empty())
        .ok_or(
            "ARVIS_LLAMAGEN_REPO is not set: the path of a FoundationVision/LlamaGen checkout \
             (tested at ce98ec4)",
        )?;
    let python = std::env::var("ARVIS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = workspace_root()
        .join("xtask")
        .join("py")
        .join("bench_llamagen_torch.py");
    run_echoed(cargo().args([
        "build",
        "--release",
        "-p",
        "arvis-benches",
        "--bin",
        "llamagen_cpu",
    ]))?;
    let arvis_bin = crate::bench::target_dir()
        .join("release")
        .join("llamagen_cpu");
    if !args.weights.is_file() {
        if let Some(dir) = args.weights.parent() {
            std::fs::create_dir_all(dir)?;
        }
        run_echoed(
            Command::new(&python)
                .arg(&script)
                .args(["--llamagen-repo", &repo, "--runs", "0", "--save-weights"])
                .arg(&args.weights),
        )?;
    }
    let weights = args.weights.display().to_string();
    let streamed = streamed_bytes(&args.weights)?;
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for &b in &args.batches {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut torch_info = Value::Null;
        for round in 0..args.rounds {
            eprintln!("\n-- B = {b}, round {} of {}", round + 1, args.rounds);
            let a = json_of(
                Command::new(&arvis_bin)
                    .env("RAYON_NUM_THREADS", THREADS.to_string())
                    .args(["--weights", &weights, "--batch", &b.to_string()])
                    .args(["--runs", "1", "--warmup", "1"]),
            )?;
            let t = json_of(
                Command::new(&python)
                    .arg(&script)
                    .args(["--llamagen-repo", &repo, "--load-weights", &weights])
                    .args(["--batch", &b.to_string(), "--threads", &THREADS.to_string()])
                    .args(["--runs", "1", "--warmup", "1"]),
            )?;
            ours.extend(runs_of(&a));
            theirs.extend(runs_of(&t));
            torch_info = t.clone();
            raw.push(json!({"batch": b, "round": round, "arvis": a, "pytorch": t}));
        }
        let (ma, mt) = (median(&ours), median(&theirs));
        eprintln!("B = {b}: arvis {ours:?}, PyTorch {theirs:?}");
        rows.push((b, ma, mt, ours, theirs, torch_info));
    }
    let mut md = String::new();
    md.push_str(
        "| B | arvis median (runs) | PyTorch median (runs) | ratio | arvis tokens/s | weight stream, arvis |\n\
         |---|---|---|---|---|---|\n",
    );
    for (b, ma, mt, ours, theirs, _) in &rows {
        let list = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // 256 decode steps each stream every weight once, whatever the batch.
        let gbps = streamed as f64 * 256.0 / ma / 1e9;
        md.push_str(&format!(
            "| {b} | {ma:.2} s ({}) | {mt:.2} s ({}) | **{:.2}×** | {:.0} | {gbps:.1} GB/s |\n",
            list(ours),
            list(theirs),
            mt / ma,
            (*b as f64) * 256.0 / ma,
        ));
    }
    let info = rows.first().map(|r| r.5.clone()).unwrap_or(Value::Null);
    let text = |k: &str| match info.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "?".into(),
    };
    md.push_str(&format!(
        "\nGPT-B (random weights `{weights}`), 256 tokens, CFG 4 (doubled batch), top-k 2000, \
         top-p 1.0, temperature 1, fp32, {THREADS} threads on both sides; official \
         FoundationVision/LlamaGen @ {} `generate`, torch {}; each side one untimed + one timed \
         generation per process, the sides alternating, {} rounds; weights streamed per step: \
         {:.0} MB.\n",
        text("llamagen_revision"),
        text("torch"),
        args.rounds,
        streamed as f64 / 1e6,
    ));
    println!("{md}");
    let dir = crate::bench::target_dir().join("bench-data");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("llamagen.md"), &md)?;
    std::fs::write(
        dir.join("llamagen.json"),
        serde_json::to_string_pretty(&json!({"runs": raw}))?,
    )?;
    eprintln!("wrote {}", dir.join("llamagen.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() -> XResult<()> {
        let a = parse(&[
            "--batches".into(),
            "1,8,16".into(),
            "--rounds".into(),
            "5".into(),
        ])?;
        assert_eq!(a.batches, vec![1, 8, 16]);
        assert_eq!(a.rounds, 5);
        assert!(parse(&["--batches".into(), "0".into()]).is_err());
        assert!(parse(&["--rounds".into(), "0".into()]).is_err());
        assert!(parse(&["--frobnicate".into()]).is_err());
        assert!(parse(&["--weights".into()]).is_err());
        Ok(())
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
