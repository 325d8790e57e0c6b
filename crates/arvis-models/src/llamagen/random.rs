//! Random LlamaGen weights in memory, for tests, demos and benchmarks, and the list of every
//! tensor a LlamaGen GPT file must hold.
//!
//! [`LlamaGen::random`] writes a complete weights file (official names under `gpt.`, and the VQ
//! under `vq.` when asked for, `arvis.*` metadata) into a buffer and loads it through
//! [`LlamaGen::load_on`], so a random model takes exactly the path of a real one. The values are
//! seeded normals scaled so activations stay of order one (not the official initialisation,
//! which zeroes `output`): they exercise every code path but generate noise.

use std::collections::BTreeMap;

use arvis_core::{Device, Weights};
use arvis_tokenizer::{LlamaGenVq, LlamaGenVqConfig};

use crate::error::{ModelError, Result};
use crate::llamagen::config::LlamaGenConfig;
use crate::llamagen::model::{LLAMAGEN_FAMILY, LlamaGen};
use crate::var::random::{TensorSpec, write_safetensors, write_seeded_normals};

/// `mean + std · N(0, 1)`.
type Init = (f32, f32);

fn fan_in(gain: f32, fan: usize) -> Init {
    (0.0, gain / (fan.max(1) as f32).sqrt())
}

const NORM: Init = (1.0, 0.1);

fn gpt_specs(cfg: &LlamaGenConfig) -> Vec<(String, Vec<usize>, Init)> {
    let (c, f, v) = (cfg.dim, cfg.ffn_hidden(), cfg.vocab_size);
    let mut out = vec![
        (
            "cls_embedding.embedding_table.weight".to_owned(),
            vec![cfg.num_classes + 1, c],
            (0.0, 1.0),
        ),
        ("tok_embeddings.weight".to_owned(), vec![v, c], (0.0, 1.0)),
    ];
    for i in 0..cfg.n_layer {
        let p = |n: &str| format!("layers.{i}.{n}");
        out.extend([
            (p("attention.wqkv.weight"), vec![3 * c, c], fan_in(1.0, c)),
            (p("attention.wo.weight"), vec![c, c], fan_in(1.0, c)),
            (p("feed_forward.w1.weight"), vec![f, c], fan_in(1.0, c)),
            (p("feed_forward.w3.weight"), vec![f, c], fan_in(1.0, c)),
            (p("feed_forward.w2.weight"), vec![c, f], fan_in(1.0, f)),
            (p("attention_norm.weight"), vec![c], NORM),
            (p("ffn_norm.weight"), vec![c], NORM),
        ]);
    }
    out.push(("norm.weight".to_owned(), vec![c], NORM));
    out.push(("output.weight".to_owned(), vec![v, c], fan_in(2.0, c)));
    out
}

/// Every tensor of the GPT for `cfg`, official names (relative to the `gpt.` prefix of arvis
/// files), in load order.
pub fn gpt_tensor_specs(cfg: &LlamaGenConfig) -> Vec<TensorSpec> {
    gpt_specs(cfg).into_iter().map(|(n, s, _)| (n, s)).collect()
}

fn vq_init(name: &str, shape: &[usize]) -> Init {
    if name.starts_with("quantize.embedding") {
        (0.0, 1.0)
    } else if shape.len() == 4 {
        fan_in(1.0, shape[1..].iter().product())
    } else if name.contains("norm") && name.ends_with("weight") {
        NORM
    } else {
        (0.0, 0.02)
    }
}

/// The `arvis.*` metadata of a LlamaGen file (`"gpt"`, and `"vq"` when given, in
/// `arvis.config`).
pub fn llamagen_metadata(
    gpt: &LlamaGenConfig,
    vq: Option<&LlamaGenVqConfig>,
    source: &str,
) -> Result<BTreeMap<String, String>> {
    let mut cfg = serde_json::json!({ "gpt": gpt });
    if let Some(vq) = vq {
        cfg["vq"] = serde_json::to_value(vq)
            .map_err(|e| ModelError::config(format!("cannot serialise the VQ config: {e}")))?;
    }
    crate::var::random::file_metadata(LLAMAGEN_FAMILY, &cfg, source)
}

/// A seeded random LlamaGen file (all F32): the GPT under `gpt.` and, with `vq`, the tokenizer
/// under `vq.`. Tensor `i` is drawn from `SeededRng::new(seed).fork(i)`.
pub fn random_weights_bytes(
    gpt: &LlamaGenConfig,
    vq: Option<&LlamaGenVqConfig>,
    seed: u64,
) -> Result<Vec<u8>> {
    gpt.validate()?;
    let mut all: Vec<(String, Vec<usize>, Init)> = gpt_specs(gpt)
        .into_iter()
        .map(|(n, s, i)| (format!("gpt.{n}"), s, i))
        .collect();
    if let Some(vq) = vq {
        for (n, s) in LlamaGenVq::tensor_shapes(vq)? {
            let init = vq_init(&n, &s);
            all.push((format!("vq.{n}"), s, init));
        }
    }
    let metadata = llamagen_metadata(
        gpt,
        vq,
        &format!("arvis-models random LlamaGen weights, seed {seed}"),
    )?;
    write_seeded_normals(&all, &metadata, seed)
}

/// `u_i ∈ [-1, 1)` for `i < out.len()`: the top 24 bits of
/// `splitmix64(fnv1a64(name) + seed·2³² + i)` as `k / 2²³ − 1` (exact in f32). A formula, not a
/// generator state, so `xtask/py/golden_llamagen.py` (`hashed_uniform`, numpy) computes the
/// same bits: fixtures at real widths can leave their weights out.
pub fn hashed_uniform(name: &str, seed: u64, out: &mut [f32]) {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in name.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    let base = h.wrapping_add(seed << 32);
    for (i, o) in out.iter_mut().enumerate() {
        let mut x = base
            .wrapping_add(i as u64)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        *o = (x >> 40) as f32 / (1u32 << 23) as f32 - 1.0;
    }
}

/// A LlamaGen GPT file (all F32, tensors under `gpt.`) whose every parameter is
/// `mean + scale · hashed_uniform(official name, seed)`: linears `√3·gain/√fan_in` (`output`
/// gain 2), embeddings `√3`, RMSNorm weights `1 + 0.1·√3·u` (unit variance like
/// [`random_weights_bytes`], but bit-identical to the Python twin `hashed_weights` in
/// `xtask/py/golden_llamagen.py`; the scale is computed in f64 and rounded to f32, the product
/// and sum are f32).
pub fn hashed_weights_bytes(gpt: &LlamaGenConfig, seed: u64) -> Result<Vec<u8>> {
    gpt.validate()?;
    let specs = gpt_tensor_specs(gpt);
    let file_specs: Vec<TensorSpec> = specs
        .iter()
        .map(|(n, s)| (format!("gpt.{n}"), s.clone()))
        .collect();
    let metadata = llamagen_metadata(
        gpt,
        None,
        &format!("arvis-models hashed LlamaGen weights, seed {seed}"),
    )?;
    let sqrt3 = 3f64.sqrt();
    write_safetensors(&file_specs, &metadata, |i, _, out| {
        let (name, shape) = &specs[i];
        let (mean, scale) = if name.contains("embedding") {
            (0.0, sqrt3)
        } else if name.ends_with("norm.weight") {
            (1.0, 0.1 * sqrt3)
        } else {
            let gain = if name == "output.weight" { 2.0 } else { 1.0 };
            (0.0, sqrt3 * gain / (shape[1] as f64).sqrt())
        };
        hashed_uniform(name, seed, out);
        let (mean, scale) = (mean as f32, scale as f32);
        for v in out.iter_mut() {
            *v = *v * scale + mean;
        }
        Ok(())
    })
}

impl LlamaGen {
    /// A GPT with seeded random weights (see the [module docs](super::random)) on the CPU, for
    /// tests and demos. Goes through [`LlamaGen::load_on`] like a real file.
    pub fn random(config: &LlamaGenConfig, seed: u64) -> Result<LlamaGen> {
        let bytes = random_weights_bytes(config, None, seed)?;
        let weights = Weights::from_bytes(format!("<random LlamaGen, seed {seed}>"), bytes)?;
        LlamaGen::load_on(&weights, Device::Cpu)
    }
}
