//! Helpers shared by the arvis-models integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

use arvis_core::{Tensor, Weights};
use arvis_models::var::{VarConfig, VqVaeConfig};

/// Boxed error of the tests.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Path of a golden fixture under `tests/golden/`.
pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(name)
}

/// Opens a golden fixture, failing with a message that says how to make it when it is missing
/// (a missing fixture must never let a test pass silently).
pub fn open_golden(name: &str) -> TestResult<Weights> {
    let path = golden_path(name);
    if !path.is_file() {
        return Err(format!(
            "golden fixture {} is missing: generate it with `/work/venv/bin/python \
             xtask/py/golden_var.py --var-repo <FoundationVision/VAR checkout>` (see \
             tests/golden/README.md)",
            path.display()
        )
        .into());
    }
    Ok(Weights::open(&path)?)
}

/// A tensor of integer values stored as f32, as `u32`s (errors on a non-integer value).
pub fn as_indices(t: &Tensor) -> TestResult<Vec<u32>> {
    t.to_vec()
        .into_iter()
        .map(|v| {
            if v >= 0.0 && v.fract() == 0.0 && v < 16_777_216.0 {
                Ok(v as u32)
            } else {
                Err(format!("{v} is not a non-negative integer").into())
            }
        })
        .collect()
}

/// Largest absolute difference and largest reference magnitude of a comparison.
#[derive(Clone, Copy, Debug, Default)]
pub struct Errs {
    pub max_abs: f64,
    pub max_ref: f64,
}

impl Errs {
    pub fn of(got: &Tensor, want: &Tensor) -> TestResult<Errs> {
        if got.shape() != want.shape() {
            return Err(format!("shape {:?} vs expected {:?}", got.shape(), want.shape()).into());
        }
        Ok(Errs::of_slices(&got.to_vec(), &want.to_vec()))
    }

    /// [`Errs::of`] over host values of equal length.
    pub fn of_slices(got: &[f32], want: &[f32]) -> Errs {
        let mut e = Errs::default();
        for (&a, &b) in got.iter().zip(want) {
            let (a, b) = (f64::from(a), f64::from(b));
            e.max_abs = e.max_abs.max((a - b).abs());
            e.max_ref = e.max_ref.max(b.abs());
        }
        e
    }

    pub fn merge(self, o: Errs) -> Errs {
        Errs {
            max_abs: self.max_abs.max(o.max_abs),
            max_ref: self.max_ref.max(o.max_ref),
        }
    }
}

/// A tiny VAR (2 blocks, width 128, 2 heads, 10 classes) with a tiny VQ-VAE whose five scales
/// `[1, 2, 3, 4, 6]` include overlapping area windows (6 → 4) and give 12×12 images.
pub fn tiny_configs(shared_aln: bool) -> (VarConfig, VqVaeConfig) {
    let patch_nums = vec![1, 2, 3, 4, 6];
    let var = VarConfig {
        depth: 2,
        embed_dim: 128,
        num_heads: 2,
        num_classes: 10,
        shared_aln,
        patch_nums: patch_nums.clone(),
        ..VarConfig::official(2, shared_aln)
    };
    let vae = VqVaeConfig {
        vocab_size: 64,
        z_channels: 8,
        ch: 32,
        ch_mult: vec![1, 2],
        num_res_blocks: 1,
        patch_nums,
        ..VqVaeConfig::default()
    };
    (var, vae)
}

/// The official ten scales with the same tiny widths (no decode needed by the callers).
pub fn tiny_configs_ten_scales(shared_aln: bool) -> (VarConfig, VqVaeConfig) {
    let (mut var, mut vae) = tiny_configs(shared_aln);
    var.patch_nums = vec![1, 2, 3, 4, 5, 6, 8, 10, 13, 16];
    vae.patch_nums = var.patch_nums.clone();
    vae.ch_mult = vec![1, 1, 2, 2, 4];
    vae.num_res_blocks = 2;
    (var, vae)
}

/// `got` against the reference `want` within `tol` (shapes first), with the error summary.
pub fn check(
    what: &str,
    got: &Tensor,
    want: &Tensor,
    tol: arvis_core::Tolerance,
) -> TestResult<Errs> {
    if got.shape() != want.shape() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        )
        .into());
    }
    tol.check(&got.to_vec(), &want.to_vec())
        .map_err(|m| format!("{what}: {m}"))?;
    Errs::of(got, want)
}
