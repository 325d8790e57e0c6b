//! [`Pipeline`]: load any supported model file and generate images with one call.

use std::path::{Path, PathBuf};

use arvis_core::sampling::SamplingConfig;
use arvis_core::{Device, Tensor, Weights};
use arvis_models::llamagen::{LlamaGen, LlamaGenVq, LlamaGenVqConfig, codebook_embeddings};
use arvis_models::mar::{CfgSchedule, HeadSteps, KlVae, KlVaeConfig, Mar, MarRequest};
use arvis_models::var::{LoadOptions, Progress as VarProgress, Var, VarRequest};

use crate::error::{Error, Result};
use crate::sampler::{SamplerKind, SamplerOptions, TokenSimilarity};

/// A generation request, independent of the model family.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// One image per class label.
    pub labels: Vec<u32>,
    /// Seed of every random draw: the same seed gives the same images on the same backend.
    pub seed: u64,
    /// Classifier-free guidance strength (family-specific schedule; VAR ramps it over scales).
    pub cfg: f32,
    /// Top-k filter (`0` = off).
    pub top_k: usize,
    /// Top-p (nucleus) mass in `(0, 1]` (`1` = off).
    pub top_p: f32,
    /// Sampling temperature (`1` = the references' default). LlamaGen: the logits are divided
    /// by `max(T, 1e-5)` before top-k / top-p, so `0` is greedy decoding; MAR: the scale of
    /// the diffusion head's noise (`0`: deterministic head). VAR's reference sampler has no
    /// temperature: anything but `1` is refused for VAR models.
    pub temperature: f32,
}

impl Request {
    /// The VAR reference's evaluation settings (`cfg 1.5`, `top_k 900`, `top_p 0.96`,
    /// temperature 1) for the given labels and seed.
    pub fn new(labels: Vec<u32>, seed: u64) -> Self {
        Request {
            labels,
            seed,
            cfg: 1.5,
            top_k: 900,
            top_p: 0.96,
            temperature: 1.0,
        }
    }

    /// Checks the temperature is finite and `≥ 0`.
    fn check_temperature(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Usage(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// The sampling settings of a [`Request`] that have model-dependent defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Classifier-free guidance strength.
    pub cfg: f32,
    /// Top-k filter (`0` = off).
    pub top_k: usize,
    /// Top-p (nucleus) mass in `(0, 1]` (`1` = off).
    pub top_p: f32,
}

impl Sampling {
    /// The official VAR demo's settings (`cfg 4`, `top_k 900`, `top_p 0.95`): the default for
    /// files that do not recommend their own.
    pub const VAR_DEMO: Sampling = Sampling {
        cfg: 4.0,
        top_k: 900,
        top_p: 0.95,
    };

    /// LlamaGen's `sample_c2i.py` defaults (`cfg 4`, `top_k 2000`, `top_p 1`; temperature 1):
    /// the default for LlamaGen files that do not recommend their own.
    pub const LLAMAGEN: Sampling = Sampling {
        cfg: 4.0,
        top_k: 2000,
        top_p: 1.0,
    };

    /// MAR's evaluation guidance (MAR-B's `cfg 2.9`, linear schedule; no top-k/top-p: the
    /// tokens are continuous): the default for MAR files that do not recommend their own.
    pub const MAR: Sampling = Sampling {
        cfg: 2.9,
        top_k: 0,
        top_p: 1.0,
    };

    /// Reads [`META_SAMPLING`](arvis_core::weights::META_SAMPLING) from `weights`: `Ok(None)`
    /// when the key is absent, an error naming the file when it is present but malformed
    /// (every one of `cfg`, `top_k`, `top_p` must be there with a valid value).
    pub fn from_metadata(weights: &Weights) -> Result<Option<Sampling>> {
        let key = arvis_core::weights::META_SAMPLING;
        if weights.metadata().is_none_or(|m| !m.contains_key(key)) {
            return Ok(None);
        }
        let v = weights.metadata_json(key)?;
        let bad = |what: &str| Error::BadMetadata {
            path: weights.path().to_path_buf(),
            msg: format!("`{key}`: {what}"),
        };
        let cfg = v["cfg"]
            .as_f64()
            .filter(|c| c.is_finite() && *c >= 0.0)
            .ok_or_else(|| bad("`cfg` must be a finite number >= 0"))?;
        let top_k = v["top_k"]
            .as_u64()
            .and_then(|k| usize::try_from(k).ok())
            .ok_or_else(|| bad("`top_k` must be an integer >= 0"))?;
        let top_p = v["top_p"]
            .as_f64()
            .filter(|p| *p > 0.0 && *p <= 1.0)
            .ok_or_else(|| bad("`top_p` must be in (0, 1]"))?;
        Ok(Some(Sampling {
            cfg: cfg as f32,
            top_k,
            top_p: top_p as f32,
        }))
    }
}

/// Where a model comes from: a converted file or the model embedded in the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// The embedded VAR-on-MNIST model ([`crate::builtin::VAR_MNIST`]).
    Builtin,
    /// The embedded LlamaGen-style MNIST model ([`crate::builtin::LLAMAGEN_MNIST`]).
    BuiltinLlamaGen,
    /// A converted `.safetensors` file.
    File(PathBuf),
}

impl ModelSource {
    /// [`BUILTIN_MODEL_NAME`](crate::builtin::BUILTIN_MODEL_NAME) (`"builtin"`) selects the
    /// embedded VAR, [`BUILTIN_LLAMAGEN_NAME`](crate::builtin::BUILTIN_LLAMAGEN_NAME)
    /// (`"builtin-llamagen"`) the embedded LlamaGen-style model; anything else is a path (write
    /// `./builtin` for a file of that name).
    pub fn parse(arg: &str) -> Self {
        if arg == crate::builtin::BUILTIN_MODEL_NAME {
            ModelSource::Builtin
        } else if arg == crate::builtin::BUILTIN_LLAMAGEN_NAME {
            ModelSource::BuiltinLlamaGen
        } else {
            ModelSource::File(PathBuf::from(arg))
        }
    }
}

impl std::str::FromStr for ModelSource {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(ModelSource::parse(s))
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Builtin => f.write_str(crate::builtin::BUILTIN_MODEL_NAME),
            ModelSource::BuiltinLlamaGen => f.write_str(crate::builtin::BUILTIN_LLAMAGEN_NAME),
            ModelSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Progress of a generation, for progress bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Steps finished (scales for VAR; the decode is the last step).
    pub done: usize,
    /// Total steps.
    pub total: usize,
    /// What the step was (`"scale 3/10 (4x4)"`, `"decode"`).
    pub stage: Stage,
}

/// The kind of step a [`Progress`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// A VAR scale of side `patch_num` was sampled.
    Scale {
        /// Side of the scale's token map.
        patch_num: usize,
    },
    /// A block of tokens was sampled (LlamaGen: one row of the token grid; MAR: one AR
    /// iteration).
    Tokens,
    /// The tokens are being decoded to pixels.
    Decode,
}

/// LlamaGen's GPT with its VQ tokenizer (a file holds both: `gpt.*` and `vq.*`).
#[derive(Debug)]
pub struct LlamaGenModel {
    /// The class-conditional GPT.
    pub gpt: LlamaGen,
    /// The VQ tokenizer that decodes its tokens.
    pub vq: LlamaGenVq,
}

impl LlamaGenModel {
    /// Loads both halves of a LlamaGen file onto `device`; the GPT's vocabulary must be the
    /// codebook size.
    pub fn load_on(weights: &Weights, device: Device) -> Result<Self> {
        Self::load_on_with(weights, device, LoadOptions::default())
    }

    /// [`LlamaGenModel::load_on`] with load `options` (f16 storage of the GPT's linear weights).
    pub fn load_on_with(weights: &Weights, device: Device, options: LoadOptions) -> Result<Self> {
        let gpt = LlamaGen::load_on_with(weights, device, options)?;
        let vq_cfg = LlamaGenVqConfig::from_weights(weights)?;
        if vq_cfg.codebook_size != gpt.config().vocab_size {
            return Err(Error::BadMetadata {
                path: weights.path().to_path_buf(),
                msg: format!(
                    "the GPT's vocabulary ({}) is not the VQ codebook size ({})",
                    gpt.config().vocab_size,
                    vq_cfg.codebook_size
                ),
            });
        }
        let vq = LlamaGenVq::load(&weights.scope_on("vq", device), &vq_cfg)?;
        Ok(LlamaGenModel { gpt, vq })
    }
}

/// MAR with its KL-16 VAE (a file holds both: MAR's keys unprefixed, the VAE under `vae.`).
#[derive(Debug)]
pub struct MarModel {
    /// The masked encoder–decoder with its diffusion head.
    pub mar: Mar,
    /// The VAE that decodes its latents.
    pub vae: KlVae,
}

impl MarModel {
    /// Loads both halves of a MAR file onto `device`; the VAE's latent channels must be MAR's.
    pub fn load_on(weights: &Weights, device: Device) -> Result<Self> {
        let mar = Mar::load_on(weights, device)?;
        let vae_cfg = KlVaeConfig::from_weights(weights)?;
        if vae_cfg.embed_dim != mar.config().vae_embed_dim {
            return Err(Error::BadMetadata {
                path: weights.path().to_path_buf(),
                msg: format!(
                    "the VAE has {} latent channels, MAR expects {}",
                    vae_cfg.embed_dim,
                    mar.config().vae_embed_dim
                ),
            });
        }
        let vae = KlVae::load(&weights.scope_on("vae", device), &vae_cfg)?;
        Ok(MarModel { mar, vae })
    }
}

/// MAR's sampling settings beyond [`Request`] (used by MAR models only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarOptions {
    /// AR iterations (the demo's 64; the paper's FID uses 256).
    pub num_iter: usize,
    /// Diffusion steps per iteration (100), or a DiSA schedule.
    pub head_steps: HeadSteps,
    /// How guidance grows over the iterations (linear, MAR's evaluation setting).
    pub cfg_schedule: CfgSchedule,
}

impl Default for MarOptions {
    fn default() -> Self {
        MarOptions {
            num_iter: 64,
            head_steps: HeadSteps::Fixed(100),
            cfg_schedule: CfgSchedule::Linear,
        }
    }
}

/// What [`Pipeline::sample_tokens`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledTokens {
    /// One row of `block_size` tokens per image, in generation order.
    pub tokens: Vec<Vec<u32>>,
    /// What the sampler cost (target/draft forwards, accepted lengths).
    pub stats: arvis_spec::SpecStats,
}

/// The models a [`Pipeline`] can hold.
#[derive(Debug)]
#[non_exhaustive]
pub enum Model {
    /// A VAR (next-scale prediction) model with its multi-scale VQ-VAE.
    Var(Box<Var>),
    /// A LlamaGen (raster next-token) GPT with its VQ tokenizer.
    LlamaGen(Box<LlamaGenModel>),
    /// A MAR (masked AR, diffusion head) model with its KL VAE.
    Mar(Box<MarModel>),
}

/// A loaded model, ready to generate.
#[derive(Debug)]
pub struct Pipeline {
    model: Model,
    source: PathBuf,
    sampling: Sampling,
    mar_options: MarOptions,
    /// The codebook embeddings (and LANTERN's neighbour table) of a LlamaGen model, built on
    /// the first GSD/LANTERN request.
    similarity: std::sync::OnceLock<TokenSimilarity>,
}

impl Pipeline {
    /// Opens a converted `.safetensors` file, reads `arvis.family` from its metadata and builds
    /// the matching model on `device`.
    pub fn load(path: impl AsRef<Path>, device: Device) -> Result<Self> {
        let weights = Weights::open(path.as_ref())?;
        Self::from_weights(&weights, device)
    }

    /// The model embedded in the binary (VAR on MNIST, 32×32 digits; see [`crate::builtin`]).
    pub fn builtin(device: Device) -> Result<Self> {
        Self::from_weights(&crate::builtin::var_mnist_weights()?, device)
    }

    /// Loads `source`: the embedded model or a file.
    pub fn open(source: &ModelSource, device: Device) -> Result<Self> {
        Self::open_with(source, device, LoadOptions::default())
    }

    /// [`Pipeline::open`] with load `options` (e.g. f16 weight storage, which halves the weight
    /// bytes a GPU product reads; on the CPU it rounds the weights the same way, no speed-up).
    pub fn open_with(source: &ModelSource, device: Device, options: LoadOptions) -> Result<Self> {
        match source {
            ModelSource::Builtin => {
                Self::from_weights_with(&crate::builtin::var_mnist_weights()?, device, options)
            }
            ModelSource::BuiltinLlamaGen => {
                Self::from_weights_with(&crate::builtin::llamagen_mnist_weights()?, device, options)
            }
            ModelSource::File(path) => {
                Self::from_weights_with(&Weights::open(path)?, device, options)
            }
        }
    }

    /// Builds the model from already-open weights (e.g. `Weights::from_static` for an
    /// embedded model).
    pub fn from_weights(weights: &Weights, device: Device) -> Result<Self> {
        Self::from_weights_with(weights, device, LoadOptions::default())
    }

    /// [`Pipeline::from_weights`] with load `options`.
    pub fn from_weights_with(
        weights: &Weights,
        device: Device,
        options: LoadOptions,
    ) -> Result<Self> {
        if device == Device::Gpu {
            arvis_core::gpu::GpuContext::shared()
                .map_err(|e| Error::Device(device.name().into(), e.to_string()))?;
        }
        let family = weights.metadata_str(arvis_core::weights::META_FAMILY)?;
        let model = match family {
            "var" => Model::Var(Box::new(Var::load_on_with(weights, device, options)?)),
            "llamagen" => Model::LlamaGen(Box::new(LlamaGenModel::load_on_with(
                weights, device, options,
            )?)),
            // f16 weight storage is wired for VAR and LlamaGen so far.
            "mar" => Model::Mar(Box::new(MarModel::load_on(weights, device)?)),
            other => {
                return Err(Error::UnsupportedFamily {
                    path: weights.path().to_path_buf(),
                    family: other.to_owned(),
                });
            }
        };
        let fallback = match model {
            Model::Var(_) => Sampling::VAR_DEMO,
            Model::LlamaGen(_) => Sampling::LLAMAGEN,
            Model::Mar(_) => Sampling::MAR,
        };
        let sampling = Sampling::from_metadata(weights)?.unwrap_or(fallback);
        Ok(Pipeline {
            model,
            source: weights.path().to_path_buf(),
            sampling,
            mar_options: MarOptions::default(),
            similarity: std::sync::OnceLock::new(),
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model family (`"var"`, `"llamagen"`, `"mar"`).
    pub fn family(&self) -> &'static str {
        match self.model {
            Model::Var(_) => "var",
            Model::LlamaGen(_) => "llamagen",
            Model::Mar(_) => "mar",
        }
    }

    /// Sets MAR's iterations, head steps and guidance schedule for the next
    /// [`Pipeline::generate`] calls (other families ignore them).
    pub fn set_mar_options(&mut self, options: MarOptions) {
        self.mar_options = options;
    }

    /// MAR's current options ([`MarOptions::default`] unless set).
    pub fn mar_options(&self) -> MarOptions {
        self.mar_options
    }

    /// Where the weights came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The sampling settings the file recommends (its `arvis.sampling` metadata), else
    /// the family's default ([`Sampling::VAR_DEMO`], [`Sampling::LLAMAGEN`]).
    pub fn default_sampling(&self) -> Sampling {
        self.sampling
    }

    /// A request for `labels` and `seed` with the model's [`Pipeline::default_sampling`].
    pub fn request(&self, labels: Vec<u32>, seed: u64) -> Request {
        let s = self.sampling;
        Request {
            labels,
            seed,
            cfg: s.cfg,
            top_k: s.top_k,
            top_p: s.top_p,
            temperature: 1.0,
        }
    }

    /// Number of class labels the model accepts (`0..num_classes`).
    pub fn num_classes(&self) -> usize {
        match &self.model {
            Model::Var(v) => v.config().num_classes,
            Model::LlamaGen(m) => m.gpt.config().num_classes,
            Model::Mar(m) => m.mar.config().class_num,
        }
    }

    /// Number of progress steps one [`Pipeline::generate`] reports.
    pub fn num_steps(&self) -> usize {
        match &self.model {
            Model::Var(v) => v.config().num_scales() + 1,
            // One step per row of the token grid, then the decode.
            Model::LlamaGen(m) => m.gpt.config().grid() + 1,
            // One step per AR iteration, then the decode.
            Model::Mar(_) => self.mar_options.num_iter + 1,
        }
    }

    /// Generates one image per label: `[B, 3, H, W]` in `[0, 1]`. `progress` is called after
    /// each step (see [`Pipeline::num_steps`]).
    pub fn generate(&self, req: &Request, progress: &mut dyn FnMut(Progress)) -> Result<Tensor> {
        req.check_temperature()?;
        match &self.model {
            Model::Var(var) => {
                if req.temperature != 1.0 {
                    return Err(Error::Usage(format!(
                        "VAR's sampler has no temperature (got {}); {} is a VAR model",
                        req.temperature,
                        self.source.display()
                    )));
                }
                let vr = VarRequest {
                    labels: req.labels.clone(),
                    seed: req.seed,
                    cfg: req.cfg,
                    top_k: req.top_k,
                    top_p: req.top_p,
                };
                let total = var.config().num_scales() + 1;
                let mut cb = |p: VarProgress| match p {
                    VarProgress::Scale {
                        scale, patch_num, ..
                    } => progress(Progress {
                        done: scale + 1,
                        total,
                        stage: Stage::Scale { patch_num },
                    }),
                    VarProgress::Decoding => progress(Progress {
                        done: total - 1,
                        total,
                        stage: Stage::Decode,
                    }),
                    _ => {}
                };
                let out = var.generate(&vr, &mut cb)?;
                progress(Progress {
                    done: total,
                    total,
                    stage: Stage::Decode,
                });
                Ok(out.images)
            }
            Model::LlamaGen(m) => {
                // LlamaGen's sampler: logits / max(T, 1e-5), then HF top-k / top-p.
                let sampling = SamplingConfig::llamagen(req.temperature, req.top_k, req.top_p);
                let g = m.gpt.config().grid();
                let total = g + 1;
                // A progress step per block of `g` tokens (a grid row in raster order).
                let mut per_token = |t: usize| {
                    if t.is_multiple_of(g) {
                        progress(Progress {
                            done: t / g,
                            total,
                            stage: Stage::Tokens,
                        });
                    }
                };
                let run = m.gpt.generate_with_progress(
                    &req.labels,
                    req.cfg,
                    &sampling,
                    req.seed,
                    &mut per_token,
                )?;
                let img = llamagen_images(m, &run.tokens)?;
                progress(Progress {
                    done: total,
                    total,
                    stage: Stage::Decode,
                });
                Ok(img)
            }
            Model::Mar(m) => {
                let o = self.mar_options;
                let mr = MarRequest {
                    labels: req.labels.iter().copied().map(Some).collect(),
                    num_iter: o.num_iter,
                    cfg: req.cfg,
                    cfg_schedule: o.cfg_schedule,
                    temperature: req.temperature,
                    head_steps: o.head_steps,
                    seed: req.seed,
                };
                let total = o.num_iter + 1;
                let run = m.mar.generate_with_progress(&mr, &mut |k| {
                    progress(Progress {
                        done: k,
                        total,
                        stage: Stage::Tokens,
                    })
                })?;
                let img = m.vae.decode_tokens(&run.latents)?;
                progress(Progress {
                    done: total,
                    total,
                    stage: Stage::Decode,
                });
                // engine_mar.py: `(images + 1) / 2`, clipped to [0, 1] when written.
                Ok(img.clamp(-1.0, 1.0)?.affine(0.5, 0.5)?)
            }
        }
    }

    /// [`Pipeline::generate`] with a speculative sampler ([`crate::sampler`]): raster
    /// next-token models (LlamaGen) only. `draft` is the draft model of
    /// [`SamplerKind::Spec`] (same vocabulary; see [`crate::sampler::load_draft`]). Returns the
    /// images and what the sampler cost (`None` for plain sampling of a non-raster model,
    /// which runs [`Pipeline::generate`]).
    ///
    /// [`SamplerKind::Plain`] without a draft runs [`Pipeline::generate`] (same images as
    /// it); the other samplers go through [`Pipeline::sample_tokens`] and report progress only
    /// when the tokens are done.
    pub fn generate_with_sampler(
        &self,
        req: &Request,
        options: &SamplerOptions,
        draft: Option<&LlamaGen>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Tensor, Option<arvis_spec::SpecStats>)> {
        let plain = options.kind == SamplerKind::Plain && draft.is_none();
        if plain {
            let images = self.generate(req, progress)?;
            let stats = match &self.model {
                Model::LlamaGen(m) => Some(arvis_spec::SpecStats {
                    rows: req.labels.len(),
                    tokens: m.gpt.config().block_size,
                    target_forwards: m.gpt.config().block_size,
                    ..arvis_spec::SpecStats::default()
                }),
                _ => None,
            };
            return Ok((images, stats));
        }
        let sampled = self.sample_tokens(req, options, draft)?;
        let total = self.num_steps();
        progress(Progress {
            done: total - 1,
            total,
            stage: Stage::Tokens,
        });
        let images = self.decode_tokens(&sampled.tokens)?;
        progress(Progress {
            done: total,
            total,
            stage: Stage::Decode,
        });
        Ok((images, Some(sampled.stats)))
    }

    /// The LlamaGen model of this pipeline, or a usage error naming `what` needs one.
    fn raster(&self, what: &str) -> Result<&LlamaGenModel> {
        match &self.model {
            Model::LlamaGen(m) => Ok(m),
            _ => Err(Error::Usage(format!(
                "{what} works on raster next-token models (LlamaGen); {} is a {} model",
                self.source.display(),
                self.family()
            ))),
        }
    }

    /// Samples the tokens of one image per label with `options.kind` through
    /// [`crate::sampler::decode`] (for every kind, [`SamplerKind::Plain`] included, so that
    /// the samplers' costs and outputs compare on one code path): the tokens in generation
    /// order and what the sampler cost. Raster next-token models (LlamaGen) only; `draft` as
    /// in [`Pipeline::generate_with_sampler`].
    pub fn sample_tokens(
        &self,
        req: &Request,
        options: &SamplerOptions,
        draft: Option<&LlamaGen>,
    ) -> Result<SampledTokens> {
        req.check_temperature()?;
        let m = self.raster(&format!("--sampler {}", options.kind))?;
        let cfg = m.gpt.config();
        if let Some(d) = draft
            && d.config().vocab_size != cfg.vocab_size
        {
            return Err(Error::Usage(format!(
                "the draft model's vocabulary ({}) is not the target's ({})",
                d.config().vocab_size,
                cfg.vocab_size
            )));
        }
        let similarity = match options.kind {
            SamplerKind::Gsd | SamplerKind::Lantern => Some(self.similarity_of(m)?),
            _ => None,
        };
        let sampling = SamplingConfig::llamagen(req.temperature, req.top_k, req.top_p);
        let mut target = m.gpt.spec_model(&req.labels, req.cfg, &sampling)?;
        let draft = draft
            .map(|d| d.spec_model(&req.labels, req.cfg, &sampling))
            .transpose()?;
        let out = crate::sampler::decode(&mut target, draft, options, similarity, req.seed)?;
        Ok(SampledTokens {
            tokens: out.tokens,
            stats: out.stats,
        })
    }

    /// Decodes raster-model tokens (generation order, one row per image) to images
    /// `[B, 3, H, W]` in `[0, 1]`, as [`Pipeline::generate`] does. LlamaGen only.
    pub fn decode_tokens(&self, tokens: &[Vec<u32>]) -> Result<Tensor> {
        llamagen_images(self.raster("decoding tokens")?, tokens)
    }

    /// The negative log-likelihood (nats) of each row of `tokens` under the model's guided
    /// distribution with `req`'s labels and cfg, at temperature 1 and without top-k / top-p
    /// ([`LlamaGen::sequence_nll`]): the likelihood half of the samplers' quality proxy.
    /// LlamaGen only.
    pub fn token_nll(&self, req: &Request, tokens: &[Vec<u32>]) -> Result<Vec<f64>> {
        let m = self.raster("the token NLL")?;
        Ok(m.gpt.sequence_nll(&req.labels, req.cfg, tokens)?)
    }

    /// The codebook similarity of a LlamaGen model, built once.
    fn similarity_of(&self, m: &LlamaGenModel) -> Result<&TokenSimilarity> {
        if let Some(s) = self.similarity.get() {
            return Ok(s);
        }
        let s = TokenSimilarity::new(codebook_embeddings(&m.vq)?);
        Ok(self.similarity.get_or_init(|| s))
    }
}

/// LlamaGen tokens (generation order, `B` rows) decoded to images `[B, 3, H, W]` in `[0, 1]`.
fn llamagen_images(m: &LlamaGenModel, tokens: &[Vec<u32>]) -> Result<Tensor> {
    let g = m.gpt.config().grid();
    let order = m.gpt.token_order();
    let codes: Vec<u32> = tokens
        .iter()
        .flat_map(|row| order.to_raster(row, g, g))
        .collect();
    let img = m.vq.decode_indices(&codes, tokens.len(), g, g)?;
    // `save_image(normalize=True, value_range=(-1, 1))` of the official sampler.
    Ok(img.clamp(-1.0, 1.0)?.affine(0.5, 0.5)?)
}
