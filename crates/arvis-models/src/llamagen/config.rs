//! [`LlamaGenConfig`]: the hyper-parameters of LlamaGen's class-conditional GPT.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Hyper-parameters of the GPT (official `ModelArgs` of `autoregressive/models/gpt.py`), as
/// stored under `"gpt"` in a weights file's `arvis.config`. Only the class-conditional (`c2i`)
/// model with one class token and no grouped-query attention is supported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaGenConfig {
    /// Width (768 for GPT-B).
    pub dim: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads (head dim `dim / n_head` = 64 in every release).
    pub n_head: usize,
    /// Image-token vocabulary (16384 = the VQ codebook).
    pub vocab_size: usize,
    /// Image tokens per sample, a square `grid²` (256 for 256×256 images with VQ-16).
    pub block_size: usize,
    /// Real classes (1000); class `num_classes` is the null class of guidance.
    pub num_classes: usize,
    /// *Optional.* Class tokens before the image (1).
    #[serde(default = "one")]
    pub cls_token_num: usize,
    /// *Optional.* The SwiGLU hidden size is rounded up to a multiple of this (256).
    #[serde(default = "default_multiple_of")]
    pub multiple_of: usize,
    /// *Optional.* Multiplier of the SwiGLU hidden size (`None` in the releases).
    #[serde(default)]
    pub ffn_dim_multiplier: Option<f64>,
    /// *Optional.* RMSNorm epsilon (1e-5).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f32,
    /// *Optional.* RoPE base (10000).
    #[serde(default = "default_rope_base")]
    pub rope_base: f64,
}

fn one() -> usize {
    1
}
fn default_multiple_of() -> usize {
    256
}
fn default_norm_eps() -> f32 {
    1e-5
}
fn default_rope_base() -> f64 {
    10000.0
}

impl LlamaGenConfig {
    fn preset(n_layer: usize, n_head: usize, dim: usize) -> Self {
        LlamaGenConfig {
            dim,
            n_layer,
            n_head,
            vocab_size: 16384,
            block_size: 256,
            num_classes: 1000,
            cls_token_num: 1,
            multiple_of: 256,
            ffn_dim_multiplier: None,
            norm_eps: 1e-5,
            rope_base: 10000.0,
        }
    }

    /// GPT-B (111M): 12 layers, 12 heads, dim 768.
    pub fn gpt_b() -> Self {
        Self::preset(12, 12, 768)
    }

    /// GPT-L (343M): 24 layers, 16 heads, dim 1024.
    pub fn gpt_l() -> Self {
        Self::preset(24, 16, 1024)
    }

    /// GPT-XL (775M): 36 layers, 20 heads, dim 1280.
    pub fn gpt_xl() -> Self {
        Self::preset(36, 20, 1280)
    }

    /// GPT-XXL (1.4B): 48 layers, 24 heads, dim 1536.
    pub fn gpt_xxl() -> Self {
        Self::preset(48, 24, 1536)
    }

    /// Head dimension `dim / n_head`.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_head
    }

    /// Side of the square token grid, `√block_size`.
    pub fn grid(&self) -> usize {
        (self.block_size as f64).sqrt().round() as usize
    }

    /// SwiGLU hidden size: `find_multiple(int(2·4·dim/3) [· multiplier], multiple_of)` (2048
    /// for GPT-B).
    pub fn ffn_hidden(&self) -> usize {
        let mut h = 2 * 4 * self.dim / 3;
        if let Some(m) = self.ffn_dim_multiplier {
            h = (m * h as f64) as usize;
        }
        h.div_ceil(self.multiple_of) * self.multiple_of
    }

    /// Checks the invariants the model relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::config(msg));
        if self.dim == 0 || self.n_layer == 0 || self.n_head == 0 || self.vocab_size == 0 {
            return bad("dim, n_layer, n_head and vocab_size must be >= 1".into());
        }
        if !self.dim.is_multiple_of(self.n_head) || !self.head_dim().is_multiple_of(4) {
            return bad(format!(
                "dim {} must split into {} heads of a multiple of 4 (2D RoPE)",
                self.dim, self.n_head
            ));
        }
        let g = self.grid();
        if g * g != self.block_size || g == 0 {
            return bad(format!("block_size {} is not a square", self.block_size));
        }
        if self.cls_token_num != 1 {
            return bad(format!(
                "cls_token_num {} (only 1 class token is supported)",
                self.cls_token_num
            ));
        }
        if self.multiple_of == 0 || self.vocab_size > u32::MAX as usize {
            return bad("multiple_of must be >= 1 and vocab_size < 2^32".into());
        }
        Ok(())
    }
}
