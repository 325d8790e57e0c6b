//! [`BufferPool`]: device buffers reused across ops and generation steps.
//!
//! Sizes are rounded up to one of four classes per power of two (at most 25 % slack), so a
//! released buffer serves any later request of the same class. Reuse is safe without fences
//! because every kernel is recorded in program order on one queue: a buffer returns to the pool
//! only after its last use was recorded, and its next user is recorded (so runs) after that.

use std::collections::HashMap;
use std::sync::Mutex;

/// Bytes of the smallest class.
const MIN_BYTES: u64 = 256;

/// Released buffers by size class, with a cap on the bytes kept idle.
#[derive(Debug)]
pub(crate) struct BufferPool {
    inner: Mutex<PoolInner>,
}

#[derive(Debug, Default)]
struct PoolInner {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    idle_bytes: u64,
    cap_bytes: u64,
    stats: PoolStats,
}

/// Counters of a [`BufferPool`](crate::gpu::GpuContext::pool_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests served by a released buffer.
    pub reused: u64,
    /// Requests that created a new buffer.
    pub created: u64,
    /// Bytes currently held idle for reuse.
    pub idle_bytes: u64,
}

/// The byte size a request of `bytes` is rounded up to.
pub(crate) fn size_class(bytes: u64) -> u64 {
    if bytes <= MIN_BYTES {
        return MIN_BYTES;
    }
    // Four classes per octave: round up to a multiple of 2^(floor(log2 bytes) - 2).
    let step = 1u64 << (63 - bytes.leading_zeros() - 2);
    bytes.div_ceil(step) * step
}

impl BufferPool {
    pub(crate) fn new(cap_bytes: u64) -> Self {
        BufferPool {
            inner: Mutex::new(PoolInner {
                cap_bytes,
                ..Default::default()
            }),
        }
    }

    /// A buffer of exactly `class` bytes from the free list, if one is idle.
    pub(crate) fn take(&self, class: u64) -> Option<wgpu::Buffer> {
        let mut p = self.inner.lock().ok()?;
        let b = p.free.get_mut(&class).and_then(Vec::pop);
        match &b {
            Some(_) => {
                p.idle_bytes -= class;
                p.stats.reused += 1;
            }
            None => p.stats.created += 1,
        }
        b
    }

    /// Keeps `buffer` for reuse, or lets it go when the idle cap would be exceeded.
    pub(crate) fn give(&self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        let Ok(mut p) = self.inner.lock() else { return };
        if p.idle_bytes + class > p.cap_bytes {
            return; // dropped: wgpu frees it once no recorded command uses it
        }
        p.idle_bytes += class;
        p.free.entry(class).or_default().push(buffer);
    }

    /// Frees every idle buffer.
    pub(crate) fn clear(&self) {
        if let Ok(mut p) = self.inner.lock() {
            p.free.clear();
            p.idle_bytes = 0;
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.inner
            .lock()
            .map(|p| PoolStats {
                idle_bytes: p.idle_bytes,
                ..p.stats
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn classes_cover_the_request_with_at_most_a_quarter_slack() {
        for bytes in (1..5000u64).chain([1 << 20, (1 << 20) + 1, 3_000_000_007]) {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            if bytes > 256 {
                assert!(c * 4 <= bytes * 5 + 4 * 256, "{bytes} -> {c}");
            }
            assert_eq!(size_class(c), c, "a class is its own class");
        }
    }
}
