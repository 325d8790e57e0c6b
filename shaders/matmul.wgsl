// Batched matrix product with a fused epilogue: out[z] = act(op(A[z]) · op(B[z]) + bias), where
// op(X) = Xᵀ when its TRANS_* flag is set (read in place, no transposed copy) and bias is one
// value per output column. Shared-memory tiles of BM × BK (A) and BK × BN (B) per workgroup,
// a TM × TN register tile per thread (BM = WG_Y·TM, BN = WG_X·TN), f32 accumulation, bounds
// checks on every edge (any M, N, K). Workgroup z is the batch index; each operand's matrix
// offset follows its broadcast batch strides (0 along broadcast dims); `z0` offsets it when a
// batch exceeds the device's workgroups per dimension and the launcher splits it.
// Launcher: arvis-core/src/gpu/ops/linalg.rs (`matmul`); CPU reference: Tensor::{matmul_t,
// linear, linear_act, matmul_packed}; test: crates/arvis-core/tests/device_linalg.rs.
//
// B_F16: B holds IEEE half-precision values, two per u32 word (element e in the low half of
// word e/2 when e is even, the high half when odd), decoded to f32 exactly with integer ops
// (`half_to_f32`), so no adapter capability is needed: neither SHADER_F16 (`enable f16;`) nor
// the downlevel SHADER_F16_IN_F32 that wgpu requires for `unpack2x16float` (absent on Mesa's
// Vulkan drivers without SHADER_F16). Storage only: products and accumulation stay f32. Used
// for `PackedMatrix` weights stored as f16 (`WeightStorage::F16`).

// Operand layouts: A is [M, K] row-major, or [K, M] when TRANS_A; B is [K, N], or [N, K].
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: TRANS_A=0 TRANS_B=0,1 HAS_BIAS=0,1 ACT=0..3 B_F16=0,1 WG_X=16 WG_Y=16 TM=1,4 TN=4 BK=16
// variants: TRANS_A=1 TRANS_B=0,1 HAS_BIAS=0 ACT=0 B_F16=0 WG_X=16 WG_Y=16 TM=1,4 TN=4 BK=16
// variants: TRANS_A=0,1 TRANS_B=0,1 HAS_BIAS=0,1 ACT=0..3 B_F16=0,1 WG_X=* WG_Y=* TM=* TN=* BK=*
override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Add bias[col] before the activation.
override HAS_BIAS: bool = false;
// Activation: 0 none, 1 gelu_tanh, 2 silu, 3 gelu_erf.
override ACT: u32 = 0u;
// B is packed f16 pairs (see above) instead of f32.
override B_F16: bool = false;
// Threads per workgroup (x: columns, y: rows) and outputs per thread (TM, TN ≤ MAX_T).
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TM: u32 = 4u;
override TN: u32 = 4u;
// Depth of one shared-memory step.
override BK: u32 = 16u;

const MAX_T: u32 = 4u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
// f32 bit patterns, or f16 pairs when B_F16 (read through `b_at`).
@group(0) @binding(1) var<storage, read> b: array<u32>;
// The bias (a placeholder binding when HAS_BIAS is false).
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // Rank of the output's batch shape (≤ 8).
    batch_rank: u32,
    // Output batch dims, innermost last, and each operand's element stride per batch index
    // (0 where it broadcasts), packed 4 per vec4.
    dims: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
    // Batch index of workgroup z = 0 (batches over the device's z limit take several launches).
    z0: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

// [BK][BM] and [BK][BN] (rows padded by one), k-major so the inner loop reads rows of both.
var<workgroup> a_tile: array<f32, BK * (WG_Y * TM + 1u)>;
var<workgroup> b_tile: array<f32, BK * (WG_X * TN + 1u)>;

// erfc with fractional error < 1.2e-7 (as in unary.wgsl).
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(p);
}

fn activate(v: f32) -> f32 {
    switch ACT {
        case 1u: {
            let u = 0.7978846 * (v + 0.044715 * v * v * v);
            return v / (1.0 + exp(-2.0 * u));
        }
        case 2u: { return v / (1.0 + exp(-v)); }
        case 3u: {
            let z = abs(v) * 0.70710678;
            if v >= 0.0 { return v * (1.0 - 0.5 * erfc_pos(z)); }
            return 0.5 * v * erfc_pos(z);
        }
        default: { return v; }
    }
}

// The IEEE half in the low 16 bits of `h` as f32, exactly (every half is an f32): normals by
// rebiasing the exponent, zeros and subnormals as m·2⁻²⁴, infinities and NaNs kept.
fn half_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    let normal = bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
    let special = bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    let tiny = bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8));
    return select(select(normal, special, e == 31u), tiny, e == 0u);
}

// Element `e` of B as f32.
fn b_at(e: u32) -> f32 {
    if B_F16 {
        return half_to_f32(b[e / 2u] >> (16u * (e % 2u)));
    }
    return bitcast<f32>(b[e]);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bm = WG_Y * TM;
    let bn = WG_X * TN;
    // Row strides of the shared tiles, one past the width so that threads storing down a
    // column of a tile hit different banks.
    let sa = bm + 1u;
    let sb = bn + 1u;
    let m = params.m;
    let n = params.n;
    let k = params.k;
    let m0 = wid.y * bm;
    let n0 = wid.x * bn;

    // Matrix offsets of this batch index in A and B.
    let z = params.z0 + wid.z;
    var rest = z;
    var oa = 0u;
    var ob = 0u;
    for (var d = 0u; d < params.batch_rank; d++) {
        let q = params.batch_rank - 1u - d;
        let size = params.dims[q / 4u][q % 4u];
        let c = rest % size;
        rest = rest / size;
        oa += c * params.a_strides[q / 4u][q % 4u];
        ob += c * params.b_strides[q / 4u][q % 4u];
    }

    let tid = lid.y * WG_X + lid.x;
    let threads = WG_X * WG_Y;
    var acc: array<f32, 16>;
    var ar: array<f32, 4>;
    var br: array<f32, 4>;

    for (var k0 = 0u; k0 < k; k0 += BK) {
        // Stage the A tile; consecutive threads read consecutive addresses of either layout.
        for (var i = tid; i < BK * bm; i += threads) {
            var r: u32;
            var kk: u32;
            if TRANS_A {
                r = i % bm;
                kk = i / bm;
            } else {
                kk = i % BK;
                r = i / BK;
            }
            let gm = m0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if gm < m && gk < k {
                v = a[oa + select(gm * k + gk, gk * m + gm, TRANS_A)];
            }
            a_tile[kk * sa + r] = v;
        }
        for (var i = tid; i < BK * bn; i += threads) {
            var c: u32;
            var kk: u32;
            if TRANS_B {
                kk = i % BK;
                c = i / BK;
            } else {
                c = i % bn;
                kk = i / bn;
            }
            let gn = n0 + c;
            let gk = k0 + kk;
            var v = 0.0;
            if gn < n && gk < k {
                v = b_at(ob + select(gk * n + gn, gn * k + gk, TRANS_B));
            }
            b_tile[kk * sb + c] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            for (var i = 0u; i < TM; i++) {
                ar[i] = a_tile[kk * sa + lid.y + i * WG_Y];
            }
            for (var j = 0u; j < TN; j++) {
                br[j] = b_tile[kk * sb + lid.x + j * WG_X];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i * MAX_T + j] = fma(ar[i], br[j], acc[i * MAX_T + j]);
                }
            }
        }
        workgroupBarrier();
    }

    let oc = z * m * n;
    for (var i = 0u; i < TM; i++) {
        let row = m0 + lid.y + i * WG_Y;
        for (var j = 0u; j < TN; j++) {
            let col = n0 + lid.x + j * WG_X;
            if row < m && col < n {
                var v = acc[i * MAX_T + j];
                if HAS_BIAS {
                    v += bias[col];
                }
                out[oc + row * n + col] = activate(v);
            }
        }
    }
}
