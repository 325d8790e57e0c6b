// Flash attention forward: out = softmax(scale · q·kᵀ + mask) · v for q [B·H, Lq, D] and
// k, v [B·H, Lk, D] (k and v rows of head h start at h·kv_head_stride, so a KV cache of larger
// capacity is read in place). Queries are the last Lq of the Lk positions.
//
// One workgroup of BQ = 64 threads per (block of 64 query rows, head); thread t owns query row
// block·64 + t: its scaled query and its output accumulator live in private arrays, its running
// maximum and sum in registers (online softmax, f32). Keys are visited in tiles of BK rows
// staged in workgroup memory: the K tile (scores for BK keys), then the V tile in the same
// array (p·v). Only the workgroup's key range [lo, hi) (host-computed from the mask, `mmeta`)
// is visited; irregular masks are tested per (query, key) pair from the table in `mmeta`.
// A row that sees no key writes zeros, like the CPU kernel.
//
// Launcher: arvis-attention/src/gpu/mod.rs (`flash`); CPU reference: arvis_attention::sdpa (the
// fused CPU kernel) and sdpa_reference (f64); test: crates/arvis-attention/tests/gpu.rs.

// Head dim (any value in 1..=128) and ⌈D/4⌉.
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: D=64 D4=16 BK=64 MASK=0..6
// variants: D=128 D4=32 BK=32 MASK=0..6
// variants: D=* D4=* BK=* MASK=0..6
override D: u32 = 64u;
override D4: u32 = 16u;
// Keys per tile: BK · D4 ≤ 1024 (the 16 KiB tile) and BK ≤ 64.
override BK: u32 = 32u;
// 0 none, 1 causal, 2 group ≤, 3 group < or self, 4 skip-causal, 5 axial, 6 explicit bits.
override MASK: u32 = 0u;

const BQ: u32 = 64u;
const NEG: f32 = -3.0e38;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
// [lo, hi) key range per block of `range_rows` query rows, then the mask table at `table_off`.
@group(0) @binding(3) var<storage, read> mmeta: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

struct Params {
    lq: u32,
    lk: u32,
    // Lk − Lq: the absolute position of query row 0.
    q_off: u32,
    kv_head_stride: u32,
    scale: f32,
    // Axial: 1 when causal within the line.
    flags: u32,
    table_off: u32,
    // Explicit mask: u32 words per query row.
    words: u32,
    range_rows: u32,
}
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> tile: array<vec4<f32>, 1024>;

// Whether the query at absolute position qp sees the key at kp (row i = qp − q_off).
fn visible(qp: u32, i: u32, kp: u32) -> bool {
    let t = params.table_off;
    switch MASK {
        case 0u: { return true; }
        case 1u: { return kp <= qp; }
        case 2u: { return mmeta[t + 2u * kp] <= mmeta[t + 2u * qp]; }
        case 3u: { return mmeta[t + 2u * kp] < mmeta[t + 2u * qp] || kp == qp; }
        case 4u: {
            let bq = mmeta[t + 2u * qp];
            let bk = mmeta[t + 2u * kp];
            let nq = mmeta[t + 2u * qp + 1u];
            let nk = mmeta[t + 2u * kp + 1u];
            if nq == 1u {
                return (nk == 0u && bk < bq) || (nk == 1u && bk == bq);
            }
            return nk == 0u && bk <= bq;
        }
        case 5u: {
            let same = mmeta[t + 2u * kp] == mmeta[t + 2u * qp];
            return same && (params.flags == 0u || mmeta[t + 2u * kp + 1u] <= mmeta[t + 2u * qp + 1u]);
        }
        default: {
            let w = mmeta[t + i * params.words + kp / 32u];
            return ((w >> (kp % 32u)) & 1u) == 1u;
        }
    }
}

// Four values of the k (v) row starting at element `base`, from column 4·c, zero past D.
fn load4_k(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let x = 4u * c + e;
        if x < D {
            r[e] = k[base + x];
        }
    }
    return r;
}

fn load4_v(base: u32, c: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let x = 4u * c + e;
        if x < D {
            r[e] = v[base + x];
        }
    }
    return r;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let head = wg.y;
    let i = wg.x * BQ + lid;
    let row_ok = i < params.lq;
    let qp = params.q_off + i;
    let kv_base = head * params.kv_head_stride;

    var qr: array<vec4<f32>, 32>;
    var acc: array<vec4<f32>, 32>;
    var s: array<f32, 64>;
    let q_base = (head * params.lq + i) * D;
    for (var c = 0u; c < D4; c++) {
        var r = vec4<f32>(0.0);
        if row_ok {
            for (var e = 0u; e < 4u; e++) {
                let x = 4u * c + e;
                if x < D {
                    r[e] = q[q_base + x] * params.scale;
                }
            }
        }
        qr[c] = r;
        acc[c] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;

    // The workgroup's key range (uniform: read-only storage at a uniform index).
    let rb = (wg.x * BQ) / params.range_rows;
    let lo = mmeta[2u * rb];
    let hi = mmeta[2u * rb + 1u];

    for (var t0 = lo; t0 < hi; t0 += BK) {
        let n = min(BK, hi - t0);
        for (var idx = lid; idx < n * D4; idx += BQ) {
            let j = idx / D4;
            tile[idx] = load4_k(kv_base + (t0 + j) * D, idx % D4);
        }
        workgroupBarrier();
        var tmax = NEG;
        for (var j = 0u; j < n; j++) {
            var sc = NEG;
            if row_ok && visible(qp, i, t0 + j) {
                var dot4 = vec4<f32>(0.0);
                for (var c = 0u; c < D4; c++) {
                    dot4 = fma(qr[c], tile[j * D4 + c], dot4);
                }
                sc = dot4.x + dot4.y + dot4.z + dot4.w;
                tmax = max(tmax, sc);
            }
            s[j] = sc;
        }
        workgroupBarrier();
        for (var idx = lid; idx < n * D4; idx += BQ) {
            let j = idx / D4;
            tile[idx] = load4_v(kv_base + (t0 + j) * D, idx % D4);
        }
        workgroupBarrier();
        if tmax > NEG {
            let m_new = max(m, tmax);
            // m = NEG before the first visible key: nothing to rescale (and no overflow).
            var alpha = 0.0;
            if m > NEG {
                alpha = exp(m - m_new);
            }
            l = l * alpha;
            for (var c = 0u; c < D4; c++) {
                acc[c] = acc[c] * alpha;
            }
            for (var j = 0u; j < n; j++) {
                if s[j] > NEG {
                    let p = exp(s[j] - m_new);
                    l += p;
                    for (var c = 0u; c < D4; c++) {
                        acc[c] = fma(vec4<f32>(p), tile[j * D4 + c], acc[c]);
                    }
                }
            }
            m = m_new;
        }
        workgroupBarrier();
    }

    if row_ok {
        var inv = 0.0;
        if l > 0.0 {
            inv = 1.0 / l;
        }
        for (var c = 0u; c < D4; c++) {
            let r = acc[c] * inv;
            for (var e = 0u; e < 4u; e++) {
                let x = 4u * c + e;
                if x < D {
                    out[q_base + x] = r[e];
                }
            }
        }
    }
}
