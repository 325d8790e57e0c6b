// Decode attention: few queries (Lq ≤ 16) against a long KV cache. Same contract and bindings
// as attention_flash.wgsl: out = softmax(scale · q·kᵀ + mask) · v, q [B·H, Lq, D], k and v rows
// of head h at h·kv_head_stride, queries the last Lq of the Lk positions.
//
// One workgroup of WG = 64 threads per (query row, head), so the keys are split across threads
// rather than walked by one thread per query. Keys are visited in chunks of C = 256 inside the
// row's range [lo, hi) (host-computed from the mask, `mmeta`): each thread scores C/WG keys
// (full dot products against the query staged in workgroup memory), a shared-memory tree
// reduction gives the chunk maximum, the probabilities exp(s − m) go back to workgroup memory
// and a second reduction gives their sum (online softmax, f32); then thread t accumulates
// output dims t and t + 64 over the chunk's values (coalesced rows of v). Shared memory only:
// no subgroup operations, so no assumption about the subgroup size. A row that sees no key
// writes zeros, like the CPU kernel.
//
// Launcher: arvis-attention/src/gpu/mod.rs (`decode`); CPU reference: arvis_attention::sdpa and
// sdpa_reference; test: crates/arvis-attention/tests/gpu.rs.

// Head dim (1..=128).
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: D=64,128 MASK=0..6
// variants: D=* MASK=0..6
override D: u32 = 64u;
// 0 none, 1 causal, 2 group ≤, 3 group < or self, 4 skip-causal, 5 axial, 6 explicit bits.
override MASK: u32 = 0u;

const WG: u32 = 64u;
const C: u32 = 256u;
const NEG: f32 = -3.0e38;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mmeta: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

struct Params {
    lq: u32,
    lk: u32,
    q_off: u32,
    kv_head_stride: u32,
    scale: f32,
    flags: u32,
    table_off: u32,
    words: u32,
    range_rows: u32,
}
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> qs: array<f32, 128>;
var<workgroup> ps: array<f32, 256>;
var<workgroup> red: array<f32, 64>;

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

// Tree reduction of red[0..WG] into red[0] (max when `is_max`, else sum); every thread calls it.
fn reduce(lid: u32, is_max: bool) {
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if lid < stride {
            if is_max {
                red[lid] = max(red[lid], red[lid + stride]);
            } else {
                red[lid] = red[lid] + red[lid + stride];
            }
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = wg.x;
    let head = wg.y;
    let qp = params.q_off + i;
    let kv_base = head * params.kv_head_stride;
    let q_base = (head * params.lq + i) * D;
    for (var x = lid; x < D; x += WG) {
        qs[x] = q[q_base + x] * params.scale;
    }
    let rb = i / params.range_rows;
    let lo = mmeta[2u * rb];
    let hi = mmeta[2u * rb + 1u];
    var m = NEG;
    var l = 0.0;
    var o0 = 0.0;
    var o1 = 0.0;
    workgroupBarrier();

    for (var c0 = lo; c0 < hi; c0 += C) {
        let n = min(C, hi - c0);
        var tmax = NEG;
        for (var j = lid; j < C; j += WG) {
            var sc = NEG;
            if j < n && visible(qp, i, c0 + j) {
                let kb = kv_base + (c0 + j) * D;
                var dot = 0.0;
                for (var x = 0u; x < D; x++) {
                    dot = fma(qs[x], k[kb + x], dot);
                }
                sc = dot;
                tmax = max(tmax, sc);
            }
            ps[j] = sc;
        }
        red[lid] = tmax;
        reduce(lid, true);
        let cmax = red[0];
        // Every thread computes the same m_new and alpha from the shared maximum.
        let m_new = max(m, cmax);
        var alpha = 1.0;
        if m_new > m {
            alpha = 0.0;
            if m > NEG {
                alpha = exp(m - m_new);
            }
        }
        var psum = 0.0;
        for (var j = lid; j < C; j += WG) {
            var p = 0.0;
            if ps[j] > NEG {
                p = exp(ps[j] - m_new);
            }
            ps[j] = p;
            psum += p;
        }
        workgroupBarrier();
        red[lid] = psum;
        reduce(lid, false);
        l = l * alpha + red[0];
        o0 = o0 * alpha;
        o1 = o1 * alpha;
        for (var j = 0u; j < n; j++) {
            let p = ps[j];
            if p != 0.0 {
                let vb = kv_base + (c0 + j) * D;
                if lid < D {
                    o0 = fma(p, v[vb + lid], o0);
                }
                if lid + WG < D {
                    o1 = fma(p, v[vb + lid + WG], o1);
                }
            }
        }
        m = m_new;
        // ps and red are rewritten by the next chunk.
        workgroupBarrier();
    }

    var inv = 0.0;
    if l > 0.0 {
        inv = 1.0 / l;
    }
    if lid < D {
        out[q_base + lid] = o0 * inv;
    }
    if lid + WG < D {
        out[q_base + lid + WG] = o1 * inv;
    }
}
