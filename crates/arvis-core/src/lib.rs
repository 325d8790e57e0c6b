#![doc = include_str!("../README.md")]

pub mod error;
pub mod gpu;
pub mod ops;
pub mod rng;
pub mod sampling;
pub mod tensor;
pub mod tolerance;
pub mod weights;

/// The ndarray version `Tensor::from_ndarray` / `to_ndarray` speak.
pub use ndarray;

pub use error::{Error, Result};
pub use rng::SeededRng;
pub use tensor::{Device, Storage, Tensor};
pub use tolerance::Tolerance;
pub use weights::{Weights, WeightsScope};
