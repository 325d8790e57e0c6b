// Elementwise unary ops, one pipeline per op (override `OP`): out[i] = f(x[i]).
// Launcher: arvis-core/src/gpu/ops/elementwise.rs (`unary`); CPU reference: Tensor::{silu,
// gelu_tanh, gelu_erf, sigmoid, exp, tanh, clamp, affine}; test: crates/arvis-core/tests/device_ops.rs.

// 0 silu, 1 gelu_tanh, 2 gelu_erf, 3 sigmoid, 4 exp, 5 tanh, 6 clamp(a, b), 7 affine a·x + b.
// variants: OP=0..7
override OP: u32 = 0u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

struct Params {
    len: u32,
    // Workgroups along x per row of the 2-D grid (large arrays exceed 65535 groups in x).
    groups_x: u32,
    a: f32,
    b: f32,
}
@group(0) @binding(2) var<uniform> params: Params;

// erfc with fractional error < 1.2e-7 for every argument (Numerical Recipes' Chebyshev fit),
// so GELU's small negative tail keeps its relative accuracy.
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(p);
}

fn apply(v: f32) -> f32 {
    switch OP {
        case 0u: { return v / (1.0 + exp(-v)); }
        case 1u: {
            let u = 0.7978846 * (v + 0.044715 * v * v * v);
            return v / (1.0 + exp(-2.0 * u));
        }
        case 2u: {
            let z = abs(v) * 0.70710678;
            if v >= 0.0 { return v * (1.0 - 0.5 * erfc_pos(z)); }
            return 0.5 * v * erfc_pos(z);
        }
        case 3u: { return 1.0 / (1.0 + exp(-v)); }
        case 4u: { return exp(v); }
        case 5u: { return tanh(v); }
        case 6u: { return min(max(v, params.a), params.b); }
        default: { return params.a * v + params.b; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if i < params.len {
        out[i] = apply(x[i]);
    }
}
