//! The wgpu runtime: [`GpuContext`] (adapter, device, pipeline cache), [`GpuBuffer`] (f32 data
//! on the device with upload and download) and the first kernels ([`ops`]).
//!
//! Kernels are WGSL files in the workspace's `shaders/` directory, one op per file, included at
//! compile time; each has a thin launcher here and its CPU reference in `ops/`. Not yet wired
//! into [`Tensor`](crate::Tensor): that is the GPU issue's next step (a `Storage::Gpu` variant).

mod buffer;
mod context;
pub mod ops;

pub use buffer::GpuBuffer;
pub use context::{ADAPTER_ENV, GpuContext, GpuInfo};
