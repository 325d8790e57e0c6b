//! [`GpuBuffer`]: f32 data in a device storage buffer.

use wgpu::util::DeviceExt;

use super::GpuContext;
use crate::error::{Error, Result};

/// `len` f32 values in a storage buffer of one [`GpuContext`].
#[derive(Debug)]
pub struct GpuBuffer {
    pub(crate) buffer: wgpu::Buffer,
    len: usize,
}

impl GpuBuffer {
    /// Copies `data` to a new device buffer.
    ///
    /// Errors: [`Error::Gpu`] if the data exceeds the device's storage-binding limit.
    pub fn upload(ctx: &GpuContext, data: &[f32]) -> Result<Self> {
        check_size(ctx, "upload", data.len())?;
        // wgpu rejects zero-sized bindings: keep at least one element.
        let padded;
        let bytes: &[u8] = if data.is_empty() {
            padded = [0f32];
            bytemuck::cast_slice(&padded)
        } else {
            bytemuck::cast_slice(data)
        };
        let buffer = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("arvis upload"),
                contents: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            });
        Ok(GpuBuffer {
            buffer,
            len: data.len(),
        })
    }

    /// An uninitialised (zeroed by wgpu) buffer of `len` values.
    pub fn zeros(ctx: &GpuContext, len: usize) -> Result<Self> {
        check_size(ctx, "alloc", len)?;
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arvis buffer"),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(GpuBuffer { buffer, len })
    }

    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the values back to the host (submits pending work and waits for it).
    pub fn download(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        if self.len == 0 {
            return Ok(Vec::new());
        }
        let size = (self.len * 4) as u64;
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arvis download"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("arvis download"),
            });
        enc.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, size);
        ctx.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.sync()?;
        rx.recv()
            .map_err(|e| Error::gpu("download", e.to_string()))?
            .map_err(|e| Error::gpu("download", e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::gpu("download", e.to_string()))?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }
}

/// A buffer of `len` f32 must fit one storage binding.
fn check_size(ctx: &GpuContext, op: &'static str, len: usize) -> Result<()> {
    let bytes = (len as u64).saturating_mul(4);
    let limit = ctx.info().max_storage_binding;
    if bytes > limit {
        return Err(Error::gpu(
            op,
            format!("{bytes} bytes exceed the device's storage binding limit of {limit} bytes"),
        ));
    }
    Ok(())
}
