//! The arvis side of `cargo xtask llamagen-bench`: times LlamaGen class-to-image token generation
//! (prefill + cached decode of every token, CFG on a doubled batch, HF top-k/top-p sampling) on
//! the CPU with the weights of a converter-layout file, and prints one JSON object on stdout
//! (the same keys as `xtask/py/bench_llamagen_torch.py`).
//!
//! `llamagen_cpu --weights FILE [--batch B] [--runs N] [--warmup N] [--cfg S] [--top-k K]
//! [--top-p P] [--temperature T] [--seed S]`; the thread count is rayon's (`RAYON_NUM_THREADS`).
//! The VQ decode is not timed (the PyTorch side does not time it either).

use std::time::Instant;

use arvis_core::sampling::SamplingConfig;
use arvis_core::{Device, Weights};
use arvis_models::llamagen::LlamaGen;
use serde_json::json;

use arvis_benches::flag;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path: String = flag(&args, "--weights", String::new())?;
    if path.is_empty() {
        return Err("--weights FILE is required (a LlamaGen file in the converter layout)".into());
    }
    let batch: usize = flag(&args, "--batch", 1)?;
    let runs: usize = flag(&args, "--runs", 1)?;
    let warmup: usize = flag(&args, "--warmup", 1)?;
    let cfg: f32 = flag(&args, "--cfg", 4.0)?;
    let top_k: usize = flag(&args, "--top-k", 2000)?;
    let top_p: f32 = flag(&args, "--top-p", 1.0)?;
    let temperature: f32 = flag(&args, "--temperature", 1.0)?;
    let seed: u64 = flag(&args, "--seed", 0)?;
    let weights = Weights::open(&path)?;
    let model = LlamaGen::load_on(&weights, Device::Cpu)?;
    let classes = model.config().num_classes as u32;
    // The PyTorch side's labels: i·37 mod classes.
    let labels: Vec<u32> = (0..batch as u32).map(|i| i * 37 % classes).collect();
    let sampling = SamplingConfig::llamagen(temperature, top_k, top_p);
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t0 = Instant::now();
        let run = model.generate(&labels, cfg, &sampling, seed + i as u64)?;
        let dt = t0.elapsed().as_secs_f64();
        if run.tokens.len() != batch {
            return Err(format!("{} token rows for a batch of {batch}", run.tokens.len()).into());
        }
        if i >= warmup {
            times.push(dt);
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.is_empty() {
        0.0
    } else {
        sorted[sorted.len() / 2]
    };
    let tokens = model.config().block_size;
    println!(
        "{}",
        json!({
            "side": "arvis",
            "threads": rayon::current_num_threads(),
            "batch": batch, "tokens": tokens, "cfg": cfg, "temperature": temperature,
            "top_k": top_k, "top_p": top_p, "warmup": warmup, "runs": times, "median_s": median,
        })
    );
    Ok(())
}
