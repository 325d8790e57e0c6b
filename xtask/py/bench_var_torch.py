#!/usr/bin/env python3
"""Times one VAR generation with the official FoundationVision/VAR code (fp32, CPU, random weights).

    /work/venv/bin/python xtask/py/bench_var_torch.py --var-repo /path/to/VAR --depth 16 --threads 2 \
        [--runs 3] [--warmup 1] [--save-weights var_d16_random.safetensors]
    /work/venv/bin/python xtask/py/bench_var_torch.py --var-repo /path/to/VAR --threads 2 \
        --load-weights var_d16_random.safetensors
    /work/venv/bin/python xtask/py/bench_var_torch.py --var-repo /path/to/VAR --depth 16 --runs 0 \
        --save-weights var_d16_random.safetensors        # only write the weights file

Builds the official d{depth} layout with `build_vae_var` (VQ-VAE ch 160, V 4096, Cvae 32),
re-randomises every weight with a fixed seed (var_official.py) or, with --load-weights, loads
them from a file in the converter layout (the depth then comes from its `arvis.config`), and runs
`autoregressive_infer_cfg(B=1, cfg=4, top_k=900, top_p=0.96)` with `torch.set_num_threads`.
Reports the median over --runs timed runs after --warmup untimed ones, split into the
transformer loop (everything before the VAE decode) and the VAE decode (`fhat_to_img`, timed by
wrapping it), plus per-scale loop times (stamped when the sampler of each scale returns).
Prints one JSON object on stdout. --save-weights writes the same weights in the converter
layout (convert_var.py) so the Rust bench can load identical weights; --load-weights reads such a
file back (the buffers the converter drops are the ones the official constructors compute), so
both sides time the same weights. `--runs 0` stops after building (and saving): no timing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_var  # noqa: E402
import var_official as vo  # noqa: E402


def read_weights(path: str):
    """Reads a converter-layout file: (VAR state_dict, VQ-VAE state_dict, arvis.config)."""
    from safetensors import safe_open

    var_sd, vae_sd = {}, {}
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("arvis.family") != "var" or "arvis.config" not in meta:
            raise SystemExit(f"{path}: not a VAR weights file (arvis.family / arvis.config)")
        for k in f.keys():
            t = f.get_tensor(k).to(torch.float32)
            if k.startswith("vae."):
                vae_sd[k[len("vae."):]] = t
            else:
                var_sd[k] = t
    return var_sd, vae_sd, json.loads(meta["arvis.config"])


def load_into(vae, var, var_sd, vae_sd, path: str) -> None:
    """Loads the state dicts; only the buffers the converter drops may be missing."""
    for name, module, sd in (("VAR", var, var_sd), ("VQ-VAE", vae, vae_sd)):
        res = module.load_state_dict(sd, strict=False)
        dropped = (lambda k: k in convert_var.VAR_BUFFERS or convert_var.VAR_BUFFER_RE.match(k)
                   ) if module is var else (lambda k: k in convert_var.VAE_BUFFERS)
        missing = [k for k in res.missing_keys if not dropped(k)]
        if missing or res.unexpected_keys:
            raise SystemExit(f"{path}: {name} keys do not match the official model: missing "
                             f"{missing[:5]}, unexpected {res.unexpected_keys[:5]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--var-repo", required=True)
    ap.add_argument("--depth", type=int, default=None,
                    help="default 16, or the depth of --load-weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--label", type=int, default=207)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--top-k", type=int, default=900)
    ap.add_argument("--top-p", type=float, default=0.96)
    ap.add_argument("--seed", type=int, default=0, help="weight seed")
    ap.add_argument("--g-seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--save-weights", help="write the random weights (converter layout) here")
    ap.add_argument("--load-weights", help="load the weights from this file (converter layout) "
                    "instead of randomising them")
    ap.add_argument("--save-dtype", choices=sorted(convert_var.DTYPES), default="f32")
    ap.add_argument("--device", default="cpu",
                    help="torch device (cpu, cuda); on CUDA TF32 is off (true fp32) and every "
                         "timing synchronises the device")
    args = ap.parse_args()
    if args.runs < 0:
        ap.error("--runs must be >= 0")
    if args.load_weights and args.save_weights:
        ap.error("--load-weights and --save-weights exclude each other")
    loaded = read_weights(args.load_weights) if args.load_weights else None
    if loaded is not None:
        file_depth = int(loaded[2]["var"]["depth"])
        if args.depth is not None and args.depth != file_depth:
            ap.error(f"--depth {args.depth} but {args.load_weights} holds a d{file_depth} VAR")
        args.depth = file_depth
    elif args.depth is None:
        args.depth = 16

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def sync():
        if cuda:
            torch.cuda.synchronize()
    models = vo.import_official(args.var_repo)
    import models.var as var_mod

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        vae, var = models.build_vae_var(
            device="cpu", patch_nums=vo.PATCH_NUMS, V=4096, Cvae=32, ch=160, share_quant_resi=4,
            num_classes=1000, depth=args.depth, shared_aln=False, attn_l2_norm=True,
            flash_if_available=False, fused_if_available=False)
    if loaded is None:
        g = torch.Generator().manual_seed(args.seed)
        vo.randomize_vae(vae, g)
        vo.randomize_var(var, g)
    else:
        load_into(vae, var, loaded[0], loaded[1], args.load_weights)
        del loaded
    vae.to(dev).eval()
    var.to(dev).eval()
    for p in var.parameters():
        p.requires_grad_(False)
    build_s = time.perf_counter() - t0

    saved = None
    if args.save_weights:
        src = (f"xtask/py/bench_var_torch.py --depth {args.depth} --seed {args.seed} (random "
               f"weights); FoundationVision/VAR @ {vo.repo_revision(args.var_repo)}; "
               f"torch {torch.__version__}")
        tensors, meta = convert_var.convert(vae.state_dict(), var.state_dict(),
                                            dtype=convert_var.DTYPES[args.save_dtype], source=src)
        convert_var.save(args.save_weights, tensors, meta)
        saved = {"path": args.save_weights, "bytes": os.path.getsize(args.save_weights),
                 "dtype": args.save_dtype}
        del tensors

    if args.runs == 0:
        print(json.dumps({"bench": "var_torch_official", "depth": args.depth, "runs": 0,
                          "build_s": build_s, "weights": saved}))
        return 0

    stamps: list = []
    orig_sample = var_mod.sample_with_top_k_top_p_

    def sample_hook(*a, **k):
        r = orig_sample(*a, **k)
        sync()
        stamps.append(time.perf_counter())
        return r

    orig_decode = vae.fhat_to_img
    decode = {}

    def decode_hook(f_hat):
        sync()
        s = time.perf_counter()
        out = orig_decode(f_hat)
        sync()
        decode["start"], decode["end"] = s, time.perf_counter()
        return out

    var_mod.sample_with_top_k_top_p_ = sample_hook
    vae.fhat_to_img = decode_hook
    labels = torch.full((args.batch,), args.label, dtype=torch.long, device=dev)
    runs = []
    try:
        for i in range(args.warmup + args.runs):
            stamps.clear()
            decode.clear()
            sync()
            start = time.perf_counter()
            with torch.inference_mode():
                img = var.autoregressive_infer_cfg(B=args.batch, label_B=labels,
                                                   g_seed=args.g_seed, cfg=args.cfg,
                                                   top_k=args.top_k, top_p=args.top_p)
            sync()
            end = time.perf_counter()
            edges = [start] + stamps
            per_scale = [b - a for a, b in zip(edges, edges[1:])]
            rec = {"total_s": end - start, "decode_s": decode["end"] - decode["start"],
                   "transformer_s": decode["start"] - start, "per_scale_s": per_scale}
            print(f"[{'warmup' if i < args.warmup else 'run'} {i}] total {rec['total_s']:.2f}s "
                  f"transformer {rec['transformer_s']:.2f}s decode {rec['decode_s']:.2f}s",
                  file=sys.stderr, flush=True)
            if i >= args.warmup:
                runs.append(rec)
    finally:
        var_mod.sample_with_top_k_top_p_ = orig_sample
        del vae.fhat_to_img

    def med(key):
        return statistics.median(r[key] for r in runs)

    n_var = sum(p.numel() for p in var.parameters())
    n_vae = sum(p.numel() for p in vae.parameters())
    report = {
        "bench": "var_torch_official", "depth": args.depth, "embed_dim": var.C,
        "threads": args.threads, "batch": args.batch, "label": args.label, "cfg": args.cfg,
        "top_k": args.top_k, "top_p": args.top_p, "g_seed": args.g_seed, "seed": args.seed,
        "dtype": "f32", "device": args.device, "torch": torch.__version__, "python": sys.version.split()[0],
        "var_revision": vo.repo_revision(args.var_repo), "var_params": n_var, "vae_params": n_vae,
        "build_s": build_s, "warmup": args.warmup, "runs": len(runs),
        "median": {"total_s": med("total_s"), "transformer_s": med("transformer_s"),
                   "decode_s": med("decode_s"),
                   "per_scale_s": [statistics.median(r["per_scale_s"][i] for r in runs)
                                   for i in range(len(runs[0]["per_scale_s"]))] if runs else []},
        "all": runs, "image_mean": float(img.mean()),
        "weights": saved if saved else (
            {"path": args.load_weights, "bytes": os.path.getsize(args.load_weights),
             "loaded": True} if args.load_weights else None),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
