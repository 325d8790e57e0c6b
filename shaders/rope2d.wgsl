// 2D rotary position embedding with interleaved pairs (LlamaGen): for x [..., L, D] and a
// cos/sin table [rows, P] (P = D/2), sequence row l at table position start + l,
// (x[2p], x[2p+1]) ↦ (x₀·cos − x₁·sin, x₀·sin + x₁·cos). One thread per pair.
// Launcher: arvis-attention/src/rope.rs (`rope2d`); CPU reference: the same function's host
// path; test: crates/arvis-attention/tests/rope.rs (against a naive f64 rotation).

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_t: array<f32>;
@group(0) @binding(2) var<storage, read> sin_t: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

struct Params {
    // Pairs in x.
    len: u32,
    groups_x: u32,
    l: u32,
    pairs: u32,
    start: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x + gid.y * params.groups_x * 256u;
    if idx >= params.len {
        return;
    }
    let p = idx % params.pairs;
    let row = (idx / params.pairs) % params.l;
    let t = (params.start + row) * params.pairs + p;
    let c = cos_t[t];
    let s = sin_t[t];
    let x0 = x[2u * idx];
    let x1 = x[2u * idx + 1u];
    out[2u * idx] = x0 * c - x1 * s;
    out[2u * idx + 1u] = x0 * s + x1 * c;
}
