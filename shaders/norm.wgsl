// Row normalisations, one pipeline per op and affine variant (overrides `OP`, `HAS_W`,
// `HAS_B`). The tensor is viewed as rows of n values x[base + i·inner] (base = (r / inner)·n·inner
// + r % inner); one workgroup normalises one row with shared-memory tree reductions:
//   OP 0 layer/group norm: two passes, mean then Σ(x − mean)², y = (x − mean)/√(var + eps)
//   OP 1 RMS norm:         y = x/√(Σx²/n + eps)
//   OP 2 L2 normalise:     y = x/max(√Σx², eps)
// then y·w[c] + b[c] where c = (r % groups)·cpg + i / spatial: c = i for a layer norm (groups 1,
// spatial 1); a group norm's row is one (sample, group): cpg channels of `spatial` values.
// Launcher: arvis-core/src/gpu/ops/reduce.rs (`norm`); CPU reference: Tensor::{layer_norm,
// rms_norm, group_norm, l2_normalize} (ops/norm.rs); test: crates/arvis-core/tests/device_nn.rs.

// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: OP=0..2 HAS_W=0,1 HAS_B=0,1 WG=32,64,128,256
override OP: u32 = 0u;
override HAS_W: bool = false;
override HAS_B: bool = false;

// Threads per row (a power of two, 32..256): the launcher sizes it to the row.
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
// Without a weight/bias the launcher binds `x` here; the shader does not read it.
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

struct Params {
    rows: u32,
    n: u32,
    inner: u32,
    groups_x: u32,
    spatial: u32,
    groups: u32,
    cpg: u32,
    eps: f32,
}
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> red: array<f32, WG>;

// Σ over the workgroup (shared-memory tree), the result uniform. Called in uniform control flow.
fn sum_all(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = workgroupUniformLoad(&red[0]);
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let r = wid.x + wid.y * params.groups_x;
    if r >= params.rows {
        return;
    }
    let n = params.n;
    let inner = params.inner;
    let base = (r / inner) * n * inner + r % inner;

    var mean = 0.0;
    if OP == 0u {
        var s = 0.0;
        for (var i = lid; i < n; i += WG) {
            s += x[base + i * inner];
        }
        mean = sum_all(lid, s) / f32(n);
    }
    var ss = 0.0;
    for (var i = lid; i < n; i += WG) {
        let d = x[base + i * inner] - mean;
        ss += d * d;
    }
    ss = sum_all(lid, ss);

    var scale = 1.0;
    var denom = 1.0;
    switch OP {
        case 0u, 1u: {
            scale = 1.0 / sqrt(ss / f32(n) + params.eps);
        }
        default: {
            denom = max(sqrt(ss), params.eps);
        }
    }
    let c0 = (r % params.groups) * params.cpg;
    for (var i = lid; i < n; i += WG) {
        let at = base + i * inner;
        var y: f32;
        if OP == 2u {
            y = x[at] / denom;
        } else {
            y = (x[at] - mean) * scale;
        }
        let c = c0 + i / params.spatial;
        if HAS_W {
            y *= w[c];
        }
        if HAS_B {
            y += b[c];
        }
        out[at] = y;
    }
}
