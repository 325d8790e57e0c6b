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
pub mod variants;

pub use batch::{Dispatch, Kernel, MAX_OPS_PER_BATCH, OpTime, grid_1d};
pub use buffer::GpuBuffer;
pub use context::{ADAPTER_ENV, GpuContext, GpuInfo};
pub use pool::PoolStats;

/// For test suites: whether tests on `device` can run. The CPU always can; for the GPU, when no
/// adapter exists this prints why to stderr and returns `Ok(false)` (skip), except under
/// `CI=true`, where a missing adapter is an error (CI installs Mesa's lavapipe).
///
/// Errors: [`Error::Gpu`](crate::Error::Gpu) under `CI=true` without an adapter.
pub fn ready_for_tests(device: crate::Device) -> crate::Result<bool> {
    if device == crate::Device::Cpu {
        return Ok(true);
    }
    match GpuContext::shared() {
        Ok(_) => Ok(true),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => Err(crate::Error::Gpu {
            op: "adapter",
            msg: format!("CI=true but no GPU adapter: {e}"),
        }),
        Err(e) => {
            // Straight to stderr: the test harness captures `eprintln!`, and the skip must show.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED GPU test: no adapter ({e})");
            Ok(false)
        }
    }
}

/// For test suites: one `#[test]` per device from a generic body `fn(Device) -> Result<(), E>`.
/// `device_tests! { silu_matches_f64: silu_case; }` defines `silu_matches_f64::cpu` and
/// `silu_matches_f64::gpu`; the GPU one skips (with a message) without an adapter outside CI, as
/// [`ready_for_tests`] says.
#[macro_export]
macro_rules! device_tests {
    ($($name:ident: $body:ident;)*) => {$(
        mod $name {
            #[test]
            fn cpu() -> ::std::result::Result<(), ::std::boxed::Box<dyn ::std::error::Error>> {
                super::$body($crate::Device::Cpu).map_err(::std::convert::Into::into)
            }
            #[test]
            fn gpu() -> ::std::result::Result<(), ::std::boxed::Box<dyn ::std::error::Error>> {
                if !$crate::gpu::ready_for_tests($crate::Device::Gpu)? {
                    return Ok(());
                }
                super::$body($crate::Device::Gpu).map_err(::std::convert::Into::into)
            }
        }
    )*};
}
