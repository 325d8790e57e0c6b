#![doc = include_str!("../README.md")]

pub mod builtin;
pub mod classifier;
pub mod cli;
pub mod error;
pub mod eval;
pub mod output;
pub mod pipeline;
pub mod sampler;

pub use error::{Error, Result};
pub use pipeline::{
    MarModel, MarOptions, Model, ModelSource, Pipeline, Progress, Request, SampledTokens, Sampling,
    Stage,
};
pub use sampler::{SamplerKind, SamplerOptions};

/// Attention kernels, masks and the KV cache.
pub use arvis_attention as attention;
/// The tensor core: tensors, ops, weights, RNG, sampling.
pub use arvis_core as core;
/// Model families (VAR, ...).
pub use arvis_models as models;
/// Speculative samplers and the [`SpecModel`](arvis_spec::SpecModel) trait a model implements
/// to run under them.
pub use arvis_spec as spec;
/// Tokenizers (multi-scale VQ-VAE, ...) and image I/O.
pub use arvis_tokenizer as tokenizer;
