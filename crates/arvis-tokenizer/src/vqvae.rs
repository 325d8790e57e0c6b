//! [`VqVae`]: encoder, quantiser and decoder of VAR's tokenizer (official `VQVAE`).

use arvis_core::{SeededRng, Tensor, WeightsScope};

use crate::blocks::Conv2d;
use crate::config::VqVaeConfig;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Result, TokenizerError};
use crate::params::{Backend, Params};
use crate::quant::MultiScaleVq;
use std::cell::RefCell;

/// VAR's multi-scale VQ-VAE.
///
/// Images are `[B, in_channels, S, S]` in `[-1, 1]` with `S` = [`VqVaeConfig::image_size`]
/// (256 for VAR); the latent `f_hat` is `[B, Cvae, P, P]` with `P` the last patch number (16).
#[derive(Clone, Debug)]
pub struct VqVae {
    cfg: VqVaeConfig,
    encoder: Encoder,
    decoder: Decoder,
    quantize: MultiScaleVq,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
}

impl VqVae {
    fn build(p: &Params<'_, '_>, cfg: &VqVaeConfig) -> Result<Self> {
        cfg.validate()?;
        let (z, ks) = (cfg.z_channels, cfg.quant_conv_ks);
        let layout = cfg.layout();
        Ok(VqVae {
            cfg: cfg.clone(),
            encoder: Encoder::build(&p.scope("encoder"), &layout)?,
            decoder: Decoder::build(&p.scope("decoder"), &layout)?,
            quantize: MultiScaleVq::build(&p.scope("quantize"), cfg)?,
            quant_conv: Conv2d::build_same(&p.scope("quant_conv"), z, z, ks)?,
            post_quant_conv: Conv2d::build_same(&p.scope("post_quant_conv"), z, z, ks)?,
        })
    }

    /// Loads every tensor of the official `VQVAE` state dict (keys as in the checkpoint, e.g.
    /// `encoder.conv_in.weight`, `quantize.embedding.weight`) from `scope`, which is
    /// `weights.scope("vae")` for arvis files. Each tensor is checked against the shape `cfg`
    /// implies; `quantize.ema_vocab_hit_SV` (a training statistic) is not read.
    pub fn load(scope: &WeightsScope<'_>, cfg: &VqVaeConfig) -> Result<Self> {
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// **Test and demo utility**: a model with seeded random weights (convs ~ N(0, 1/fan_in),
    /// norms ≈ 1, codebook ~ N(0, 1)). Its outputs mean nothing; use it to exercise the API
    /// without a checkpoint.
    pub fn random(cfg: &VqVaeConfig, seed: u64) -> Result<Self> {
        let backend = Backend::Random(Box::new(RefCell::new(SeededRng::new(seed))));
        Self::build(&Params::new(&backend), cfg)
    }

    /// The name and shape of every tensor [`VqVae::load`] reads for `cfg`, relative to the
    /// `vae` scope, in load order (what a converter must write).
    pub fn tensor_shapes(cfg: &VqVaeConfig) -> Result<Vec<(String, Vec<usize>)>> {
        let backend = Backend::Record(RefCell::new(Vec::new()));
        Self::build(&Params::new(&backend), cfg)?;
        match backend {
            Backend::Record(names) => Ok(names.into_inner()),
            _ => Ok(Vec::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VqVaeConfig {
        &self.cfg
    }

    /// The multi-scale quantiser.
    pub fn quantizer(&self) -> &MultiScaleVq {
        &self.quantize
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The decoder.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Checks an input image batch and returns `B`.
    fn check_image(&self, img: &Tensor) -> Result<usize> {
        let (c, f, p) = (
            self.cfg.in_channels,
            self.cfg.downsample(),
            self.quantize.latent_size(),
        );
        let s = img.shape();
        if s.len() != 4 || s[1] != c {
            return Err(TokenizerError::shape(
                "img_to_indices",
                format!("image [B, {c}, H, W]"),
                s,
            ));
        }
        if s[2] != p * f || s[3] != p * f {
            let why = if !s[2].is_multiple_of(f) || !s[3].is_multiple_of(f) {
                format!(
                    "H and W divisible by the downsample factor {f}, and equal to {}",
                    p * f
                )
            } else {
                format!(
                    "H = W = {} (last patch number {p} × downsample factor {f})",
                    p * f
                )
            };
            return Err(TokenizerError::shape("img_to_indices", why, s));
        }
        Ok(s[0])
    }

    /// `quant_conv(encoder(img))`: the continuous latent `[B, Cvae, P, P]`.
    pub fn img_to_latent(&self, img: &Tensor) -> Result<Tensor> {
        self.check_image(img)?;
        self.quant_conv.forward(&self.encoder.forward(img)?)
    }

    /// Encodes images `[B, in_channels, S, S]` in `[-1, 1]` and returns the codes per scale
    /// (`B·pn²` each, row-major over `(b, y, x)`) with the quantised latent `f_hat`.
    pub fn encode(&self, img: &Tensor) -> Result<(Vec<Vec<u32>>, Tensor)> {
        self.quantize.quantize(&self.img_to_latent(img)?)
    }

    /// Codes per scale of images `[B, in_channels, S, S]` in `[-1, 1]` (official
    /// `img_to_idxBl`): `B·pn²` each, row-major.
    pub fn img_to_indices(&self, img: &Tensor) -> Result<Vec<Vec<u32>>> {
        Ok(self.encode(img)?.0)
    }

    /// The latent `[B, Cvae, P, P]` of a multi-scale token map (see
    /// [`MultiScaleVq::indices_to_fhat`]).
    pub fn indices_to_fhat(&self, idx: &[Vec<u32>], batch: usize) -> Result<Tensor> {
        self.quantize.indices_to_fhat(idx, batch)
    }

    /// `decoder(post_quant_conv(f_hat)).clamp(-1, 1)`: images `[B, in_channels, S, S]` in
    /// `[-1, 1]`.
    pub fn fhat_to_img(&self, f_hat: &Tensor) -> Result<Tensor> {
        let z = self.cfg.z_channels;
        let s = f_hat.shape();
        if s.len() != 4 || s[1] != z {
            return Err(TokenizerError::shape(
                "fhat_to_img",
                format!("f_hat [B, {z}, h, w]"),
                s,
            ));
        }
        let h = self
            .decoder
            .forward(&self.post_quant_conv.forward(f_hat)?)?;
        Ok(h.clamp(-1.0, 1.0)?)
    }

    /// `fhat_to_img(indices_to_fhat(idx))` (official `idxBl_to_img(same_shape=True,
    /// last_one=True)`).
    pub fn indices_to_img(&self, idx: &[Vec<u32>], batch: usize) -> Result<Tensor> {
        self.fhat_to_img(&self.indices_to_fhat(idx, batch)?)
    }
}
