//! Token ↔ latent layout: the official `MAR.patchify` / `MAR.unpatchify`.
//!
//! A token is one `p × p` patch of the latent map, `p = patch_size`, over all `c` channels:
//! token `hy·side + wx` holds latent pixel `(hy·p + i, wx·p + j)` of channel `ch` at channel
//! `ch·p² + i·p + j` (the reference's `einsum('nchpwq->nhwcpq')`: channel-major, then the
//! patch's rows, then its columns). Sampling only needs `unpatchify`; `patchify` is its
//! inverse, for callers that start from an encoded image.

use arvis_core::Tensor;

use crate::error::{ModelError, Result};
use crate::mar::config::MarConfig;

impl MarConfig {
    /// `[B, vae_embed_dim, side·p, side·p]` latents → `[B, S, vae_embed_dim·p²]` tokens
    /// (official `patchify`). Errors when the latents do not have that shape.
    pub fn patchify(&self, latents: &Tensor) -> Result<Tensor> {
        let (side, p, c) = (self.seq_side(), self.patch_size, self.vae_embed_dim);
        let w = side * p;
        let b = match *latents.shape() {
            [b, ch, h, wd] if ch == c && h == w && wd == w => b,
            _ => {
                return Err(ModelError::request(format!(
                    "patchify: latents have shape {:?}, expected [B, {c}, {w}, {w}]",
                    latents.shape()
                )));
            }
        };
        let src = latents.try_to_vec()?;
        let t = self.token_embed_dim();
        let mut out = vec![0f32; b * side * side * t];
        for_each_pair(b, side, p, c, |tok, lat| out[tok] = src[lat]);
        Ok(Tensor::from_vec(out, &[b, side * side, t])?)
    }

    /// `[B, S, vae_embed_dim·p²]` tokens → `[B, vae_embed_dim, side·p, side·p]` latents
    /// (official `unpatchify`). Errors when the tokens do not have that shape.
    pub fn unpatchify(&self, tokens: &Tensor) -> Result<Tensor> {
        let (side, p, c) = (self.seq_side(), self.patch_size, self.vae_embed_dim);
        let (s, t) = (self.seq_len(), self.token_embed_dim());
        let b = match *tokens.shape() {
            [b, n, d] if n == s && d == t => b,
            _ => {
                return Err(ModelError::request(format!(
                    "unpatchify: tokens have shape {:?}, expected [B, {s}, {t}]",
                    tokens.shape()
                )));
            }
        };
        let src = tokens.try_to_vec()?;
        let w = side * p;
        let mut out = vec![0f32; b * c * w * w];
        for_each_pair(b, side, p, c, |tok, lat| out[lat] = src[tok]);
        Ok(Tensor::from_vec(out, &[b, c, w, w])?)
    }
}

/// Calls `f(token_index, latent_index)` for every value: the flat row-major offsets of the same
/// value in `[B, side², c·p²]` tokens and in `[B, c, side·p, side·p]` latents.
fn for_each_pair(b: usize, side: usize, p: usize, c: usize, mut f: impl FnMut(usize, usize)) {
    let (w, t) = (side * p, c * p * p);
    for n in 0..b {
        for hy in 0..side {
            for wx in 0..side {
                let tok = ((n * side + hy) * side + wx) * t;
                for ch in 0..c {
                    for i in 0..p {
                        for j in 0..p {
                            let (y, x) = (hy * p + i, wx * p + j);
                            f(tok + (ch * p + i) * p + j, ((n * c + ch) * w + y) * w + x);
                        }
                    }
                }
            }
        }
    }
}
