// Row copy between head-strided [heads, rows, D] buffers: for every head h, row r < rows and
// column x < D, dst[h·dst_stride + (dst_row0 + r)·D + x] = src[h·src_stride + (src_row0 + r)·D + x].
// The KV cache's append (new rows into the preallocated [B·H, capacity, D] buffers) and its
// keys()/values() gather (the valid prefix into a [B·H, len, D] tensor); recorded in the command
// batch, so it runs in program order with the attention kernels reading the cache.
//
// Launcher: arvis-attention/src/gpu/mod.rs (`copy_rows`); CPU reference: KvCache's host path;
// test: crates/arvis-attention/tests/gpu.rs.

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;

struct Params {
    // heads · rows · D
    len: u32,
    groups_x: u32,
    rows: u32,
    d: u32,
    src_stride: u32,
    src_row0: u32,
    dst_stride: u32,
    dst_row0: u32,
}
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.groups_x * 256u;
    if idx >= params.len {
        return;
    }
    let x = idx % params.d;
    let hr = idx / params.d;
    let r = hr % params.rows;
    let h = hr / params.rows;
    dst[h * params.dst_stride + (params.dst_row0 + r) * params.d + x] =
        src[h * params.src_stride + (params.src_row0 + r) * params.d + x];
}
