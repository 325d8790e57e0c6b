//! Speculative samplers on a LlamaGen-shaped model: per sampler, target forwards per image,
//! mean accepted length, acceptance rate, wall time and the NLL of the samples under the
//! target, printed as one JSON object per (sampler, batch) line on stdout.
//!
//! `spec_llamagen [--weights FILE] [--draft FILE] [--batch B] [--window N] [--samplers
//! plain,sjd,gsd,lantern,spec] [--cfg S] [--top-k K] [--seed S] [--block-size T]`
//!
//! Without `--weights` the target is GPT-B (official shapes: 12 layers, width 768, 16384
//! codes) with seeded random weights (`LlamaGen::random`, seed 0) and the GSD/LANTERN codebook
//! is a seeded random 16384×8 table, L2-normalised; without `--draft` the draft of `spec` is a
//! random 2-layer model of GPT-B width. Random weights make near-independent, high-entropy
//! predictions, so acceptance is low: the numbers measure the machinery's cost, not the speed-up
//! on a trained model. `--block-size` (a square, default 256) shortens the image for quick runs.
//!
//! NLL: `−Σ_t log p(x_t | x_<t)` per image in nats under the target's CFG-mixed distribution at
//! temperature 1 *without* top-k/top-p (finite for every token, so lossy samplers that emit a
//! token outside the top-k are still scored), from one teacher-forced window forward per batch.

use std::sync::Arc;
use std::time::Instant;

use arvis_core::sampling::SamplingConfig;
use arvis_core::{Device, SeededRng, Weights};
use arvis_models::llamagen::{LlamaGen, LlamaGenConfig, LlamaGenVq, codebook_embeddings};
use arvis_spec::jacobi::jacobi_decode;
use arvis_spec::{
    Acceptance, DecodeConfig, DecodeOutput, DraftInit, Embeddings, GroupedRule, LanternRule,
    ModelDrafter, NeighbourTable, SjdConfig, plain_decode, speculative_decode,
};
use serde_json::json;

use arvis_benches::flag;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A seeded random codebook `[V, 8]`, L2-normalised like LlamaGen's.
fn random_codebook(v: usize, seed: u64) -> Res<Embeddings> {
    let d = 8;
    let mut rng = SeededRng::new(seed);
    let mut data = rng.normal_vec(v * d);
    for row in data.chunks_exact_mut(d) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|x| *x /= n);
    }
    Ok(Embeddings::new(v, d, data)?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let weights: String = flag(&args, "--weights", String::new())?;
    let draft_path: String = flag(&args, "--draft", String::new())?;
    let batch: usize = flag(&args, "--batch", 1)?;
    let window: usize = flag(&args, "--window", 16)?;
    let samplers: String = flag(&args, "--samplers", "plain,sjd,gsd,lantern,spec".to_owned())?;
    let cfg: f32 = flag(&args, "--cfg", 4.0)?;
    let top_k: usize = flag(&args, "--top-k", 2000)?;
    let seed: u64 = flag(&args, "--seed", 0)?;
    let block_size: usize = flag(&args, "--block-size", 256)?;

    let gpt_b = LlamaGenConfig {
        block_size,
        ..LlamaGenConfig::gpt_b()
    };
    let (target, codebook, source) = if weights.is_empty() {
        let t = LlamaGen::random(&gpt_b, 0)?;
        let cb = random_codebook(gpt_b.vocab_size, 1)?;
        (t, cb, "random GPT-B (seed 0)".to_owned())
    } else {
        let w = Weights::open(&weights)?;
        let t = LlamaGen::load_on(&w, Device::Cpu)?;
        let vq_cfg = arvis_models::llamagen::LlamaGenVqConfig::from_weights(&w)?;
        let vq = LlamaGenVq::load(&w.scope_on("vq", Device::Cpu), &vq_cfg)?;
        (t, codebook_embeddings(&vq)?, weights.clone())
    };
    let draft = if draft_path.is_empty() {
        let d = LlamaGenConfig {
            n_layer: 2,
            ..target.config().clone()
        };
        LlamaGen::random(&d, 2)?
    } else {
        LlamaGen::load_on(&Weights::open(&draft_path)?, Device::Cpu)?
    };
    let emb = Arc::new(codebook);
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 97 + 1) % target.config().num_classes as u32)
        .collect();
    let sampling = SamplingConfig::llamagen(1.0, top_k, 1.0);
    let sjd = SjdConfig {
        window,
        init: DraftInit::Random,
    };
    let mut neighbours: Option<Arc<NeighbourTable>> = None;
    for name in samplers.split(',') {
        let mut model = target.spec_model(&labels, cfg, &sampling)?;
        let mut setup_s = 0.0;
        let t0 = Instant::now();
        let out: DecodeOutput = match name {
            "plain" => plain_decode(&mut model, seed)?,
            "sjd" => jacobi_decode(&mut model, &sjd, Acceptance::Exact, seed)?,
            "gsd" => {
                let rule = GroupedRule::default().with_embeddings(emb.clone());
                jacobi_decode(&mut model, &sjd, Acceptance::Grouped(rule), seed)?
            }
            "lantern" => {
                let table = match &neighbours {
                    Some(t) => t.clone(),
                    None => {
                        let s = Instant::now();
                        let t = Arc::new(NeighbourTable::from_embeddings(&emb, 1000)?);
                        setup_s = s.elapsed().as_secs_f64();
                        neighbours = Some(t.clone());
                        t
                    }
                };
                let rule = LanternRule::new(table);
                jacobi_decode(&mut model, &sjd, Acceptance::Lantern(rule), seed)?
            }
            "spec" => {
                let mut drafter = ModelDrafter::new(draft.spec_model(&labels, cfg, &sampling)?);
                speculative_decode(
                    &mut model,
                    &mut drafter,
                    &DecodeConfig::exact(window - 1),
                    seed,
                )?
            }
            other => return Err(format!("unknown sampler {other}").into()),
        };
        let wall = t0.elapsed().as_secs_f64() - setup_s;
        let s = out.stats;
        let nll = target.sequence_nll(&labels, cfg, &out.tokens)?;
        let nll_per_image = nll.iter().sum::<f64>() / nll.len() as f64;
        println!(
            "{}",
            json!({
                "model": source,
                "sampler": name,
                "batch": batch,
                "window": window,
                "cfg": cfg,
                "top_k": top_k,
                "seed": seed,
                "tokens_per_image": s.tokens,
                "target_forwards_per_image": s.target_forwards,
                "draft_forwards": s.draft_forwards,
                "mean_accepted_len": s.mean_accepted_len(),
                "acceptance_rate": s.acceptance_rate(),
                "wall_s": wall,
                "setup_s": setup_s,
                "nll_nats_per_image": nll_per_image,
                "nll_nats_per_token": nll_per_image / s.tokens as f64,
                "threads": rayon::current_num_threads(),
            })
        );
    }
    Ok(())
}
