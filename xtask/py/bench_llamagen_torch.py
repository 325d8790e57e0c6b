#!/usr/bin/env python3
"""Times LlamaGen class-to-image token generation with the official FoundationVision/LlamaGen code
(fp32, CPU, KV cache, random weights).

    /work/venv/bin/python xtask/py/bench_llamagen_torch.py --llamagen-repo /path/to/LlamaGen \
        --runs 0 --save-weights gpt_b_random.safetensors       # only write the weights file
    /work/venv/bin/python xtask/py/bench_llamagen_torch.py --llamagen-repo /path/to/LlamaGen \
        --load-weights gpt_b_random.safetensors --batch 8 --threads 2 [--runs 1] [--warmup 1]

Builds the official `GPT_{B,L,XL,XXL}` c2i model (vocabulary 16384, 16×16 grid, one class token),
gives it seeded random weights (`output` included: it is zero-initialised officially) or, with
--load-weights, the weights of a file in the converter layout (`gpt.*`, convert_llamagen.py), and
times the official `generate(model, labels, 256, cfg_scale, temperature, top_k, top_p)` (prefill +
255 cached decode steps, CFG on a doubled batch) with `torch.set_num_threads`. The VQ decode is
not part of it (the Rust side times the same thing). Prints one JSON object on stdout: the
per-run seconds, their median, and the settings. --save-weights writes the weights in the
converter layout so the Rust side times identical weights.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = {"B": "GPT_B", "L": "GPT_L", "XL": "GPT_XL", "XXL": "GPT_XXL"}
VOCAB, BLOCK, CLASSES = 16384, 256, 1000


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Seeded values for every parameter: linears N(0, 1/fan_in) (`output` ×2 so logits spread over
    a few units), embeddings N(0, 1), RMSNorm weights 1 + N(0, 0.1²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                gain = 2.0 if name == "output.weight" else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * (gain / math.sqrt(p.shape[1])))
            else:
                raise SystemExit(f"randomize: unhandled parameter {name} {tuple(p.shape)}")


def arvis_config(args_obj) -> dict:
    """The `arvis.config["gpt"]` of a file holding this model (convert_llamagen.py's fields)."""
    a = args_obj
    return dict(dim=a.dim, n_layer=a.n_layer, n_head=a.n_head, vocab_size=a.vocab_size,
                block_size=a.block_size, num_classes=a.num_classes, cls_token_num=a.cls_token_num,
                multiple_of=a.multiple_of, ffn_dim_multiplier=a.ffn_dim_multiplier,
                norm_eps=a.norm_eps, rope_base=float(a.rope_base))


def revision(repo: str) -> str:
    try:
        return subprocess.check_output(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                                       text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llamagen-repo", required=True)
    ap.add_argument("--size", choices=sorted(SIZES), default="B")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=BLOCK)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=2000)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (fp32, TF32 off)")
    ap.add_argument("--save-weights")
    ap.add_argument("--load-weights")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.abspath(args.llamagen_repo))
    import autoregressive.models.gpt as gpt  # official code
    import autoregressive.models.generate as gen  # official code

    size = args.size
    if args.load_weights:
        from safetensors import safe_open
        with safe_open(args.load_weights, framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("arvis.family") != "llamagen":
                raise SystemExit(f"{args.load_weights}: not a LlamaGen file (arvis.family)")
            cfg = json.loads(meta["arvis.config"])["gpt"]
            sd = {k[len("gpt."):]: f.get_tensor(k).float() for k in f.keys() if k.startswith("gpt.")}
        by_dim = {768: "B", 1024: "L", 1280: "XL", 1536: "XXL"}
        size = by_dim.get(cfg["dim"])
        if size is None:
            raise SystemExit(f"{args.load_weights}: dim {cfg['dim']} is no official GPT size")
    model = getattr(gpt, SIZES[size])(vocab_size=VOCAB, block_size=BLOCK, num_classes=CLASSES,
                                      cls_token_num=1, model_type="c2i").eval()
    if args.load_weights:
        res = model.load_state_dict(sd, strict=False)
        if res.missing_keys or res.unexpected_keys:
            raise SystemExit(f"{args.load_weights}: keys do not match GPT_{size}: missing "
                             f"{res.missing_keys[:5]}, unexpected {res.unexpected_keys[:5]}")
    else:
        randomize(model, args.seed)
    if args.save_weights:
        from safetensors.torch import save_file
        tensors = {f"gpt.{k}": v.detach().contiguous() for k, v in model.named_parameters()}
        meta = {"arvis.family": "llamagen",
                "arvis.config": json.dumps({"gpt": arvis_config(model.config)}),
                "arvis.source": f"bench_llamagen_torch.py random GPT_{size} weights, seed {args.seed}; "
                                f"FoundationVision/LlamaGen @ {revision(args.llamagen_repo)}"}
        tmp = args.save_weights + ".partial"
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, args.save_weights)
        print(f"wrote {args.save_weights}", file=sys.stderr)
    if args.runs == 0:
        return 0

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = model.to(dev)
    labels = (torch.arange(args.batch) * 37 % CLASSES).to(dev)
    times = []
    for i in range(args.warmup + args.runs):
        torch.manual_seed(args.seed + i)
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            seq = gen.generate(model, labels, args.tokens, cfg_scale=args.cfg,
                               temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                               sample_logits=True)
        sync()
        dt = time.perf_counter() - t0
        assert seq.shape == (args.batch, args.tokens), seq.shape
        if i >= args.warmup:
            times.append(dt)
    print(json.dumps({
        "side": "pytorch",
        "llamagen_revision": revision(args.llamagen_repo),
        "torch": torch.__version__, "python": sys.version.split()[0],
        "size": size, "device": str(dev), "threads": args.threads, "batch": args.batch, "tokens": args.tokens,
        "cfg": args.cfg, "temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
        "warmup": args.warmup, "runs": times, "median_s": statistics.median(times),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
