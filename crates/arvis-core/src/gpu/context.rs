//! [`GpuContext`]: adapter choice, device with the adapter's real limits and useful features,
//! and the report `arvis info --gpu` prints.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::batch::Batch;
use super::pool::{BufferPool, PoolStats};

use crate::error::{Error, Result};

/// Environment variable that picks the adapter whose name contains its value (case-insensitive).
pub const ADAPTER_ENV: &str = "ARVIS_WGPU_ADAPTER";

/// What the chosen adapter and device offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    /// Adapter name (e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`).
    pub name: String,
    /// Backend (`Vulkan`, `Metal`, `Dx12`, ...).
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Largest storage buffer one binding may cover, in bytes.
    pub max_storage_binding: u64,
    /// Largest buffer, in bytes.
    pub max_buffer: u64,
    /// Workgroup shared memory, in bytes.
    pub max_workgroup_storage: u32,
    /// Invocations per workgroup.
    pub max_invocations_per_workgroup: u32,
    /// Workgroups per dispatch dimension.
    pub max_workgroups_per_dim: u32,
    /// `f16` in shaders (`SHADER_F16`), enabled on the device when the adapter has it.
    pub shader_f16: bool,
    /// Subgroup operations (`SUBGROUP`), enabled when present.
    pub subgroups: bool,
    /// GPU timestamps (`TIMESTAMP_QUERY`), enabled when present.
    pub timestamps: bool,
}

impl GpuInfo {
    /// Whether the adapter is a CPU implementation (lavapipe, llvmpipe, WARP): correct but slow,
    /// and kernels must not rely on subgroup tricks tuned for real GPUs there.
    pub fn is_cpu(&self) -> bool {
        self.device_type == "Cpu"
    }
}

impl fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "adapter:           {} ({})", self.name, self.device_type)?;
        writeln!(f, "backend:           {}", self.backend)?;
        writeln!(f, "driver:            {}", self.driver)?;
        writeln!(
            f,
            "storage binding:   {} MiB (buffer {} MiB)",
            self.max_storage_binding >> 20,
            self.max_buffer >> 20
        )?;
        writeln!(
            f,
            "workgroup:         {} B shared, {} invocations, {} groups per dim",
            self.max_workgroup_storage,
            self.max_invocations_per_workgroup,
            self.max_workgroups_per_dim
        )?;
        write!(
            f,
            "features:          shader-f16 {}, subgroups {}, timestamps {}",
            yes(self.shader_f16),
            yes(self.subgroups),
            yes(self.timestamps)
        )
    }
}

/// A wgpu device and queue on the chosen adapter, plus the compiled pipelines.
///
/// Cheap to clone (shared handles). Create one per process and pass it around.
#[derive(Clone)]
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: Arc<GpuInfo>,
    pub(crate) pipelines: Arc<Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>>,
    pub(crate) batch: Arc<Mutex<Batch>>,
    pub(crate) pool: Arc<BufferPool>,
    /// The first error the driver reported asynchronously (validation, out of memory, device
    /// lost), returned by the next sync point.
    errors: Arc<Mutex<Option<String>>>,
    host_fallbacks: Arc<AtomicU64>,
}

/// Bytes of released buffers the pool keeps for reuse (the rest are freed).
const POOL_CAP_BYTES: u64 = 4 << 30;

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Preference order when no adapter is named: a discrete GPU first, a CPU implementation last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl GpuContext {
    /// Opens the best adapter (or the one named by [`ADAPTER_ENV`]) with its own limits and
    /// the optional features arvis uses when present.
    ///
    /// Errors: [`Error::Gpu`] when no adapter exists, none matches the name, or the device
    /// request fails.
    pub fn new() -> Result<Self> {
        let wanted = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        Self::with_adapter(wanted.as_deref())
    }

    /// [`GpuContext::new`] with an explicit adapter-name substring (`None`: the best one).
    pub fn with_adapter(wanted: Option<&str>) -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let chosen = match wanted {
            Some(w) => {
                let w = w.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&w))
                    .ok_or_else(|| {
                        Error::gpu(
                            "adapter",
                            format!(
                                "no adapter name contains `{w}` ({ADAPTER_ENV}); found {names:?}"
                            ),
                        )
                    })?
            }
            None => adapters
                .into_iter()
                .min_by_key(|a| rank(a.get_info().device_type))
                .ok_or_else(|| {
                    Error::gpu(
                        "adapter",
                        "no GPU adapter found (no Vulkan/Metal/DX12 driver; on Linux without a \
                         GPU install Mesa's lavapipe: `apt-get install mesa-vulkan-drivers`)",
                    )
                })?,
        };
        let ai = chosen.get_info();
        let limits = chosen.limits();
        let optional =
            wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let features = chosen.features() & optional;
        let desc = wgpu::DeviceDescriptor {
            label: Some("arvis"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(chosen.request_device(&desc))
            .map_err(|e| Error::gpu("request_device", format!("{}: {e}", ai.name)))?;
        let info = GpuInfo {
            name: ai.name.clone(),
            backend: format!("{:?}", ai.backend),
            device_type: format!("{:?}", ai.device_type),
            driver: format!("{} {}", ai.driver, ai.driver_info)
                .trim()
                .to_owned(),
            max_storage_binding: limits.max_storage_buffer_binding_size,
            max_buffer: limits.max_buffer_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        };
        let errors: Arc<Mutex<Option<String>>> = Arc::default();
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let sink = Arc::clone(&errors);
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
            }
        });
        let pool_cap = POOL_CAP_BYTES.min(limits.max_buffer_size.saturating_mul(2));
        Ok(GpuContext {
            device,
            queue,
            info: Arc::new(info),
            pipelines: Arc::default(),
            batch: Arc::default(),
            pool: Arc::new(BufferPool::new(pool_cap)),
            errors,
            host_fallbacks: Arc::default(),
        })
    }

    /// The process-wide context behind [`Device::Gpu`](crate::Device::Gpu), opened on first use
    /// (with [`ADAPTER_ENV`] honoured).
    ///
    /// Errors: the [`GpuContext::new`] error, every time it is asked for.
    pub fn shared() -> Result<&'static GpuContext> {
        static SHARED: OnceLock<std::result::Result<GpuContext, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| GpuContext::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|msg| Error::gpu("adapter", msg.clone()))
    }

    /// Whether two handles share one device.
    pub fn same_device(&self, other: &GpuContext) -> bool {
        Arc::ptr_eq(&self.batch, &other.batch)
    }

    /// Counters of the buffer pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Frees the buffers the pool holds idle.
    pub fn release_idle_buffers(&self) {
        self.pool.clear();
    }

    /// Ops that had no GPU kernel and ran on the host (download, CPU op, upload) so far.
    pub fn host_fallbacks(&self) -> u64 {
        self.host_fallbacks.load(Ordering::Relaxed)
    }

    pub(crate) fn count_host_fallback(&self) {
        self.host_fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// The asynchronously reported error, if any (cleared).
    pub(crate) fn take_error(&self) -> Result<()> {
        let msg = self.errors.lock().ok().and_then(|mut e| e.take());
        match msg {
            Some(msg) => Err(Error::gpu("device", msg)),
            None => Ok(()),
        }
    }

    /// Waits for the queue without submitting anything.
    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::gpu("sync", e.to_string()))?;
        self.take_error()
    }

    /// The adapter and device report.
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }

    /// Submits the pending batch and waits until every submitted command has finished.
    ///
    /// Errors: the first error the driver reported since the last sync point.
    pub fn sync(&self) -> Result<()> {
        self.submit()?;
        self.wait()
    }
}
