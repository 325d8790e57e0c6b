// Index of the maximum along one dim: the tensor is viewed as (outer, n, inner) and one
// workgroup reduces row r = (o, j), x[(o·n + i)·inner + j] for i < n, through a shared-memory
// tree of (value, index) pairs. Order as on the CPU (and PyTorch): NaN counts as the maximum,
// and on ties (or between NaNs) the lower index wins. The output holds u32 indices (the buffer
// is typed f32 on the host; the launcher reads the bits back).
// Launcher: arvis-core/src/gpu/ops/reduce.rs (`argmax`); CPU reference: Tensor::argmax
// (ops/shape.rs); test: crates/arvis-core/tests/device_nn.rs.

// Threads per row (a power of two, 32..256): the launcher sizes it to the row.
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: WG=32,64,128,256
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

struct Params {
    rows: u32,
    n: u32,
    inner: u32,
    groups_x: u32,
}
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

// NaN tested on the bit pattern: implementations may assume floats are not NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Whether (av, ai) comes before (bv, bi): NaN first, then larger, then lower index.
fn better(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
    let an = is_nan(av);
    let bn = is_nan(bv);
    if an != bn {
        return an;
    }
    if !an && av != bv {
        return av > bv;
    }
    return ai < bi;
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
    let live = min(n, WG);

    var bv = 0.0;
    var bi = 0u;
    if lid < n {
        bv = x[base + lid * inner];
        bi = lid;
    }
    for (var i = lid + WG; i < n; i += WG) {
        let v = x[base + i * inner];
        if better(v, i, bv, bi) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    // Slots at or past `live` hold no element and are never read.
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s && lid + s < live {
            let ov = best_v[lid + s];
            let oi = best_i[lid + s];
            if better(ov, oi, best_v[lid], best_i[lid]) {
                best_v[lid] = ov;
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[r] = best_i[0];
    }
}
