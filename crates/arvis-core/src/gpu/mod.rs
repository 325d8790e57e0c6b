//! The wgpu runtime: [`GpuContext`] (adapter, device, pipeline cache, command batch, buffer
//! pool, profiler), [`GpuBuffer`] (f32 data on the device) and the kernel launchers ([`ops`]).
//!
//! Kernels are WGSL files in the workspace's `shaders/` directory, one op per file, included at
//! compile time; each has a thin launcher in [`ops`] and its CPU reference in `crate::ops`.
//! [`Tensor`](crate::Tensor)s on [`Device::Gpu`](crate::Device::Gpu) hold a [`GpuBuffer`] and
//! every tensor op dispatches to these launchers.

mod batch;
mod buffer;
mod context;
pub mod ops;
mod pool;

pub use batch::{Dispatch, Kernel, MAX_OPS_PER_BATCH, OpTime, grid_1d};
pub use buffer::GpuBuffer;
pub use context::{ADAPTER_ENV, GpuContext, GpuInfo};
pub use pool::PoolStats;
