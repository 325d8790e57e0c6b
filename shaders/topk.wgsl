// Top-k along the last dim: one workgroup per row bitonic-sorts the row's indices (padded to a
// power of two, npow2) in a scratch buffer, comparing the values they point at in the order of
// the CPU's top-k: NaN first, then larger values, then the lower index (so ties and NaNs come
// out as on the CPU whatever the network does); padding sorts last. Then the first k indices
// and their values are written out. The keys live in storage memory (a 16384-long row of keys
// and indices would not fit workgroup memory); `storageBarrier` orders the steps, which is
// enough because only this workgroup touches its row.
// Launcher: arvis-core/src/gpu/ops/reduce.rs (`topk`); CPU reference: Tensor::topk
// (ops/shape.rs); test: crates/arvis-core/tests/device_nn.rs.

// Threads per row (a power of two, 32..256): the launcher sizes it to the row.
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: WG=32,64,128,256
override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> order: array<u32>;
@group(0) @binding(2) var<storage, read_write> values: array<f32>;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;

struct Params {
    rows: u32,
    n: u32,
    k: u32,
    groups_x: u32,
    // n rounded up to a power of two: each row's stretch of `order`.
    npow2: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

// NaN tested on the bit pattern: implementations may assume floats are not NaN.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Whether index a of row `base` comes before index b: padding (≥ n) last, NaN first, then
// larger, then lower index.
fn before(base: u32, a: u32, b: u32) -> bool {
    if a >= params.n {
        return false;
    }
    if b >= params.n {
        return true;
    }
    let av = x[base + a];
    let bv = x[base + b];
    let an = is_nan(av);
    let bn = is_nan(bv);
    if an != bn {
        return an;
    }
    if !an && av != bv {
        return av > bv;
    }
    return a < b;
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
    let np = params.npow2;
    let base = r * n;
    let ob = r * np;
    for (var i = lid; i < np; i += WG) {
        order[ob + i] = i;
    }
    storageBarrier();
    for (var size = 2u; size <= np; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var t = lid; t < np / 2u; t += WG) {
                let i = (t / stride) * 2u * stride + t % stride;
                let j = i + stride;
                let a = order[ob + i];
                let b = order[ob + j];
                // Blocks with (i & size) == 0 sort forwards, the others backwards; the last
                // merge (size == np) is forwards everywhere.
                let forwards = (i & size) == 0u;
                if select(before(base, a, b), before(base, b, a), forwards) {
                    order[ob + i] = b;
                    order[ob + j] = a;
                }
            }
            storageBarrier();
        }
    }
    for (var j = lid; j < params.k; j += WG) {
        let idx = order[ob + j];
        values[r * params.k + j] = x[base + idx];
        indices[r * params.k + j] = idx;
    }
}
