// Elementwise sum of two equal-length f32 arrays: out[i] = a[i] + b[i].
// Launcher: arvis-core/src/gpu/ops.rs (`add`); CPU reference: Tensor::add; test:
// crates/arvis-core/tests/gpu.rs.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    // Workgroups along x per row of the 2-D dispatch (large arrays exceed 65535 groups in x).
    groups_x: u32,
}
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i < params.len {
        out[i] = a[i] + b[i];
    }
}
