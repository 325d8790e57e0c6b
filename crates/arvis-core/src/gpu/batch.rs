//! Command batching, kernel launch and the timestamp profiler.
//!
//! Every op records a compute pass into the context's pending command encoder; the encoder is
//! submitted when [`MAX_OPS_PER_BATCH`] passes have accumulated, when data is read back, or on
//! [`GpuContext::sync`]. A generation step is therefore a handful of submits, not one per op.

use std::collections::HashMap;
use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::GpuContext;
use crate::error::{Error, Result};

/// Passes recorded before the batch is submitted without being asked.
pub const MAX_OPS_PER_BATCH: u32 = 256;

/// A WGSL compute shader from `shaders/`, entry point `main`.
///
/// Binding convention (every arvis shader follows it, `cargo xtask codegen` checks they parse):
/// group 0, bindings `0..n` the storage buffers in the launcher's order (inputs, then outputs),
/// binding `n` a uniform `Params` struct when the kernel has parameters.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// File name in `shaders/` (the pipeline cache key, with the override constants).
    pub name: &'static str,
    /// The WGSL source (`include_str!`).
    pub source: &'static str,
}

/// One kernel launch: what [`GpuContext::launch`] records.
#[derive(Clone, Copy, Debug)]
pub struct Dispatch<'a> {
    /// The shader.
    pub kernel: &'a Kernel,
    /// Values of the shader's `override` constants (part of the pipeline cache key).
    pub constants: &'a [(&'static str, f64)],
    /// Storage buffers bound at `0..n`.
    pub buffers: &'a [&'a super::GpuBuffer],
    /// Bytes of the uniform `Params` at binding `n` (empty: none). Padded to 16 bytes.
    pub params: &'a [u8],
    /// Workgroups in x, y, z.
    pub groups: [u32; 3],
    /// The op's name in profiles and errors.
    pub label: &'static str,
}

/// The pending encoder and, when profiling, its timestamp queries.
#[derive(Default)]
pub(crate) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    ops: u32,
    profiler: Option<Profiler>,
}

/// Per-op GPU time from timestamp queries written at the start and end of every pass.
pub(crate) struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    labels: Vec<&'static str>,
    totals: HashMap<&'static str, OpTime>,
}

/// Accumulated GPU time of one op name.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpTime {
    /// Launches timed.
    pub count: u64,
    /// Total GPU time in nanoseconds.
    pub nanos: f64,
}

impl GpuContext {
    /// Records one kernel launch into the pending batch (submitted at the next sync point).
    ///
    /// Errors: [`Error::Gpu`] when a dimension of `groups` exceeds the device's limit. Errors the
    /// driver reports later (validation, out of memory) surface at the next sync point.
    pub fn launch(&self, d: &Dispatch<'_>) -> Result<()> {
        let max = self.info().max_workgroups_per_dim;
        if d.groups.iter().any(|&g| g > max) {
            return Err(Error::gpu(
                d.label,
                format!(
                    "{:?} workgroups exceed the device's {max} per dimension",
                    d.groups
                ),
            ));
        }
        if d.groups.contains(&0) {
            return Ok(());
        }
        let pipeline = self.pipeline(d.kernel, d.constants)?;
        let params = (!d.params.is_empty()).then(|| {
            let mut bytes = d.params.to_vec();
            bytes.resize(d.params.len().next_multiple_of(16), 0);
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(d.label),
                    contents: &bytes,
                    usage: wgpu::BufferUsages::UNIFORM,
                })
        });
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = d
            .buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.binding(),
            })
            .collect();
        if let Some(p) = &params {
            entries.push(wgpu::BindGroupEntry {
                binding: d.buffers.len() as u32,
                resource: p.as_entire_binding(),
            });
        }
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(d.label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut guard = self.lock_batch()?;
        let batch = &mut *guard;
        let index = batch.ops;
        let timestamp_writes = batch.profiler.as_mut().map(|p| {
            p.labels.push(d.label);
            wgpu::ComputePassTimestampWrites {
                query_set: &p.set,
                beginning_of_pass_write_index: Some(2 * index),
                end_of_pass_write_index: Some(2 * index + 1),
            }
        });
        let encoder = batch.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("arvis"),
                })
        });
        // Re-borrow: the timestamp writes borrow the profiler, the pass borrows the encoder.
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(d.label),
                timestamp_writes,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
        batch.ops += 1;
        if batch.ops >= MAX_OPS_PER_BATCH {
            self.flush(batch)?;
        }
        Ok(())
    }

    /// Records a zero-fill of `buffer` into the batch.
    pub(crate) fn record_clear(&self, buffer: &wgpu::Buffer) -> Result<()> {
        let mut batch = self.lock_batch()?;
        let encoder = batch.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("arvis"),
                })
        });
        encoder.clear_buffer(buffer, 0, None);
        Ok(())
    }

    /// Submits the pending batch without waiting for it.
    pub fn submit(&self) -> Result<()> {
        let mut batch = self.lock_batch()?;
        self.flush(&mut batch)
    }

    /// Copies `len` f32 values of `src` to the host; submits the batch and waits.
    pub(crate) fn download(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let size = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arvis download"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut batch = self.lock_batch()?;
            let encoder = batch.encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("arvis"),
                    })
            });
            encoder.copy_buffer_to_buffer(src, 0, &staging, 0, size);
            self.flush(&mut batch)?;
        }
        let view = self.map_read(&staging, "download")?;
        let out = bytemuck::cast_slice::<u8, f32>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Maps a `MAP_READ` buffer whose copy was submitted, waiting for the queue.
    fn map_read(&self, buffer: &wgpu::Buffer, op: &'static str) -> Result<wgpu::BufferView> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| Error::gpu(op, e.to_string()))?
            .map_err(|e| Error::gpu(op, e.to_string()))?;
        buffer
            .get_mapped_range(..)
            .map_err(|e| Error::gpu(op, e.to_string()))
    }

    /// Submits the batch (resolving its timestamps when profiling) and clears it.
    fn flush(&self, batch: &mut Batch) -> Result<()> {
        let Some(mut encoder) = batch.encoder.take() else {
            return self.take_error();
        };
        let timed = batch
            .profiler
            .as_ref()
            .map(|p| p.labels.len() as u32)
            .filter(|&n| n > 0);
        if let (Some(n), Some(p)) = (timed, batch.profiler.as_ref()) {
            encoder.resolve_query_set(&p.set, 0..2 * n, &p.resolve, 0);
            encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.readback, 0, u64::from(2 * n) * 8);
        }
        self.queue.submit([encoder.finish()]);
        batch.ops = 0;
        if let (Some(n), Some(p)) = (timed, batch.profiler.as_mut()) {
            let period = f64::from(self.queue.get_timestamp_period());
            let stamps: Vec<u64> = {
                let view = self.map_read(&p.readback, "profile")?;
                bytemuck::cast_slice::<u8, u64>(&view)[..2 * n as usize].to_vec()
            };
            p.readback.unmap();
            for (i, label) in p.labels.drain(..).enumerate() {
                let t = p.totals.entry(label).or_default();
                t.count += 1;
                t.nanos += stamps[2 * i + 1].saturating_sub(stamps[2 * i]) as f64 * period;
            }
        }
        self.take_error()
    }

    /// Turns the per-op timestamp profiler on (resetting it) or off.
    ///
    /// Errors: [`Error::Gpu`] when the device has no `TIMESTAMP_QUERY`.
    pub fn set_profiling(&self, on: bool) -> Result<()> {
        if on && !self.info().timestamps {
            return Err(Error::gpu(
                "profile",
                "the adapter has no TIMESTAMP_QUERY feature",
            ));
        }
        let mut batch = self.lock_batch()?;
        self.flush(&mut batch)?;
        batch.profiler = on.then(|| {
            let entries = 2 * MAX_OPS_PER_BATCH;
            let bytes = u64::from(entries) * 8;
            Profiler {
                set: self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("arvis profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: entries,
                }),
                resolve: self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("arvis profile resolve"),
                    size: bytes,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("arvis profile readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                labels: Vec::new(),
                totals: HashMap::new(),
            }
        });
        Ok(())
    }

    /// GPU time per op name since profiling was turned on, longest first (submits the batch).
    pub fn profile(&self) -> Result<Vec<(&'static str, OpTime)>> {
        let mut batch = self.lock_batch()?;
        self.flush(&mut batch)?;
        let mut rows: Vec<_> = batch
            .profiler
            .as_ref()
            .map(|p| p.totals.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        rows.sort_by(|a, b| b.1.nanos.total_cmp(&a.1.nanos));
        Ok(rows)
    }

    fn lock_batch(&self) -> Result<std::sync::MutexGuard<'_, Batch>> {
        self.batch
            .lock()
            .map_err(|_| Error::gpu("batch", "command batch poisoned by a panic"))
    }

    /// The compute pipeline of `kernel` with `constants`, compiled once per context.
    pub(crate) fn pipeline(
        &self,
        kernel: &Kernel,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        if cfg!(debug_assertions) && !super::variants::is_declared(kernel.source, constants) {
            return Err(Error::gpu(
                "pipeline",
                format!(
                    "{} launched with {constants:?}, a variant its `// variants:` header does not \
                     declare (add it so `cargo xtask codegen` validates it)",
                    kernel.name
                ),
            ));
        }
        let mut key = String::from(kernel.name);
        for (k, v) in constants {
            key.push_str(&format!("|{k}={v}"));
        }
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::gpu("pipeline", "pipeline cache poisoned"))?;
        if let Some(p) = cache.get(&key) {
            return Ok(Arc::clone(p));
        }
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            });
        let pipeline = Arc::new(self.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every arvis kernel initialises the shared memory it reads.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            },
        ));
        cache.insert(key, Arc::clone(&pipeline));
        Ok(pipeline)
    }
}

/// Workgroup counts for `n` threads in groups of `wg`, folded into a 2-D grid when x alone
/// would exceed `max` groups. Returns the grid and the groups per row (`groups_x`) the shader
/// uses to rebuild the linear index `gid.x + gid.y · groups_x · wg`.
pub fn grid_1d(n: usize, wg: u32, max: u32) -> Result<([u32; 3], u32)> {
    let groups = u32::try_from(n.div_ceil(wg as usize))
        .map_err(|_| Error::gpu("grid", format!("{n} threads need too many workgroups")))?;
    if groups <= max {
        return Ok(([groups, 1, 1], groups.max(1)));
    }
    let gy = groups.div_ceil(max);
    if gy > max {
        return Err(Error::gpu(
            "grid",
            format!("{n} threads need too many workgroups"),
        ));
    }
    Ok(([max, gy, 1], max))
}
