// 2-D cross-correlation of NCHW input as an implicit GEMM, one image per workgroup z:
// out[z, o, p] = bias[o] + Σ_q W[o, q] · X̂[q, p], where q = (ci, ky, kx) runs over C·kh·kw and
// p = (oy, ox) over the output plane, and X̂[q, p] = x[z, ci, oy·sh + ky − top, ox·sw + kx − left]
// (zero outside the input: the padding) is gathered into shared memory tile by tile, never
// materialised. Same tiling as matmul.wgsl: BM × BK weight tiles, BK × BN input tiles, a
// TM × TN register tile per thread, f32 accumulation, bounds-checked edges; any kernel size,
// stride and (asymmetric) padding.
// Launcher: arvis-core/src/gpu/ops/linalg.rs (`conv2d`); CPU reference: Tensor::{conv2d,
// conv2d_im2col}, Conv3x3Winograd::apply; test: crates/arvis-core/tests/device_linalg.rs.

// Add bias[o].
// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: HAS_BIAS=0,1 WG_X=16 WG_Y=16 TM=1,4 TN=4 BK=16
// variants: HAS_BIAS=0,1 WG_X=* WG_Y=* TM=* TN=* BK=*
override HAS_BIAS: bool = false;
// Threads per workgroup (x: output pixels, y: output channels) and outputs per thread.
override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TM: u32 = 4u;
override TN: u32 = 4u;
override BK: u32 = 16u;

const MAX_T: u32 = 4u;

// [N, C, H, W], [O, C, kh, kw], [O] (a placeholder binding without bias), [N, O, ho, wo].
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

struct Params {
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    kh: u32,
    kw: u32,
    ho: u32,
    wo: u32,
    stride_y: u32,
    stride_x: u32,
    // Zero rows above and columns left of the input (bottom/right only set ho, wo).
    pad_top: u32,
    pad_left: u32,
}
@group(0) @binding(4) var<uniform> params: Params;

// [BK][BM] weights and [BK][BN] gathered inputs (rows padded by one), k-major.
var<workgroup> a_tile: array<f32, BK * (WG_Y * TM + 1u)>;
var<workgroup> b_tile: array<f32, BK * (WG_X * TN + 1u)>;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let bm = WG_Y * TM;
    let bn = WG_X * TN;
    // Row strides of the shared tiles, one past the width so that threads storing down a
    // column of a tile hit different banks.
    let sa = bm + 1u;
    let sb = bn + 1u;
    let m = params.o;
    let n = params.ho * params.wo;
    let taps = params.kh * params.kw;
    let k = params.c * taps;
    let m0 = wid.y * bm;
    let n0 = wid.x * bn;
    let plane_in = params.h * params.w;
    let xo = wid.z * params.c * plane_in;

    let tid = lid.y * WG_X + lid.x;
    let threads = WG_X * WG_Y;
    var acc: array<f32, 16>;
    var ar: array<f32, 4>;
    var br: array<f32, 4>;

    for (var k0 = 0u; k0 < k; k0 += BK) {
        for (var i = tid; i < BK * bm; i += threads) {
            let kk = i % BK;
            let r = i / BK;
            let gm = m0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if gm < m && gk < k {
                v = weight[gm * k + gk];
            }
            a_tile[kk * sa + r] = v;
        }
        for (var i = tid; i < BK * bn; i += threads) {
            let c = i % bn;
            let kk = i / bn;
            let gn = n0 + c;
            let gk = k0 + kk;
            var v = 0.0;
            if gn < n && gk < k {
                let ci = gk / taps;
                let t = gk % taps;
                let ky = t / params.kw;
                let kx = t % params.kw;
                let oy = gn / params.wo;
                let ox = gn % params.wo;
                // Unsigned: positions in the top/left padding wrap to huge values and fail the
                // bounds test like those past the bottom/right edge.
                let iy = oy * params.stride_y + ky - params.pad_top;
                let ix = ox * params.stride_x + kx - params.pad_left;
                if iy < params.h && ix < params.w {
                    v = x[xo + ci * plane_in + iy * params.w + ix];
                }
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

    let oc = wid.z * m * n;
    for (var i = 0u; i < TM; i++) {
        let row = m0 + lid.y + i * WG_Y;
        for (var j = 0u; j < TN; j++) {
            let col = n0 + lid.x + j * WG_X;
            if row < m && col < n {
                var v = acc[i * MAX_T + j];
                if HAS_BIAS {
                    v += bias[row];
                }
                out[oc + row * n + col] = v;
            }
        }
    }
}
