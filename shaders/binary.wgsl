// Elementwise binary ops with numpy broadcasting (rank ≤ 8), one pipeline per op (override
// `OP`): out[i] = a[ia] ∘ b[ib], where ia/ib follow each operand's broadcast strides (0 along
// broadcast dims).
// Launcher: arvis-core/src/gpu/ops/elementwise.rs (`binary`); CPU reference: Tensor::{add, sub,
// mul, div}; test: crates/arvis-core/tests/device_ops.rs.

// 0 add, 1 sub, 2 mul, 3 div.
// variants: OP=0..3
override OP: u32 = 0u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    groups_x: u32,
    rank: u32,
    // Both operands contiguous with the output's shape: skip the index arithmetic.
    same: u32,
    // Output dims, innermost last, and each operand's element strides (0 where broadcast),
    // packed 4 per vec4 (uniform arrays need 16-byte elements).
    dims: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}
@group(0) @binding(3) var<uniform> params: Params;

fn op(p: f32, q: f32) -> f32 {
    switch OP {
        case 0u: { return p + q; }
        case 1u: { return p - q; }
        case 2u: { return p * q; }
        default: { return p / q; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i >= params.len {
        return;
    }
    if params.same == 1u {
        out[i] = op(a[i], b[i]);
        return;
    }
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = 0u; d < params.rank; d++) {
        let k = params.rank - 1u - d;
        let n = params.dims[k / 4u][k % 4u];
        let c = rest % n;
        rest = rest / n;
        ia += c * params.a_strides[k / 4u][k % 4u];
        ib += c * params.b_strides[k / 4u][k % 4u];
    }
    out[i] = op(a[ia], b[ib]);
}
