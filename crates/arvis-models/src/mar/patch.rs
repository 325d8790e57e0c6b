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
        // [B, c, side, p, side, p] → [B, side, side, c, p, p]: an exact copy on the latents'
        // device.
        Ok(latents
            .reshape(&[b, c, side, p, side, p])?
            .permute(&[0, 2, 4, 1, 3, 5])?
            .reshape(&[b, side * side, c * p * p])?)
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
        let w = side * p;
        // [B, side, side, c, p, p] → [B, c, side, p, side, p]: an exact copy on the tokens'
        // device.
        Ok(tokens
            .reshape(&[b, side, side, c, p, p])?
            .permute(&[0, 3, 1, 4, 2, 5])?
            .reshape(&[b, c, w, w])?)
    }
}
