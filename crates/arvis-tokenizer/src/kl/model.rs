//! [`KlVae`] (official `AutoencoderKL`) and its diagonal-Gaussian [`Posterior`].

use std::cell::RefCell;

use arvis_core::{SeededRng, Tensor, WeightsScope};

use crate::blocks::Conv2d;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::{Result, TokenizerError};
use crate::kl::config::{KlVaeConfig, LOGVAR_RANGE};
use crate::params::{Backend, Params};

/// The encoder's posterior `N(mean, exp(logvar))` per latent element (official
/// `DiagonalGaussianDistribution`, inference parts).
#[derive(Clone, Debug)]
pub struct Posterior {
    mean: Tensor,
    /// Clamped to [`LOGVAR_RANGE`], as the official constructor does.
    logvar: Tensor,
}

impl Posterior {
    /// Splits `moments` `[B, 2E, h, w]` into mean (first `E` channels) and log-variance (the
    /// rest, clamped to [`LOGVAR_RANGE`]).
    pub fn from_moments(moments: &Tensor) -> Result<Self> {
        let s = moments.shape();
        if s.len() != 4 || s[1] == 0 || !s[1].is_multiple_of(2) {
            return Err(TokenizerError::shape(
                "Posterior::from_moments",
                "moments [B, 2E, h, w]",
                s,
            ));
        }
        let e = s[1] / 2;
        Ok(Posterior {
            mean: moments.narrow(1, 0, e)?,
            logvar: moments
                .narrow(1, e, e)?
                .clamp(LOGVAR_RANGE.0, LOGVAR_RANGE.1)?,
        })
    }

    /// The mean `[B, E, h, w]`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// The clamped log-variance `[B, E, h, w]`.
    pub fn logvar(&self) -> &Tensor {
        &self.logvar
    }

    /// The mode (= the mean): MAR's deterministic encoding.
    pub fn mode(&self) -> &Tensor {
        &self.mean
    }

    /// `exp(0.5 · logvar)`.
    pub fn std(&self) -> Result<Tensor> {
        Ok(self.logvar.scale(0.5)?.exp()?)
    }

    /// `mean + std · noise` for a standard-normal `noise` of the mean's shape (the official
    /// `sample()` draws it with `torch.randn`; here the caller supplies it, so a seed decides
    /// it and goldens can replay the reference's draw).
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        if noise.shape() != self.mean.shape() {
            return Err(TokenizerError::shape(
                "Posterior::sample",
                format!("noise of the posterior's shape {:?}", self.mean.shape()),
                noise.shape(),
            ));
        }
        Ok(self.mean.add(&self.std()?.mul(noise)?)?)
    }
}

/// MAR's KL-16 VAE: the LDM `AutoencoderKL` of `models/vae.py` (LTH14/mar).
///
/// Images are `[B, in_channels, H, W]` in `[-1, 1]` with `H`, `W` multiples of the downsample
/// factor `f` (16); latents are `[B, embed_dim, H/f, W/f]` (`[B, 16, 16, 16]` for 256²).
/// [`KlVae::encode`] and [`KlVae::decode`] are the official `encode(x).sample()` /
/// `.mode()` and `decode(z)` and do **not** apply MAR's latent scale; the generator's tokens are
/// `latent · latent_scale`, which [`KlVae::encode_tokens`] / [`KlVae::decode_tokens`] handle.
#[derive(Clone, Debug)]
pub struct KlVae {
    cfg: KlVaeConfig,
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
}

impl KlVae {
    fn build(p: &Params<'_, '_>, cfg: &KlVaeConfig) -> Result<Self> {
        cfg.validate()?;
        let layout = cfg.layout();
        let e = cfg.embed_dim;
        Ok(KlVae {
            cfg: cfg.clone(),
            encoder: Encoder::build(&p.scope("encoder"), &layout)?,
            decoder: Decoder::build(&p.scope("decoder"), &layout)?,
            quant_conv: Conv2d::build_same(&p.scope("quant_conv"), 2 * e, 2 * e, 1)?,
            post_quant_conv: Conv2d::build_same(&p.scope("post_quant_conv"), e, e, 1)?,
        })
    }

    /// Loads every tensor of the official `AutoencoderKL` state dict (the keys of
    /// `torch.load("kl16.ckpt")["model"]`, unchanged: `encoder.down.0.block.0.conv1.weight`,
    /// `encoder.down.4.attn.1.q.weight`, `decoder.up.0.block.2.nin_shortcut.bias`,
    /// `quant_conv.weight`, ...) from `scope` — `weights.scope("vae")` for arvis files written by
    /// `xtask/py/convert_klvae.py`, or `weights.scope_on("vae", device)` to place the model on a
    /// device. Each tensor is checked against the shape `cfg` implies.
    pub fn load(scope: &WeightsScope<'_>, cfg: &KlVaeConfig) -> Result<Self> {
        let backend = Backend::Weights(scope.clone());
        Self::build(&Params::new(&backend), cfg)
    }

    /// **Test and demo utility**: a model with seeded random weights (convs ~ N(0, 1/fan_in),
    /// norms ≈ 1); its outputs mean nothing.
    pub fn random(cfg: &KlVaeConfig, seed: u64) -> Result<Self> {
        let backend = Backend::Random(Box::new(RefCell::new(SeededRng::new(seed))));
        Self::build(&Params::new(&backend), cfg)
    }

    /// The name and shape of every tensor [`KlVae::load`] reads for `cfg`, relative to the
    /// model's scope, in load order (what a converter must write).
    pub fn tensor_shapes(cfg: &KlVaeConfig) -> Result<Vec<(String, Vec<usize>)>> {
        let backend = Backend::Record(RefCell::new(Vec::new()));
        Self::build(&Params::new(&backend), cfg)?;
        match backend {
            Backend::Record(names) => Ok(names.into_inner()),
            _ => Ok(Vec::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &KlVaeConfig {
        &self.cfg
    }

    /// The encoder (outputs `2·embed_dim` channels before `quant_conv`).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The decoder (after `post_quant_conv`).
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// MAR's latent scale (`cfg.latent_scale`, 0.2325).
    pub fn latent_scale(&self) -> f32 {
        self.cfg.latent_scale
    }

    /// The posterior of images `[B, in_channels, H, W]` in `[-1, 1]`: `quant_conv(encoder(x))`
    /// split into mean and clamped log-variance (official `encode(x)`).
    pub fn encode_moments(&self, img: &Tensor) -> Result<Posterior> {
        let (c, f) = (self.cfg.in_channels, self.cfg.downsample());
        let s = img.shape();
        if s.len() != 4
            || s[1] != c
            || s[2] == 0
            || s[3] == 0
            || !s[2].is_multiple_of(f)
            || !s[3].is_multiple_of(f)
        {
            return Err(TokenizerError::shape(
                "KlVae::encode",
                format!("image [B, {c}, H, W] with H and W positive multiples of {f}"),
                s,
            ));
        }
        Posterior::from_moments(&self.quant_conv.forward(&self.encoder.forward(img)?)?)
    }

    /// The latent `[B, embed_dim, H/f, W/f]` of images: a posterior sample
    /// `mean + std · noise` with the given standard-normal `noise` (official
    /// `encode(x).sample()`, whose `torch.randn` draw the caller supplies), or the mode (the
    /// mean) when `noise` is `None`. Not scaled (see [`KlVae::encode_tokens`]).
    pub fn encode(&self, img: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        let posterior = self.encode_moments(img)?;
        match noise {
            Some(n) => posterior.sample(n),
            None => Ok(posterior.mean),
        }
    }

    /// `decoder(post_quant_conv(z))` for a latent `[B, embed_dim, h, w]`: images
    /// `[B, in_channels, h·f, w·f]`, **not clamped** (as the official `decode`; MAR's caller
    /// maps `(x + 1) / 2` and clips).
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let e = self.cfg.embed_dim;
        let s = latent.shape();
        if s.len() != 4 || s[1] != e || s[2] == 0 || s[3] == 0 {
            return Err(TokenizerError::shape(
                "KlVae::decode",
                format!("latent [B, {e}, h, w]"),
                s,
            ));
        }
        self.decoder.forward(&self.post_quant_conv.forward(latent)?)
    }

    /// MAR's tokens of images: `encode(img, noise) · latent_scale` (official `engine_mar.py`
    /// L65, `posterior.sample().mul_(0.2325)`).
    pub fn encode_tokens(&self, img: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.encode(img, noise)?.scale(self.cfg.latent_scale)?)
    }

    /// Images of MAR's tokens `[B, embed_dim, h, w]`: `decode(tokens / latent_scale)` (official
    /// `engine_mar.py` L159). The division is a multiplication by the f32 reciprocal (within
    /// 1 ulp of torch's division).
    pub fn decode_tokens(&self, tokens: &Tensor) -> Result<Tensor> {
        self.decode(&tokens.scale(1.0 / self.cfg.latent_scale)?)
    }
}
