// Softmax and log-softmax along one dim, one pipeline per op (override `OP`). The tensor is
// viewed as (outer, n, inner); row r = (o, j) holds x[(o·n + i)·inner + j] for i < n, and one
// workgroup reduces one row (max, then Σ exp) through a shared-memory tree.
// A row whose maximum is −inf (all entries masked) or NaN becomes NaN, as on the CPU.
// Launcher: arvis-core/src/gpu/ops/reduce.rs (`softmax`); CPU reference: Tensor::{softmax,
// log_softmax} (ops/softmax.rs); test: crates/arvis-core/tests/device_nn.rs.

// 0 softmax, 1 log_softmax.
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: OP=0,1 WG=32,64,128,256
override OP: u32 = 0u;

// Threads per row (a power of two, 32..256): the launcher sizes it to the row.
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

struct Params {
    rows: u32,
    n: u32,
    inner: u32,
    // Workgroups along x per row of the 2-D grid (more than 65535 rows fold into y).
    groups_x: u32,
}
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> red: array<f32, WG>;

// Tree reduction over the first `live` slots (every thread's slot below `live` holds a
// value, the rest hold nothing), so no identity element (−inf) is needed. Called in uniform
// control flow by the whole workgroup.
fn reduce(lid: u32, v: f32, live: u32, is_max: bool) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s && lid + s < live {
            let a = red[lid];
            let b = red[lid + s];
            // `b > a` is false for a NaN `b`: the maximum ignores NaN as f32::max does.
            red[lid] = select(a + b, select(a, b, b > a), is_max);
        }
        workgroupBarrier();
    }
    // Uniform: the row's later control flow may branch on it around barriers.
    let r = workgroupUniformLoad(&red[0]);
    workgroupBarrier();
    return r;
}

// Tested on bit patterns: implementations may assume floats are finite in comparisons.
fn is_neg_inf_or_nan(v: f32) -> bool {
    let bits = bitcast<u32>(v);
    return bits == 0xff800000u || (bits & 0x7fffffffu) > 0x7f800000u;
}

// eˣ of a shifted logit (≤ 0), 0 below −87.3 as the CPU's `exp_f32` (and for −inf).
fn exp_shifted(d: f32) -> f32 {
    return select(exp(d), 0.0, d < -87.3 || bitcast<u32>(d) == 0xff800000u);
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

    var m = 0.0;
    if lid < n {
        m = x[base + lid * inner];
    }
    for (var i = lid + WG; i < n; i += WG) {
        let v = x[base + i * inner];
        m = select(m, v, v > m);
    }
    m = reduce(lid, m, live, true);

    if is_neg_inf_or_nan(m) {
        // The NaN quiet bit pattern, built at run time (constant NaN is rejected by WGSL).
        let nan = bitcast<f32>(0x7fc00000u | (n & 0u));
        for (var i = lid; i < n; i += WG) {
            out[base + i * inner] = nan;
        }
        return;
    }

    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        s += exp_shifted(x[base + i * inner] - m);
    }
    s = reduce(lid, s, live, false);

    if OP == 0u {
        let inv = 1.0 / s;
        for (var i = lid; i < n; i += WG) {
            out[base + i * inner] = exp_shifted(x[base + i * inner] - m) * inv;
        }
    } else {
        let shift = m + log(s);
        for (var i = lid; i < n; i += WG) {
            out[base + i * inner] = x[base + i * inner] - shift;
        }
    }
}
