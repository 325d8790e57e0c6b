#!/usr/bin/env python3
"""Writes PyTorch reference outputs for arvis-core's ops into a small safetensors fixture.

The Rust tests (crates/arvis-core/tests/torch_fixtures.rs) load it and compare; they never run
Python. Regenerate with:

    python3 -m venv /tmp/arvis-venv && /tmp/arvis-venv/bin/pip install torch safetensors numpy
    /tmp/arvis-venv/bin/python xtask/py/make_core_fixtures.py crates/arvis-core/tests/golden/torch_ops.safetensors

Every case stores its inputs next to its output, so the fixture is self-describing:
`<case>.x` (input), `<case>.w` / `<case>.b` (parameters), `<case>.y` (torch's output).
"""
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def main(out_path: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    t = {}

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    # Bicubic, align_corners=False: VAR upsamples every scale's codes to 16x16.
    for name, (shape, size) in {
        "bicubic_1_to_16": ((1, 3, 1, 1), (16, 16)),
        "bicubic_5_to_16": ((2, 3, 5, 5), (16, 16)),
        "bicubic_13_to_16": ((1, 4, 13, 13), (16, 16)),
        "bicubic_16_to_13": ((1, 2, 16, 16), (13, 13)),
        "bicubic_7x4_to_9x11": ((1, 2, 7, 4), (9, 11)),
    }.items():
        x = randn(*shape)
        t[f"{name}.x"] = x
        t[f"{name}.y"] = F.interpolate(x, size=size, mode="bicubic", align_corners=False)

    # Area (adaptive_avg_pool2d): VAR's next-scale inputs, with overlapping windows.
    x = randn(1, 3, 16, 16)
    t["area_16.x"] = x
    for o in (13, 10, 8, 6, 5, 4, 3, 2, 1):
        t[f"area_16_to_{o}.y"] = F.interpolate(x, size=(o, o), mode="area")
    x = randn(2, 2, 9, 7)
    t["area_9x7_to_4x3.x"] = x
    t["area_9x7_to_4x3.y"] = F.interpolate(x, size=(4, 3), mode="area")

    # Nearest x2 (VAE decoders).
    x = randn(1, 3, 5, 4)
    t["nearest2x.x"] = x
    t["nearest2x.y"] = F.interpolate(x, scale_factor=2.0, mode="nearest")

    # GELU exact and tanh, SiLU, over a wide range including the tails.
    x = torch.cat([torch.linspace(-10, 10, 2001), randn(999) * 3])
    t["act.x"] = x
    t["gelu_erf.y"] = F.gelu(x)
    t["gelu_tanh.y"] = F.gelu(x, approximate="tanh")
    t["silu.y"] = F.silu(x)

    # GroupNorm(32, C, eps=1e-6) as in every VAE here, plus an odd config.
    for name, (shape, groups, eps) in {
        "group_norm_32": ((2, 64, 5, 7), 32, 1e-6),
        "group_norm_3": ((1, 6, 3, 3), 3, 1e-5),
    }.items():
        x = randn(*shape) * 2 + 0.5
        w = randn(shape[1])
        b = randn(shape[1])
        t[f"{name}.x"], t[f"{name}.w"], t[f"{name}.b"] = x, w, b
        t[f"{name}.y"] = F.group_norm(x, groups, w, b, eps)

    # LayerNorm without affine (VAR, eps 1e-6) and with affine; softmax.
    x = randn(3, 5, 64) + 1.0
    t["layer_norm.x"] = x
    t["layer_norm_noaffine.y"] = F.layer_norm(x, (64,), eps=1e-6)
    w, b = randn(64), randn(64)
    t["layer_norm_affine.w"], t["layer_norm_affine.b"] = w, b
    t["layer_norm_affine.y"] = F.layer_norm(x, (64,), w, b, eps=1e-6)
    t["softmax.y"] = torch.softmax(x * 3, dim=-1)
    t["log_softmax.y"] = torch.log_softmax(x * 3, dim=-1)

    # Conv2d: the stride-2 downsample (F.pad (0,1,0,1) then 3x3 stride 2), 3x3 pad 1, 1x1.
    for name, (shape, cout, k, stride, pad, torch_pad) in {
        "conv_down": ((1, 4, 8, 8), 5, 3, 2, 0, (0, 1, 0, 1)),
        "conv_down_odd": ((2, 3, 7, 9), 2, 3, 2, 0, (0, 1, 0, 1)),
        "conv_same": ((1, 6, 9, 7), 4, 3, 1, 1, None),
        "conv_1x1": ((2, 5, 4, 6), 3, 1, 1, 0, None),
    }.items():
        x = randn(*shape)
        w = randn(cout, shape[1], k, k) * 0.3
        b = randn(cout)
        xin = F.pad(x, torch_pad) if torch_pad else x
        t[f"{name}.x"], t[f"{name}.w"], t[f"{name}.b"] = x, w, b
        t[f"{name}.y"] = F.conv2d(xin, w, b, stride=stride, padding=pad)

    t = {k: v.contiguous() for k, v in t.items()}
    save_file(t, out_path, metadata={
        "arvis.source": f"xtask/py/make_core_fixtures.py, torch {torch.__version__}",
    })
    print(f"wrote {len(t)} tensors to {out_path}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_core_fixtures.py OUT.safetensors")
    main(sys.argv[1])
