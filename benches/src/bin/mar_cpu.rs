//! The arvis side of the MAR CPU comparison (`xtask/py/bench_mar_torch.py` is the other): times
//! `Mar::generate` (every AR iteration's encoder and decoder, and one batched diffusion-head
//! call per iteration, CFG on a doubled batch, linear schedule) with the weights of a MAR file,
//! and prints one JSON object on stdout (the same keys as the Python side). The VAE decode is not
//! timed.
//!
//! `mar_cpu --weights FILE [--batch B] [--num-iter K] [--head-steps N] [--cfg S] [--runs N]
//! [--warmup N] [--seed S]`; the thread count is rayon's (`RAYON_NUM_THREADS`).

use std::time::Instant;

use arvis_core::{Device, Weights};
use arvis_models::mar::{CfgSchedule, HeadSteps, Mar, MarRequest};
use serde_json::json;

use arvis_benches::flag;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path: String = flag(&args, "--weights", String::new())?;
    if path.is_empty() {
        return Err("--weights FILE is required (a MAR file in the converter layout)".into());
    }
    let batch: usize = flag(&args, "--batch", 1)?;
    let num_iter: usize = flag(&args, "--num-iter", 64)?;
    let head_steps: usize = flag(&args, "--head-steps", 100)?;
    let cfg: f32 = flag(&args, "--cfg", 2.9)?;
    let runs: usize = flag(&args, "--runs", 1)?;
    let warmup: usize = flag(&args, "--warmup", 0)?;
    let seed: u64 = flag(&args, "--seed", 0)?;
    let weights = Weights::open(&path)?;
    let model = Mar::load_on(&weights, Device::Cpu)?;
    let classes = model.config().class_num as u32;
    // The PyTorch side's labels: i·37 mod classes.
    let labels: Vec<u32> = (0..batch as u32).map(|i| i * 37 % classes).collect();
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let req = MarRequest {
            num_iter,
            cfg,
            cfg_schedule: CfgSchedule::Linear,
            temperature: 1.0,
            head_steps: HeadSteps::Fixed(head_steps),
            ..MarRequest::new(labels.clone(), seed + i as u64)
        };
        let t0 = Instant::now();
        let run = model.generate(&req)?;
        let dt = t0.elapsed().as_secs_f64();
        if run.latents.shape()[0] != batch || !run.latents.to_vec().iter().all(|v| v.is_finite()) {
            return Err("bad latents".into());
        }
        if i >= warmup {
            times.push(dt);
        }
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{}",
        json!({
            "side": "arvis", "threads": rayon::current_num_threads(), "batch": batch,
            "num_iter": num_iter, "head_steps": head_steps, "cfg": cfg, "warmup": warmup,
            "runs": times, "median_s": median,
        })
    );
    Ok(())
}
