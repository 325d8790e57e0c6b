//! Launchers of the WGSL kernels in `shaders/`, one module per op family, named like the shader
//! and the CPU reference (`elementwise.rs` ↔ `unary.wgsl`/`binary.wgsl` ↔ `ops/unary.rs`,
//! `ops/broadcast.rs`). Tensor ops call these when their operands are on the GPU.

pub(crate) mod elementwise;
pub(crate) mod layout;
pub(crate) mod linalg;
pub(crate) mod reduce;
pub(crate) mod resize;

use super::GpuBuffer;
use crate::tensor::Tensor;

/// A kernel from `shaders/` by file name.
macro_rules! kernel {
    ($file:literal) => {
        $crate::gpu::Kernel {
            name: $file,
            source: include_str!(concat!("../../../../../shaders/", $file)),
        }
    };
}
pub(crate) use kernel;

/// The GPU buffer of a tensor the caller knows is on the GPU.
pub(crate) fn buf(t: &Tensor) -> &GpuBuffer {
    t.as_gpu()
        .expect("internal: GPU launcher given a CPU tensor")
        .buffer()
}
