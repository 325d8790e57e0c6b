//! Random MAR weights in memory, for tests, demos and benchmarks, and the list of every tensor
//! a MAR file must hold.
//!
//! [`Mar::random`] writes a complete weights file (official names, the head under
//! `diffloss.net.`, the KL VAE under `vae.` when asked for, `arvis.*` metadata) into a buffer and
//! loads it through [`Mar::load_on`], so a random model takes exactly the path of a real one.
//! The values are seeded normals scaled so activations stay of order one; the head's output
//! layer is scaled down (ε ≈ 0 keeps the DDPM chains bounded, where a random ε of order one
//! drives them to 10⁵). They exercise every code path but generate noise.

use std::collections::BTreeMap;

use arvis_core::{Device, Weights};
use arvis_heads::DiffusionHeadConfig;
use arvis_tokenizer::{KlVae, KlVaeConfig};

use crate::error::{ModelError, Result};
use crate::mar::config::MarConfig;
use crate::mar::model::{MAR_FAMILY, Mar};
use crate::var::random::{TensorSpec, write_seeded_normals};

/// `mean + std · N(0, 1)`.
type Init = (f32, f32);

fn fan_in(gain: f32, fan: usize) -> Init {
    (0.0, gain / (fan.max(1) as f32).sqrt())
}

const NORM_W: Init = (1.0, 0.1);
const SMALL: Init = (0.0, 0.1);

fn mar_specs(cfg: &MarConfig) -> Vec<(String, Vec<usize>, Init)> {
    let (de, dd) = (cfg.encoder_embed_dim, cfg.decoder_embed_dim);
    let (s, buf, t) = (cfg.seq_len(), cfg.buffer_size, cfg.token_embed_dim());
    let mut v: Vec<(String, Vec<usize>, Init)> = vec![
        (
            "class_emb.weight".into(),
            vec![cfg.class_num, de],
            (0.0, 1.0),
        ),
        ("fake_latent".into(), vec![1, de], (0.0, 1.0)),
        ("z_proj.weight".into(), vec![de, t], fan_in(1.0, t)),
        ("z_proj.bias".into(), vec![de], SMALL),
        ("z_proj_ln.weight".into(), vec![de], NORM_W),
        ("z_proj_ln.bias".into(), vec![de], SMALL),
        (
            "encoder_pos_embed_learned".into(),
            vec![1, buf + s, de],
            (0.0, 0.5),
        ),
    ];
    let blocks = |v: &mut Vec<(String, Vec<usize>, Init)>, prefix: &str, depth, c| {
        let h = cfg.mlp_hidden(c);
        for i in 0..depth {
            let p = |n: &str| format!("{prefix}.{i}.{n}");
            v.extend([
                (p("norm1.weight"), vec![c], NORM_W),
                (p("norm1.bias"), vec![c], SMALL),
                (p("attn.qkv.weight"), vec![3 * c, c], fan_in(1.0, c)),
                (p("attn.qkv.bias"), vec![3 * c], SMALL),
                (p("attn.proj.weight"), vec![c, c], fan_in(1.0, c)),
                (p("attn.proj.bias"), vec![c], SMALL),
                (p("norm2.weight"), vec![c], NORM_W),
                (p("norm2.bias"), vec![c], SMALL),
                (p("mlp.fc1.weight"), vec![h, c], fan_in(1.0, c)),
                (p("mlp.fc1.bias"), vec![h], SMALL),
                (p("mlp.fc2.weight"), vec![c, h], fan_in(1.0, h)),
                (p("mlp.fc2.bias"), vec![c], SMALL),
            ]);
        }
    };
    blocks(&mut v, "encoder_blocks", cfg.encoder_depth, de);
    v.extend([
        ("encoder_norm.weight".into(), vec![de], NORM_W),
        ("encoder_norm.bias".into(), vec![de], SMALL),
        ("decoder_embed.weight".into(), vec![dd, de], fan_in(1.0, de)),
        ("decoder_embed.bias".into(), vec![dd], SMALL),
        ("mask_token".into(), vec![1, 1, dd], (0.0, 0.5)),
        (
            "decoder_pos_embed_learned".into(),
            vec![1, buf + s, dd],
            (0.0, 0.5),
        ),
    ]);
    blocks(&mut v, "decoder_blocks", cfg.decoder_depth, dd);
    v.extend([
        ("decoder_norm.weight".into(), vec![dd], NORM_W),
        ("decoder_norm.bias".into(), vec![dd], SMALL),
        (
            "diffusion_pos_embed_learned".into(),
            vec![1, s, dd],
            (0.0, 0.5),
        ),
    ]);
    v
}

fn head_init(name: &str, shape: &[usize]) -> Init {
    if name.starts_with("final_layer.linear") {
        (
            0.0,
            0.01 / (shape.last().copied().unwrap_or(1) as f32).sqrt(),
        )
    } else if name.ends_with("in_ln.weight") {
        NORM_W
    } else if shape.len() == 2 {
        fan_in(1.0, shape[1])
    } else {
        SMALL
    }
}

fn vae_init(name: &str, shape: &[usize]) -> Init {
    if shape.len() == 4 {
        fan_in(1.0, shape[1..].iter().product())
    } else if name.contains("norm") && name.ends_with("weight") {
        NORM_W
    } else {
        (0.0, 0.02)
    }
}

/// Every tensor of MAR's transformer for `cfg` (official names, no prefix), in load order; the
/// head's are [`DiffusionHeadConfig::tensor_shapes`] under `diffloss.net.`.
pub fn mar_tensor_specs(cfg: &MarConfig) -> Vec<TensorSpec> {
    mar_specs(cfg).into_iter().map(|(n, s, _)| (n, s)).collect()
}

/// The `arvis.*` metadata of a MAR file (`"mar"`, and `"vae"` when given, in `arvis.config`).
pub fn mar_metadata(
    mar: &MarConfig,
    vae: Option<&KlVaeConfig>,
    source: &str,
) -> Result<BTreeMap<String, String>> {
    let mut cfg = serde_json::json!({ "mar": mar });
    if let Some(vae) = vae {
        cfg["vae"] = serde_json::to_value(vae)
            .map_err(|e| ModelError::config(format!("cannot serialise the VAE config: {e}")))?;
    }
    crate::var::random::file_metadata(MAR_FAMILY, &cfg, source)
}

/// A seeded random MAR file (all F32): the transformer, the head of shape `head` under
/// `diffloss.net.` and, with `vae`, the KL VAE under `vae.`. Tensor `i` is drawn from
/// `SeededRng::new(seed).fork(i)`.
pub fn random_weights_bytes(
    mar: &MarConfig,
    head: &DiffusionHeadConfig,
    vae: Option<&KlVaeConfig>,
    seed: u64,
) -> Result<Vec<u8>> {
    mar.validate()?;
    if head.token_channels != mar.token_embed_dim() || head.z_channels != mar.decoder_embed_dim {
        return Err(ModelError::config(format!(
            "head {head:?} does not fit the model's tokens ({}) and decoder width ({})",
            mar.token_embed_dim(),
            mar.decoder_embed_dim
        )));
    }
    let mut all = mar_specs(mar);
    for (n, s) in head.tensor_shapes() {
        let init = head_init(&n, &s);
        all.push((format!("diffloss.net.{n}"), s, init));
    }
    if let Some(vae) = vae {
        for (n, s) in KlVae::tensor_shapes(vae)? {
            let init = vae_init(&n, &s);
            all.push((format!("vae.{n}"), s, init));
        }
    }
    let metadata = mar_metadata(
        mar,
        vae,
        &format!("arvis-models random MAR weights, seed {seed}"),
    )?;
    write_seeded_normals(&all, &metadata, seed)
}

impl Mar {
    /// A model with seeded random weights (see the [module docs](super::random)) on the CPU,
    /// for tests and demos. Goes through [`Mar::load_on`] like a real file.
    pub fn random(config: &MarConfig, head: &DiffusionHeadConfig, seed: u64) -> Result<Mar> {
        let bytes = random_weights_bytes(config, head, None, seed)?;
        let weights = Weights::from_bytes(format!("<random MAR, seed {seed}>"), bytes)?;
        Mar::load_on(&weights, Device::Cpu)
    }
}
