//! Random VAR weights in memory, for tests, demos and benchmarks, and the list of every tensor
//! a VAR weights file must hold.
//!
//! [`Var::random`] writes a complete weights file (VAR transformer and VQ-VAE, official names,
//! `arvis.*` metadata) into a buffer and loads it through [`Var::load`], so a random model takes
//! exactly the path of a real one. The values are seeded normals scaled so activations stay of
//! order one through the stack (not the official initialisation, which zeroes most residual
//! branches, see `shared/reference/models.md` §1.3): they exercise every code path but generate
//! noise, not images.

use std::collections::BTreeMap;

use arvis_core::weights::{META_CONFIG, META_FAMILY, META_SOURCE};
use arvis_core::{SeededRng, Weights};
use arvis_tokenizer::{VqVae, VqVaeConfig};
use rayon::prelude::*;

use super::VarConfig;
use super::model::{VAR_FAMILY, Var, VarFileConfig};
use crate::error::{ModelError, Result};

/// A tensor's name and shape.
pub type TensorSpec = (String, Vec<usize>);

/// How a random tensor is drawn: `mean + std · N(0, 1)`.
#[derive(Clone, Copy, Debug)]
struct Init {
    mean: f32,
    std: f32,
}

const fn normal(std: f32) -> Init {
    Init { mean: 0.0, std }
}

fn fan_in(std_num: f32, fan: usize) -> Init {
    normal(std_num / (fan.max(1) as f32).sqrt())
}

/// Small random biases.
const BIAS: Init = normal(0.02);

/// Every tensor of the VAR transformer for `cfg`, with the codebook size `vocab` and latent
/// width `cvae` of its VQ-VAE, in the official state-dict naming (buffers excluded). The
/// VQ-VAE's tensors are listed by `arvis_tokenizer::VqVae::tensor_shapes`.
pub fn var_tensor_specs(cfg: &VarConfig, vocab: usize, cvae: usize) -> Vec<TensorSpec> {
    var_specs(cfg, vocab, cvae)
        .into_iter()
        .map(|(n, s, _)| (n, s))
        .collect()
}

fn var_specs(cfg: &VarConfig, vocab: usize, cvae: usize) -> Vec<(String, Vec<usize>, Init)> {
    let c = cfg.embed_dim;
    let hidden = cfg.ffn_hidden();
    let mut v: Vec<(String, Vec<usize>, Init)> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, init: Init| v.push((name, shape, init));
    push(
        "class_emb.weight".into(),
        vec![cfg.num_classes + 1, c],
        normal(1.0),
    );
    push(
        "pos_start".into(),
        vec![1, cfg.scale_len(0), c],
        normal(0.2),
    );
    push("pos_1LC".into(), vec![1, cfg.seq_len(), c], normal(0.2));
    push(
        "lvl_embed.weight".into(),
        vec![cfg.num_scales(), c],
        normal(0.2),
    );
    push("word_embed.weight".into(), vec![c, cvae], fan_in(1.0, cvae));
    push("word_embed.bias".into(), vec![c], BIAS);
    if cfg.shared_aln {
        push(
            "shared_ada_lin.1.weight".into(),
            vec![6 * c, c],
            fan_in(0.5, c),
        );
        push("shared_ada_lin.1.bias".into(), vec![6 * c], BIAS);
    }
    for i in 0..cfg.depth {
        let p = |s: &str| format!("blocks.{i}.{s}");
        if cfg.shared_aln {
            push(p("ada_gss"), vec![1, 1, 6, c], normal(0.2));
        } else {
            push(p("ada_lin.1.weight"), vec![6 * c, c], fan_in(0.5, c));
            push(p("ada_lin.1.bias"), vec![6 * c], BIAS);
        }
        if cfg.attn_l2_norm {
            push(
                p("attn.scale_mul_1H11"),
                vec![1, cfg.num_heads, 1, 1],
                Init {
                    mean: 4f32.ln(),
                    std: 0.1,
                },
            );
        }
        push(p("attn.q_bias"), vec![c], BIAS);
        push(p("attn.v_bias"), vec![c], BIAS);
        push(p("attn.mat_qkv.weight"), vec![3 * c, c], fan_in(1.0, c));
        push(p("attn.proj.weight"), vec![c, c], fan_in(1.0, c));
        push(p("attn.proj.bias"), vec![c], BIAS);
        push(p("ffn.fc1.weight"), vec![hidden, c], fan_in(1.0, c));
        push(p("ffn.fc1.bias"), vec![hidden], BIAS);
        push(p("ffn.fc2.weight"), vec![c, hidden], fan_in(1.0, hidden));
        push(p("ffn.fc2.bias"), vec![c], BIAS);
    }
    push(
        "head_nm.ada_lin.1.weight".into(),
        vec![2 * c, c],
        fan_in(0.5, c),
    );
    push("head_nm.ada_lin.1.bias".into(), vec![2 * c], BIAS);
    push("head.weight".into(), vec![vocab, c], fan_in(1.0, c));
    push("head.bias".into(), vec![vocab], BIAS);
    v
}

/// A seeded initialisation for a VQ-VAE tensor, chosen from its name and shape: convs
/// `N(0, 1/fan_in)`, GroupNorm weights around 1, small biases, an `N(0, 1)` codebook.
fn vae_init(name: &str, shape: &[usize]) -> Init {
    if name.ends_with("embedding.weight") {
        normal(1.0)
    } else if shape.len() == 4 {
        fan_in(1.0, shape[1..].iter().product())
    } else if name.ends_with(".weight") {
        Init {
            mean: 1.0,
            std: 0.1,
        }
    } else if name.contains("norm") {
        normal(0.1)
    } else {
        BIAS
    }
}

fn vae_specs(cfg: &VqVaeConfig) -> Result<Vec<(String, Vec<usize>, Init)>> {
    Ok(VqVae::tensor_shapes(cfg)?
        .into_iter()
        .map(|(n, s)| {
            let init = vae_init(&n, &s);
            (n, s, init)
        })
        .collect())
}

/// A safetensors buffer (all `F32`) holding the tensors `specs`, in order, with `metadata`;
/// tensor `i`'s data is written by `fill(i, name, out)`, called in parallel.
///
/// A small writer for tests and tools (arvis-core only reads safetensors).
pub fn write_safetensors<F>(
    specs: &[TensorSpec],
    metadata: &BTreeMap<String, String>,
    fill: F,
) -> Result<Vec<u8>>
where
    F: Fn(usize, &str, &mut [f32]) -> Result<()> + Sync,
{
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in specs {
        let bytes = 4 * shape.iter().product::<usize>();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut text = serde_json::Value::Object(header).to_string();
    // Pad the header to 8 bytes, as the reference writer does.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let data_start = 8 + text.len();
    let mut buf = vec![0u8; data_start + offset];
    let (head, mut data) = buf.split_at_mut(data_start);
    head[..8].copy_from_slice(&(text.len() as u64).to_le_bytes());
    head[8..].copy_from_slice(text.as_bytes());
    let mut regions = Vec::with_capacity(specs.len());
    for (i, (name, shape)) in specs.iter().enumerate() {
        let (region, rest) = data.split_at_mut(4 * shape.iter().product::<usize>());
        regions.push((i, name.as_str(), region));
        data = rest;
    }
    regions
        .into_par_iter()
        .try_for_each(|(i, name, region)| -> Result<()> {
            let mut vals = vec![0f32; region.len() / 4];
            fill(i, name, &mut vals)?;
            for (dst, v) in region.chunks_exact_mut(4).zip(&vals) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
            Ok(())
        })?;
    Ok(buf)
}

/// The `arvis.*` metadata of a VAR weights file for these configurations.
pub fn var_metadata(
    var: &VarConfig,
    vae: &VqVaeConfig,
    source: &str,
) -> Result<BTreeMap<String, String>> {
    let cfg = VarFileConfig {
        var: var.clone(),
        vae: vae.clone(),
    };
    file_metadata(VAR_FAMILY, &cfg, source)
}

/// The `arvis.*` metadata of any model file: `arvis.family`, `arvis.config` (`config` as JSON)
/// and `arvis.source` — shared by every family's random-weight writer.
pub fn file_metadata(
    family: &str,
    config: &impl serde::Serialize,
    source: &str,
) -> Result<BTreeMap<String, String>> {
    let json = serde_json::to_string(config)
        .map_err(|e| ModelError::config(format!("cannot serialise the configuration: {e}")))?;
    Ok(BTreeMap::from([
        (META_FAMILY.to_owned(), family.to_owned()),
        (META_CONFIG.to_owned(), json),
        (META_SOURCE.to_owned(), source.to_owned()),
    ]))
}

/// The smallest sensible VAR and VQ-VAE configurations for tests and examples: one block of
/// width 64, 10 classes, a 16-code VQ-VAE (`ch` 8, `ch_mult` [1, 2]) over `patch_nums`
/// (images of `4·last` pixels). Files made from them load and generate in milliseconds.
pub fn tiny_configs(patch_nums: &[usize]) -> (VarConfig, VqVaeConfig) {
    let var = VarConfig {
        depth: 1,
        embed_dim: 64,
        num_heads: 1,
        num_classes: 10,
        patch_nums: patch_nums.to_vec(),
        ..VarConfig::official(1, false)
    };
    let vae = VqVaeConfig {
        vocab_size: 16,
        z_channels: 4,
        ch: 8,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        norm_groups: 4,
        patch_nums: patch_nums.to_vec(),
        ..VqVaeConfig::default()
    };
    (var, vae)
}

/// A complete VAR weights file (transformer + `vae.`-prefixed VQ-VAE + metadata) with seeded
/// random values, as bytes; load it with `Weights::from_bytes` and [`Var::load`].
pub fn random_weights_bytes(var: &VarConfig, vae: &VqVaeConfig, seed: u64) -> Result<Vec<u8>> {
    var.validate()?;
    let mut all = var_specs(var, vae.vocab_size, vae.z_channels);
    all.extend(
        vae_specs(vae)?
            .into_iter()
            .map(|(n, s, i)| (format!("vae.{n}"), s, i)),
    );
    let metadata = var_metadata(
        var,
        vae,
        &format!("arvis-models random weights, seed {seed}"),
    )?;
    let all: Vec<SeededTensor> = all
        .into_iter()
        .map(|(n, s, Init { mean, std })| (n, s, (mean, std)))
        .collect();
    write_seeded_normals(&all, &metadata, seed)
}

/// A tensor's name, shape and `(mean, std)`: drawn as `mean + std · N(0, 1)`.
pub(crate) type SeededTensor = (String, Vec<usize>, (f32, f32));

/// The safetensors bytes of `all`, tensor `i` drawn from `SeededRng::new(seed).fork(i)` as
/// `mean + std · N(0, 1)`: the random-weight files of every family.
pub(crate) fn write_seeded_normals(
    all: &[SeededTensor],
    metadata: &BTreeMap<String, String>,
    seed: u64,
) -> Result<Vec<u8>> {
    let specs: Vec<TensorSpec> = all.iter().map(|(n, s, _)| (n.clone(), s.clone())).collect();
    let root = SeededRng::new(seed);
    write_safetensors(&specs, metadata, |i, _, out| {
        let (mean, std) = all[i].2;
        root.fork(i as u64).fill_normal(out);
        for v in out.iter_mut() {
            *v = mean + std * *v;
        }
        Ok(())
    })
}

impl Var {
    /// A VAR model with seeded random weights (see the [module docs](super::random)): for
    /// tests, demos and benchmarks. Goes through [`Var::load`] like a real file.
    pub fn random(config: VarConfig, vae_config: VqVaeConfig, seed: u64) -> Result<Var> {
        let bytes = random_weights_bytes(&config, &vae_config, seed)?;
        let weights = Weights::from_bytes(format!("<random VAR, seed {seed}>"), bytes)?;
        Var::load(&weights)
    }
}
