// Embedding gather: out[t·d + j] = table[ids[t]·d + j] for a [V, d] table. The ids are u32
// (uploaded into an f32-typed buffer as their bit patterns); the host has already rejected any
// id ≥ V, as the CPU op does.
// Launcher: arvis-core/src/gpu/ops/layout.rs (`embedding`); CPU reference: Tensor::embedding
// (ops/shape.rs); test: crates/arvis-core/tests/device_nn.rs.

@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    groups_x: u32,
    // Row length (the embedding width).
    d: u32,
    _pad: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i >= params.len {
        return;
    }
    let t = i / params.d;
    out[i] = table[ids[t] * params.d + i % params.d];
}
