//! LlamaGen's 2D rotary position embedding (RoPE) with interleaved pairs: [`RopeTable`] (the
//! precomputed cos/sin table) and [`rope2d`] (CPU, or `shaders/rope2d.wgsl` on the GPU).
//!
//! LlamaGen (`precompute_freqs_cis_2d`, `apply_rotary_emb` in its `gpt.py`): a head of `D`
//! dims holds `D/2` pairs `(x[2p], x[2p+1])` (interleaved, GPT-J style). With
//! `f_i = base^(−2i / (D/2))` for `i < D/4`, grid token `(r, c)` rotates pair `p < D/4` by the
//! angle `r·f_p` and pair `p >= D/4` by `c·f_{p−D/4}`. The sequence is `prefix` class tokens,
//! then the grid in raster order (table row `prefix + r·width + c`); the class tokens' rows are
//! **cos = sin = 0**, exactly as in LlamaGen (so their rotated q and k are zero, and a class
//! key contributes logit 0 to every query).

use arvis_core::gpu::{Dispatch, GpuBuffer, grid_1d};
use arvis_core::{Device, Tensor};

use crate::error::{AttentionError, Result};
use crate::gpu;

/// Precomputed `cos`/`sin` of every (position, pair): two `[rows, pairs]` tensors on one device.
#[derive(Clone, Debug)]
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
    rows: usize,
    pairs: usize,
}

impl RopeTable {
    /// LlamaGen's table for a square `grid × grid` token map (see the module documentation):
    /// `prefix + grid²` rows of `head_dim / 2` pairs. LlamaGen uses `base = 10000`,
    /// `prefix = 1` (the class token).
    ///
    /// Errors: [`AttentionError::Rope`] when `head_dim` is not a multiple of 4.
    pub fn llamagen(grid: usize, head_dim: usize, base: f64, prefix: usize) -> Result<Self> {
        Self::grid_2d(grid, grid, head_dim, base, prefix)
    }

    /// [`llamagen`](Self::llamagen) for a `height × width` grid.
    pub fn grid_2d(
        height: usize,
        width: usize,
        head_dim: usize,
        base: f64,
        prefix: usize,
    ) -> Result<Self> {
        if !head_dim.is_multiple_of(4) {
            return Err(AttentionError::Rope(format!(
                "2D RoPE needs a head dim that is a multiple of 4, got {head_dim}"
            )));
        }
        let pairs = head_dim / 2;
        let quarter = head_dim / 4;
        let freqs: Vec<f64> = (0..quarter)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / pairs as f64))
            .collect();
        let rows = prefix + height * width;
        let (mut cos, mut sin) = (vec![0.0f32; rows * pairs], vec![0.0f32; rows * pairs]);
        for g in 0..height * width {
            let (r, c) = (g / width, g % width);
            let row = prefix + g;
            for p in 0..pairs {
                let angle = if p < quarter {
                    r as f64 * freqs[p]
                } else {
                    c as f64 * freqs[p - quarter]
                };
                cos[row * pairs + p] = angle.cos() as f32;
                sin[row * pairs + p] = angle.sin() as f32;
            }
        }
        Ok(RopeTable {
            cos: Tensor::from_vec(cos, &[rows, pairs])?,
            sin: Tensor::from_vec(sin, &[rows, pairs])?,
            rows,
            pairs,
        })
    }

    /// The table on `device` (a cheap clone when it is already there).
    pub fn to_device(&self, device: Device) -> Result<Self> {
        Ok(RopeTable {
            cos: self.cos.to_device(device)?,
            sin: self.sin.to_device(device)?,
            ..*self
        })
    }

    /// Positions (rows) in the table.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Pairs per position (`head_dim / 2`).
    pub fn pairs(&self) -> usize {
        self.pairs
    }

    /// `cos`, `[rows, pairs]`.
    pub fn cos(&self) -> &Tensor {
        &self.cos
    }

    /// `sin`, `[rows, pairs]`.
    pub fn sin(&self) -> &Tensor {
        &self.sin
    }
}

/// Applies the table's rotation to `x [..., L, D]` (e.g. q or k as `[B, H, L, D]`), sequence
/// row `l` at table position `start + l`: `(x₀, x₁) ↦ (x₀·cos − x₁·sin, x₀·sin + x₁·cos)` for
/// every interleaved pair. Runs on the device of `x`, which must be the table's.
///
/// Errors: [`AttentionError::Rope`] when `x` has rank < 2, `D != 2·pairs`, or
/// `start + L > rows`; [`AttentionError::Device`] when `x` and the table are on different
/// devices.
pub fn rope2d(x: &Tensor, table: &RopeTable, start: usize) -> Result<Tensor> {
    const OP: &str = "rope2d";
    let shape = x.shape();
    let [.., l, d] = *shape else {
        return Err(AttentionError::Rope(format!(
            "x must be [..., L, D], found shape {shape:?}"
        )));
    };
    if d != 2 * table.pairs {
        return Err(AttentionError::Rope(format!(
            "x has head dim {d} but the table rotates {} pairs",
            table.pairs
        )));
    }
    if start + l > table.rows {
        return Err(AttentionError::Rope(format!(
            "positions {start}..{} exceed the table's {} rows",
            start + l,
            table.rows
        )));
    }
    let pairs = table.pairs;
    match gpu::context_of(OP, &[x, &table.cos, &table.sin])? {
        Some(ctx) => {
            let n = x.numel() / 2;
            let out = GpuBuffer::uninit(&ctx, x.numel())?;
            if n > 0 {
                let (groups, gx) = grid_1d(n, 256, ctx.info().max_workgroups_per_dim)?;
                let params = [n as u32, gx, l as u32, pairs as u32, start as u32];
                ctx.launch(&Dispatch {
                    kernel: &gpu::ROPE2D,
                    constants: &[],
                    buffers: &[
                        gpu::buf(x),
                        gpu::buf(&table.cos),
                        gpu::buf(&table.sin),
                        &out,
                    ],
                    params: &gpu::param_bytes(&params),
                    groups,
                    label: "rope2d",
                })?;
            }
            Ok(Tensor::from_gpu(&ctx, out, shape)?)
        }
        None => {
            let (cos, sin) = (table.cos.to_vec(), table.sin.to_vec());
            let mut out = x.to_vec();
            if l > 0 && d > 0 {
                for (r, row) in out.chunks_exact_mut(d).enumerate() {
                    let pos = start + r % l;
                    let (c, s) = (&cos[pos * pairs..][..pairs], &sin[pos * pairs..][..pairs]);
                    for (p, xy) in row.chunks_exact_mut(2).enumerate() {
                        let (x0, x1) = (xy[0], xy[1]);
                        xy[0] = x0 * c[p] - x1 * s[p];
                        xy[1] = x0 * s[p] + x1 * c[p];
                    }
                }
            }
            Ok(Tensor::from_vec(out, shape)?)
        }
    }
}
