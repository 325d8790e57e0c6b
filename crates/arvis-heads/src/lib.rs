#![doc = include_str!("../README.md")]

pub mod closed_form;
pub mod diffusion;
pub mod disa;
pub mod error;
pub mod flow;
pub mod mlp_adaln;
pub mod noise;
pub mod schedule;

/// Categorical-head helpers (temperature, top-k/top-p, CFG mixing) shared by the token models:
/// they live in `arvis-core` and are re-exported here, not duplicated.
pub use arvis_core::sampling as categorical;

pub use diffusion::{DenoiseModel, DiffusionMethod, DiffusionSampler};
pub use disa::{StepAnnealing, StepSchedule};
pub use error::{HeadError, Result};
pub use flow::{FlowMethod, FlowSampler, Guidance, TimeGrid, VelocityModel};
pub use mlp_adaln::{ConditionedHead, DiffusionHead, DiffusionHeadConfig};
pub use noise::{NoiseSource, OnDevice, RecordedNoise};
pub use schedule::RespacedSchedule;
