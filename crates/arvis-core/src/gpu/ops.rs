//! Launchers of the WGSL kernels in `shaders/`, one function per op; each file's header names
//! the CPU reference and the test.

use wgpu::util::DeviceExt;

use super::{GpuBuffer, GpuContext};
use crate::error::{Error, Result};

/// Threads per workgroup of the elementwise kernels (`@workgroup_size(256)`).
const WORKGROUP: u32 = 256;

/// `a + b` elementwise (`shaders/add.wgsl`; CPU reference: [`Tensor::add`](crate::Tensor::add)).
///
/// Errors: [`Error::Gpu`] if the lengths differ or the array needs more workgroups than the
/// device allows.
pub fn add(ctx: &GpuContext, a: &GpuBuffer, b: &GpuBuffer) -> Result<GpuBuffer> {
    const OP: &str = "add";
    if a.len() != b.len() {
        return Err(Error::gpu(
            OP,
            format!("lengths differ: {} vs {}", a.len(), b.len()),
        ));
    }
    let out = GpuBuffer::zeros(ctx, a.len())?;
    if a.is_empty() {
        return Ok(out);
    }
    let len = u32::try_from(a.len()).map_err(|_| Error::gpu(OP, "more than 2^32 elements"))?;
    let groups = len.div_ceil(WORKGROUP);
    let max = ctx.info().max_workgroups_per_dim;
    // A 2-D grid when one dimension is not enough (the shader folds it back).
    let (gx, gy) = if groups <= max {
        (groups, 1)
    } else {
        (max, groups.div_ceil(max))
    };
    if gy > max {
        return Err(Error::gpu(
            OP,
            format!("{len} elements need too many workgroups"),
        ));
    }
    let pipeline = ctx.pipeline("add.wgsl", include_str!("../../../../shaders/add.wgsl"))?;
    let params = ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("add params"),
            contents: bytemuck::cast_slice(&[len, gx]),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    let layout = pipeline.get_bind_group_layout(0);
    let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("add"),
        layout: &layout,
        entries: &[
            entry(0, &a.buffer),
            entry(1, &b.buffer),
            entry(2, &out.buffer),
            entry(3, &params),
        ],
    });
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(OP) });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(OP),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
    ctx.queue.submit([enc.finish()]);
    Ok(out)
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}
