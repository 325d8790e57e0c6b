//! [`LlamaGenVq`]: encoder, quantiser and decoder of LlamaGen's tokenizer (official `VQModel`).

use std::cell::RefCell;

use arvis_core::{SeededRng, Tensor, WeightsScope};

use crate::blocks::Conv2d;
use crate::error::{Result, TokenizerError};
use crate::llamagen::codec::{LlamaGenDecoder, LlamaGenEncoder};
use crate::llamagen::config::LlamaGenVqConfig;
use crate::llamagen::quant::NormalizedCodebook;
use crate::params::{Backend, Params};

/// LlamaGen's VQ tokenizer (VQ-16 for the released class-conditional models, or VQ-8).
///
/// Images are `[B, in_channels, H, W]` in `[-1, 1]` with `H`, `W` multiples of the downsample
/// factor `f` (16); codes are `B·(H/f)·(W/f)` indices in raster order, row-major over
/// `(b, y, x)` — the order LlamaGen's GPT predicts them in.
#[derive(Clone, Debug)]
pub struct LlamaGenVq {
    cfg: LlamaGenVqConfig,
    encoder: LlamaGenEncoder,
    decoder: LlamaGenDecoder,
    quantize: NormalizedCodebook,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
}

impl LlamaGenVq {
    fn build(p: &Params<'_, '_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        cfg.validate()?;
        let (z, d) = (cfg.z_channels, cfg.codebook_embed_dim);
        Ok(LlamaGenVq {
            cfg: cfg.clone(),
            encoder: LlamaGenEncoder::build(&p.scope("encoder"), cfg)?,
            decoder: LlamaGenDecoder::build(&p.scope("decoder"), cfg)?,
            quantize: NormalizedCodebook::build(&p.scope("quantize"), cfg)?,
            quant_conv: Conv2d::build_same(&p.scope("quant_conv"), z, d, 1)?,
            post_quant_conv: Conv2d::build_same(&p.scope("post_quant_conv"), d, z, 1)?,
        })
    }

    /// Loads every tensor of the official `VQModel` state dict (keys as in the checkpoint's
    /// `ckpt["model"]`, e.g. `encoder.conv_blocks.0.res.0.conv1.weight`,
    /// `quantize.embedding.weight`) from `scope` — `weights.scope("vq")` for arvis files, or
    /// `weights.scope_on("vq", device)` to place the model on a device. Each tensor is checked
    /// against the shape `cfg` implies; the buffer `quantize.codebook_used` is not read.
    pub fn load(scope: &WeightsScope<'_>, cfg: &LlamaGenVqConfig) -> Result<Self> {
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// **Test and demo utility**: a model with seeded random weights (convs ~ N(0, 1/fan_in),
    /// norms ≈ 1, codebook ~ N(0, 1)); its outputs mean nothing.
    pub fn random(cfg: &LlamaGenVqConfig, seed: u64) -> Result<Self> {
        let backend = Backend::Random(Box::new(RefCell::new(SeededRng::new(seed))));
        Self::build(&Params::new(&backend), cfg)
    }

    /// The name and shape of every tensor [`LlamaGenVq::load`] reads for `cfg`, relative to
    /// the model's scope, in load order (what a converter must write).
    pub fn tensor_shapes(cfg: &LlamaGenVqConfig) -> Result<Vec<(String, Vec<usize>)>> {
        let backend = Backend::Record(RefCell::new(Vec::new()));
        Self::build(&Params::new(&backend), cfg)?;
        match backend {
            Backend::Record(names) => Ok(names.into_inner()),
            _ => Ok(Vec::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaGenVqConfig {
        &self.cfg
    }

    /// The quantiser.
    pub fn codebook(&self) -> &NormalizedCodebook {
        &self.quantize
    }

    /// The encoder.
    pub fn encoder(&self) -> &LlamaGenEncoder {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &LlamaGenDecoder {
        &self.decoder
    }

    /// `quant_conv(encoder(img))`: the continuous latent `[B, D, H/f, W/f]` that is quantised.
    pub fn img_to_latent(&self, img: &Tensor) -> Result<Tensor> {
        let (c, f) = (self.cfg.in_channels, self.cfg.downsample());
        let s = img.shape();
        if s.len() != 4 || s[1] != c || !s[2].is_multiple_of(f) || !s[3].is_multiple_of(f) {
            return Err(TokenizerError::shape(
                "LlamaGenVq::encode",
                format!("image [B, {c}, H, W] with H and W multiples of {f}"),
                s,
            ));
        }
        self.quant_conv.forward(&self.encoder.forward(img)?)
    }

    /// Encodes images `[B, in_channels, H, W]` in `[-1, 1]` to raster codes (`B·h·w`,
    /// row-major over `(b, y, x)`; official `encode(img)[2][2]`).
    pub fn encode(&self, img: &Tensor) -> Result<Vec<u32>> {
        let z = self.img_to_latent(img)?;
        let s = z.shape().to_vec();
        let z = z
            .permute(&[0, 2, 3, 1])?
            .reshape(&[s[0] * s[2] * s[3], s[1]])?;
        self.quantize.nearest(&z)
    }

    /// The quantised latent `[B, D, h, w]` of raster codes.
    pub fn indices_to_latent(
        &self,
        indices: &[u32],
        b: usize,
        h: usize,
        w: usize,
    ) -> Result<Tensor> {
        self.quantize.embed(indices, b, h, w)
    }

    /// `decoder(post_quant_conv(quant))` for a latent `[B, D, h, w]`: images
    /// `[B, in_channels, h·f, w·f]`, **not clamped** (as the official `decode`).
    pub fn decode_latent(&self, quant: &Tensor) -> Result<Tensor> {
        let d = self.cfg.codebook_embed_dim;
        let s = quant.shape();
        if s.len() != 4 || s[1] != d {
            return Err(TokenizerError::shape(
                "LlamaGenVq::decode_latent",
                format!("latent [B, {d}, h, w]"),
                s,
            ));
        }
        self.decoder.forward(&self.post_quant_conv.forward(quant)?)
    }

    /// Decodes raster codes (`b·h·w`) to images `[b, in_channels, h·f, w·f]`, not clamped
    /// (official `decode_code(indices, (b, D, h, w))`).
    pub fn decode_indices(&self, indices: &[u32], b: usize, h: usize, w: usize) -> Result<Tensor> {
        self.decode_latent(&self.indices_to_latent(indices, b, h, w)?)
    }
}
