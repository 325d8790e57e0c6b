// Strided copy (rank ≤ 8): element i of a logical shape `dims` (row-major) is read at
// src_off + Σ idx[d]·src_strides[d] and written at dst_off + Σ idx[d]·dst_strides[d]. One kernel
// for every layout op: permute/transpose (permuted source strides, contiguous destination),
// narrow (a source offset along the narrowed dim), and each input's slab of a concat (destination
// strides of the output, offset by the slabs before it).
// Launcher: arvis-core/src/gpu/ops/layout.rs (`strided_copy`); CPU reference:
// Tensor::{permute, transpose, narrow, split, chunk, concat} (ops/shape.rs); test:
// crates/arvis-core/tests/device_nn.rs.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    groups_x: u32,
    rank: u32,
    src_off: u32,
    dst_off: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // Logical dims, innermost last, and the element strides of source and destination, packed
    // 4 per vec4 (uniform arrays need 16-byte elements).
    dims: array<vec4<u32>, 2>,
    src_strides: array<vec4<u32>, 2>,
    dst_strides: array<vec4<u32>, 2>,
}
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i >= params.len {
        return;
    }
    var rest = i;
    var src = params.src_off;
    var dst = params.dst_off;
    for (var d = 0u; d < params.rank; d++) {
        let k = params.rank - 1u - d;
        let n = params.dims[k / 4u][k % 4u];
        let c = rest % n;
        rest = rest / n;
        src += c * params.src_strides[k / 4u][k % 4u];
        dst += c * params.dst_strides[k / 4u][k % 4u];
    }
    out[dst] = x[src];
}
