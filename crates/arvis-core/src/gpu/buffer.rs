//! [`GpuBuffer`]: f32 data in a device storage buffer, returned to the context's pool on drop.

use std::sync::{Arc, Weak};

use wgpu::util::DeviceExt;

use super::GpuContext;
use super::pool::{BufferPool, size_class};
use crate::error::{Error, Result};

/// Usages every arvis buffer gets: bound to kernels and copied in and out.
pub(crate) const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// `len` f32 values in a storage buffer of one [`GpuContext`].
///
/// Buffers made by [`GpuBuffer::uninit`] / [`GpuBuffer::zeros`] come from the context's pool and
/// go back to it when dropped; uploads are fresh buffers of the exact size.
#[derive(Debug)]
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    len: usize,
    pool: Option<Weak<BufferPool>>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(b), Some(pool)) = (
            self.buffer.take(),
            self.pool.as_ref().and_then(Weak::upgrade),
        ) {
            pool.give(b);
        }
    }
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
        // A fresh buffer, not a pooled one written with `queue.write_buffer`: queue writes run
        // before the commands still pending in the batch, which may read a pooled buffer's old
        // contents.
        let buffer = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("arvis upload"),
                contents: bytes,
                usage: USAGE,
            });
        Ok(GpuBuffer {
            buffer: Some(buffer),
            len: data.len(),
            pool: None,
        })
    }

    /// A pooled buffer of `len` values with unspecified contents (every kernel output is one:
    /// the kernel writes all of it).
    pub fn uninit(ctx: &GpuContext, len: usize) -> Result<Self> {
        check_size(ctx, "alloc", len)?;
        let class = size_class(len.max(1) as u64 * 4);
        let buffer = match ctx.pool.take(class) {
            Some(b) => b,
            None => ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("arvis buffer"),
                size: class,
                usage: USAGE,
                mapped_at_creation: false,
            }),
        };
        Ok(GpuBuffer {
            buffer: Some(buffer),
            len,
            pool: Some(Arc::downgrade(&ctx.pool)),
        })
    }

    /// A pooled buffer of `len` zeros (the clear is recorded in the context's batch).
    pub fn zeros(ctx: &GpuContext, len: usize) -> Result<Self> {
        let b = Self::uninit(ctx, len)?;
        ctx.record_clear(b.raw())?;
        Ok(b)
    }

    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wgpu buffer (possibly larger than `4 · len` bytes: pooled sizes are rounded up).
    pub fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until drop")
    }

    /// The binding of exactly this buffer's `len` values (at least one element).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.raw(),
            offset: 0,
            size: wgpu::BufferSize::new(self.len.max(1) as u64 * 4),
        })
    }

    /// Copies the values back to the host: submits the pending batch and waits for it.
    pub fn download(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        ctx.download(self.raw(), self.len)
    }
}

/// A buffer of `len` f32 must fit one storage binding.
pub(crate) fn check_size(ctx: &GpuContext, op: &'static str, len: usize) -> Result<()> {
    let bytes = (len as u64).saturating_mul(4);
    let limit = ctx.info().max_storage_binding;
    if bytes > limit {
        return Err(Error::gpu(
            op,
            format!(
                "{len} values ({bytes} bytes) exceed the device's storage binding limit of \
                 {limit} bytes: split the tensor"
            ),
        ));
    }
    Ok(())
}
