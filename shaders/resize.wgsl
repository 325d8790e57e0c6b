// Spatial resampling of [.., H, W] planes, one thread per output value, one pipeline per mode
// (override `MODE`), with the CPU ops' exact index semantics and summation order (rows first,
// then columns, as their separable passes):
// 0 nearest upsampling by an integer factor: out[y, x] = in[y / f, x / f];
// 1 bicubic, PyTorch align_corners=False: src = (i + 0.5)·in/out − 0.5 (not clamped),
//   x0 = ⌊src⌋, t = src − x0, Keys weights (A = −0.75) [c2(t+1), c1(t), c1(1−t), c2(2−t)] on
//   taps x0−1 … x0+2 clamped to [0, in−1];
// 2 area (adaptive average pooling): output i averages inputs ⌊i·in/out⌋ .. ⌈(i+1)·in/out⌉.
// Launcher: arvis-core/src/gpu/ops/resize.rs (`resize`); CPU reference: Tensor::{upsample_nearest,
// resize_bicubic, resize_area} (ops/resize.rs); test: crates/arvis-core/tests/device_linalg.rs.

// Variants the launchers use (see arvis_core::gpu::variants; `cargo xtask codegen` writes the
// concrete ones to shaders/generated/):
// variants: MODE=0..2
override MODE: u32 = 0u;

const CUBIC_A: f32 = -0.75;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    // Workgroups along x per row of the 2-D grid.
    groups_x: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    // Nearest: the upsampling factor.
    factor: u32,
}
@group(0) @binding(2) var<uniform> params: Params;

fn c1(v: f32) -> f32 {
    return ((CUBIC_A + 2.0) * v - (CUBIC_A + 3.0)) * v * v + 1.0;
}

fn c2(v: f32) -> f32 {
    return ((CUBIC_A * v - 5.0 * CUBIC_A) * v + 8.0 * CUBIC_A) * v - 4.0 * CUBIC_A;
}

struct Taps {
    idx: vec4<u32>,
    w: vec4<f32>,
}

// The four clamped taps and weights of output index `i` (in → out samples).
fn cubic_taps(i: u32, input: u32, output: u32) -> Taps {
    let scale = f32(input) / f32(output);
    let src = scale * (f32(i) + 0.5) - 0.5;
    let f = floor(src);
    let t = src - f;
    let x0 = i32(f);
    let hi = i32(input) - 1;
    var taps: Taps;
    taps.idx = vec4<u32>(
        u32(clamp(x0 - 1, 0, hi)),
        u32(clamp(x0, 0, hi)),
        u32(clamp(x0 + 1, 0, hi)),
        u32(clamp(x0 + 2, 0, hi)),
    );
    taps.w = vec4<f32>(c2(t + 1.0), c1(t), c1(1.0 - t), c2(2.0 - t));
    return taps;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i >= params.len {
        return;
    }
    let h = params.h;
    let w = params.w;
    let ox = i % params.ow;
    let oy = (i / params.ow) % params.oh;
    let base = (i / (params.ow * params.oh)) * h * w;
    switch MODE {
        case 0u: {
            out[i] = x[base + (oy / params.factor) * w + ox / params.factor];
        }
        case 1u: {
            let tx = cubic_taps(ox, w, params.ow);
            let ty = cubic_taps(oy, h, params.oh);
            var acc = 0.0;
            for (var j = 0u; j < 4u; j++) {
                let row = base + ty.idx[j] * w;
                var r = 0.0;
                for (var q = 0u; q < 4u; q++) {
                    r += x[row + tx.idx[q]] * tx.w[q];
                }
                acc += r * ty.w[j];
            }
            out[i] = acc;
        }
        default: {
            let x0 = (ox * w) / params.ow;
            let x1 = ((ox + 1u) * w + params.ow - 1u) / params.ow;
            let y0 = (oy * h) / params.oh;
            let y1 = ((oy + 1u) * h + params.oh - 1u) / params.oh;
            var acc = 0.0;
            for (var y = y0; y < y1; y++) {
                var r = 0.0;
                for (var q = x0; q < x1; q++) {
                    r += x[base + y * w + q];
                }
                acc += r / f32(x1 - x0);
            }
            out[i] = acc / f32(y1 - y0);
        }
    }
}
