#!/usr/bin/env python3
"""Times MAR generation (`sample_tokens`) with the official LTH14/mar code (fp32, CPU, random
weights), the other side of `benches/src/bin/mar_cpu.rs`.

    /work/venv/bin/python xtask/py/bench_mar_torch.py --mar-repo /path/to/mar \
        --runs 0 --save-weights mar_b_random.safetensors        # only write the weights file
    /work/venv/bin/python xtask/py/bench_mar_torch.py --mar-repo /path/to/mar \
        --load-weights mar_b_random.safetensors --threads 2 [--num-iter 64] [--head-steps 100] \
        [--batch 1] [--cfg 2.9] [--runs 1] [--warmup 0]

Builds the official `mar_base` (or `--size large|huge`) with its README head (B: d6/w1024, L:
d8/w1280, H: d12/w1536), seeded random transformer weights (golden_mar.randomize_mar) and a
head built by golden_mar_head.stabilize (a random head's chains reach 1e5; the timing does not
depend on the values, but inf/NaN could), or with --load-weights the weights of a file in the
converter layout. Times `sample_tokens(batch, num_iter, cfg, "linear", labels, 1.0)` (encoder,
decoder and head; no VAE decode, which the Rust side does not time either) under
`torch.set_num_threads`. Prints one JSON object on stdout (same keys as the Rust side).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import golden_mar as gm  # noqa: E402
from golden_mar_head import stabilize  # noqa: E402

HEADS = {"base": (6, 1024), "large": (8, 1280), "huge": (12, 1536)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mar-repo", required=True)
    ap.add_argument("--size", choices=sorted(HEADS), default="base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--num-iter", type=int, default=64)
    ap.add_argument("--head-steps", type=int, default=100)
    ap.add_argument("--cfg", type=float, default=2.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-weights")
    ap.add_argument("--load-weights")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.Tensor.cuda = lambda self, *a, **k: self  # the reference hard-codes .cuda()
    sys.path.insert(0, os.path.abspath(args.mar_repo))
    gm.stub_scipy_stats()
    import models.mar as mar  # official code

    d, w = HEADS[args.size]
    model = getattr(mar, f"mar_{args.size}")(diffloss_d=d, diffloss_w=w,
                                             num_sampling_steps=str(args.head_steps)).eval()
    if args.load_weights:
        from safetensors import safe_open
        with safe_open(args.load_weights, framework="pt") as f:
            if (f.metadata() or {}).get("arvis.family") != "mar":
                raise SystemExit(f"{args.load_weights}: not a MAR file (arvis.family)")
            sd = {k: f.get_tensor(k).float() for k in f.keys() if not k.startswith("vae.")}
        res = model.load_state_dict(sd, strict=True)
        assert not res.missing_keys and not res.unexpected_keys, res
    else:
        g = torch.Generator().manual_seed(args.seed)
        gm.randomize_mar(model, g)
        stabilize(model.diffloss.net, g)
    if args.save_weights:
        from safetensors.torch import save_file
        c = dict(img_size=model.img_size, vae_stride=model.vae_stride, patch_size=model.patch_size,
                 vae_embed_dim=model.vae_embed_dim,
                 encoder_embed_dim=model.z_proj.weight.shape[0], encoder_depth=len(model.encoder_blocks),
                 encoder_num_heads=model.encoder_blocks[0].attn.num_heads,
                 decoder_embed_dim=model.decoder_embed.weight.shape[0],
                 decoder_depth=len(model.decoder_blocks),
                 decoder_num_heads=model.decoder_blocks[0].attn.num_heads, mlp_ratio=4.0,
                 class_num=model.num_classes, buffer_size=model.buffer_size, norm_eps=1e-6)
        meta = {"arvis.family": "mar", "arvis.config": json.dumps({"mar": c}),
                "arvis.source": f"bench_mar_torch.py random mar_{args.size}, seed {args.seed}"}
        tmp = args.save_weights + ".partial"
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp, metadata=meta)
        os.replace(tmp, args.save_weights)
        print(f"wrote {args.save_weights}", file=sys.stderr)
    if args.runs == 0:
        return 0

    labels = torch.arange(args.batch) * 37 % model.num_classes
    times = []
    for i in range(args.warmup + args.runs):
        torch.manual_seed(args.seed + i)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.sample_tokens(args.batch, num_iter=args.num_iter, cfg=args.cfg,
                                      cfg_schedule="linear", labels=labels, temperature=1.0)
        dt = time.perf_counter() - t0
        assert out.shape[0] == args.batch and torch.isfinite(out).all()
        if i >= args.warmup:
            times.append(dt)
    print(json.dumps({
        "side": "pytorch", "torch": torch.__version__, "size": args.size, "threads": args.threads,
        "batch": args.batch, "num_iter": args.num_iter, "head_steps": args.head_steps, "cfg": args.cfg,
        "warmup": args.warmup, "runs": times, "median_s": statistics.median(times),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
