#!/usr/bin/env python3
"""PyTorch side of `cargo xtask gpu-report`: fp32 (TF32 off) matmul and SDPA on the same shapes
the Rust side times, printed as one JSON object.

    python xtask/py/gpu_report_torch.py [--device cuda] [--quick]

Shapes (the issue's anchors): matmul 4096³; SDPA on VAR-d16's attention (B 64, 16 heads,
L 680 = Σ pn² over patch_nums 1…16, d 64, block-causal over the scales) and a long causal one
(B 4, 16 heads, L 4096, d 64). `--quick` shrinks everything (a smoke test on a CPU). FLOPs
count only the visible (unmasked) query–key pairs: 4·d per pair (QKᵀ and PV).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


def block_causal(lens):
    ids = torch.cat([torch.full((n * n,), i) for i, n in enumerate(lens)])
    return ids[None, :] <= ids[:, None]  # [L, L]: key block <= query block


def timeit(fn, sync, runs: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(runs):
        s = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - s)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    g = torch.Generator(device="cpu").manual_seed(0)
    out = {"device": str(dev), "torch": torch.__version__,
           "name": torch.cuda.get_device_name(dev) if cuda else "cpu", "results": {}}

    n = 128 if args.quick else 4096
    a = torch.randn(n, n, generator=g).to(dev)
    b = torch.randn(n, n, generator=g).to(dev)
    t = timeit(lambda: a @ b, sync, args.runs)
    out["results"][f"matmul/{n}x{n}x{n}"] = {"s": t, "flops": 2 * n ** 3}

    lens = PATCH_NUMS[:4] if args.quick else PATCH_NUMS
    cases = [("var_block_causal", 2 if args.quick else 64, 16, sum(p * p for p in lens), 64,
              block_causal(lens)),
             ("causal", 1 if args.quick else 4, 16, 256 if args.quick else 4096, 64, "causal")]
    for name, bsz, h, length, d, mask in cases:
        q, k, v = (torch.randn(bsz, h, length, d, generator=g).to(dev) for _ in range(3))
        if isinstance(mask, str):
            pairs = length * (length + 1) // 2
            fn = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
        else:
            pairs = int(mask.sum())
            m = mask.to(dev)
            fn = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)  # noqa: E731
        with torch.inference_mode():
            t = timeit(fn, sync, args.runs)
        out["results"][f"attention/{name}/{bsz}x{h}x{length}x{d}"] = {
            "s": t, "flops": 4 * d * pairs * bsz * h}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
