// Fused AdaLN modulation with numpy broadcasting (rank ≤ 8): out = x·(1 + scale) + shift, where
// each operand is read through its broadcast strides (0 along broadcast dims); typically x
// [B, L, C] with scale and shift [B, 1, C].
// Launcher: arvis-core/src/gpu/ops/elementwise.rs (`modulate`); CPU reference: Tensor::modulate
// (ops/modulate.rs); test: crates/arvis-core/tests/device_nn.rs.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read> shift: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    groups_x: u32,
    rank: u32,
    // All three operands contiguous with the output's shape: skip the index arithmetic.
    same: u32,
    dims: array<vec4<u32>, 2>,
    x_strides: array<vec4<u32>, 2>,
    scale_strides: array<vec4<u32>, 2>,
    shift_strides: array<vec4<u32>, 2>,
}
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i >= params.len {
        return;
    }
    if params.same == 1u {
        out[i] = x[i] * (1.0 + scale[i]) + shift[i];
        return;
    }
    var rest = i;
    var ix = 0u;
    var isc = 0u;
    var ish = 0u;
    for (var d = 0u; d < params.rank; d++) {
        let k = params.rank - 1u - d;
        let n = params.dims[k / 4u][k % 4u];
        let c = rest % n;
        rest = rest / n;
        ix += c * params.x_strides[k / 4u][k % 4u];
        isc += c * params.scale_strides[k / 4u][k % 4u];
        ish += c * params.shift_strides[k / 4u][k % 4u];
    }
    out[i] = x[ix] * (1.0 + scale[isc]) + shift[ish];
}
