//! [`VarConfig`]: the hyper-parameters of a VAR transformer, as stored in the `"var"` object of
//! a weights file's `arvis.config` metadata.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Hyper-parameters of a VAR transformer (`models/var.py`, `VAR.__init__`).
///
/// The official `build_vae_var` derives `embed_dim = 64·depth` and `num_heads = depth`; here
/// both are explicit so any consistent shape can be loaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VarConfig {
    /// Number of transformer blocks.
    pub depth: usize,
    /// Width `C` of the residual stream (also the condition width `D`).
    pub embed_dim: usize,
    /// Attention heads; `embed_dim` must be a multiple of it.
    pub num_heads: usize,
    /// FFN hidden width is `round(embed_dim · mlp_ratio)`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Number of real classes; the class table has one more row, the null (unconditional)
    /// class `num_classes`.
    pub num_classes: usize,
    /// Epsilon of the affine-free layer norms.
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// One AdaLN linear shared by all blocks (`shared_ada_lin`), each block adding its own
    /// learned `ada_gss` offsets; otherwise every block has its own `ada_lin`.
    #[serde(default)]
    pub shared_aln: bool,
    /// L2-normalised q and k with a learned per-head scale and attention scale 1; otherwise the
    /// attention scale is `0.25 / √head_dim`.
    #[serde(default = "default_true")]
    pub attn_l2_norm: bool,
    /// Side of the token map at each scale, smallest first.
    pub patch_nums: Vec<usize>,
}

fn default_mlp_ratio() -> f64 {
    4.0
}

fn default_norm_eps() -> f64 {
    1e-6
}

fn default_true() -> bool {
    true
}

impl VarConfig {
    /// The official configuration of VAR-d`depth` (`build_vae_var`): width `64·depth`, `depth`
    /// heads, MLP ratio 4, 1000 classes, eps 1e-6, L2-normalised attention, the ten scales
    /// 1…16; `shared_aln` as given (only VAR-d36 uses it).
    pub fn official(depth: usize, shared_aln: bool) -> Self {
        VarConfig {
            depth,
            embed_dim: 64 * depth,
            num_heads: depth,
            mlp_ratio: 4.0,
            num_classes: 1000,
            norm_eps: 1e-6,
            shared_aln,
            attn_l2_norm: true,
            patch_nums: vec![1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
        }
    }

    /// Checks that the numbers describe a buildable model.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::Config { msg });
        if self.depth == 0 {
            return bad("depth must be >= 1".into());
        }
        if self.embed_dim == 0
            || self.num_heads == 0
            || !self.embed_dim.is_multiple_of(self.num_heads)
        {
            return bad(format!(
                "embed_dim {} must be a positive multiple of num_heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0) || self.ffn_hidden() == 0 {
            return bad(format!("mlp_ratio {} must be > 0", self.mlp_ratio));
        }
        if self.num_classes == 0 || u32::try_from(self.num_classes).is_err() {
            return bad(format!("num_classes {} out of range", self.num_classes));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps {} must be > 0", self.norm_eps));
        }
        if self.patch_nums.is_empty() || self.patch_nums.contains(&0) {
            return bad(format!(
                "patch_nums {:?} must be non-empty and positive",
                self.patch_nums
            ));
        }
        Ok(())
    }

    /// Per-head width `embed_dim / num_heads`.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// FFN hidden width, `round(embed_dim · mlp_ratio)` (Python's round: ties to even).
    pub fn ffn_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio).round_ties_even() as usize
    }

    /// Number of scales.
    pub fn num_scales(&self) -> usize {
        self.patch_nums.len()
    }

    /// Tokens of scale `si`, `pn²`.
    pub fn scale_len(&self, si: usize) -> usize {
        self.patch_nums[si] * self.patch_nums[si]
    }

    /// Tokens of all scales, `L = Σ pn²` (680 for the official ten scales).
    pub fn seq_len(&self) -> usize {
        self.patch_nums.iter().map(|p| p * p).sum()
    }

    /// `(begin, end)` token range of every scale in the flattened sequence.
    pub fn begin_ends(&self) -> Vec<(usize, usize)> {
        let mut cur = 0;
        self.patch_nums
            .iter()
            .map(|p| {
                let be = (cur, cur + p * p);
                cur += p * p;
                be
            })
            .collect()
    }

    /// The guidance strength at scale `si`: `cfg · si / (num_scales − 1)` (so no guidance at the
    /// first scale), computed in `f64` like the reference's Python floats. With one scale the
    /// ratio is taken as 0.
    pub fn cfg_strength(&self, cfg: f32, si: usize) -> f64 {
        let last = self.num_scales().saturating_sub(1);
        if last == 0 {
            return 0.0;
        }
        f64::from(cfg) * (si as f64 / last as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_d16_numbers() {
        let c = VarConfig::official(16, false);
        assert!(c.validate().is_ok());
        assert_eq!(c.embed_dim, 1024);
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.ffn_hidden(), 4096);
        assert_eq!(c.seq_len(), 680);
        assert_eq!(c.begin_ends()[9], (424, 680));
        assert!((c.cfg_strength(4.0, 1) - 4.0 / 9.0).abs() < 1e-15);
        assert_eq!(c.cfg_strength(4.0, 0), 0.0);
    }

    #[test]
    fn parses_contract_json() -> std::result::Result<(), serde_json::Error> {
        let c: VarConfig = serde_json::from_str(
            r#"{"depth": 2, "embed_dim": 128, "num_heads": 2, "mlp_ratio": 4.0,
                "num_classes": 10, "norm_eps": 1e-6, "shared_aln": true,
                "attn_l2_norm": true, "patch_nums": [1,2,3,4,5,6,8,10,13,16]}"#,
        )?;
        assert!(c.shared_aln);
        assert_eq!(c.head_dim(), 64);
        Ok(())
    }

    #[test]
    fn rejects_bad_shapes() {
        let mut c = VarConfig::official(2, false);
        c.num_heads = 3;
        assert!(c.validate().is_err());
        let mut c = VarConfig::official(2, false);
        c.patch_nums.clear();
        assert!(c.validate().is_err());
    }
}
