#!/usr/bin/env python3
"""Writes the MAR golden fixture from the official LTH14/mar code (random weights).

    /work/venv/bin/python xtask/py/golden_mar.py --mar-repo /path/to/mar [--out REPO_ROOT] \
        [--patch-size 1|2]

Output (`--patch-size 1`, the default): crates/arvis-models/tests/golden/mar_tiny.safetensors,
an arvis MAR file (family
"mar", `arvis.config` = {"mar": {...}, "vae": {...}}) holding

- the official `MAR` (models/mar.py, imported from --mar-repo, never copied) at a tiny config
  with the real code paths: img_size 64 with the real vae_stride 16 and patch_size 1 (4×4 = 16
  tokens of 16 channels), the real buffer_size 64, 2 + 2 blocks of width 64 with 2 heads,
  LayerNorm eps 1e-6 (as `mar_base` passes it), 10 classes; keys unprefixed as its state_dict,
  every parameter re-randomised with seeded values (the official init zeroes biases, and its
  0.02-std embeddings would hide the position terms), rounded to f16 before anything runs and
  stored as F16;
- its `DiffLoss` head (d 2, w 64, `num_sampling_steps` "25") under `diffloss.net.`, built by
  `golden_mar_head.stabilize` (a random head's DDPM chains reach |x| ~ 1e5; that head has
  ε ≈ x_t and keeps them O(1)), stored F32;
- the tiny KL VAE of `golden_klvae.py` (same structure and seeding, so the same weights as
  crates/arvis-tokenizer/tests/golden/klvae_tiny.safetensors) under `vae.`, F16;
- `golden.<run>.*`: `sample_tokens` runs on CPU in fp32 (see RUNS) with every random draw
  recorded: `orders` [B, 16] (`sample_orders`, whose `np.random.shuffle` orders are wrapped and
  recorded), and per AR iteration k with predictions `it<k>.z` (the head's conditions
  `[2n, 64]` = [cond; uncond] with guidance, `[n, 64]` without), `it<k>.cfg` (the scale the
  head got), `it<k>.init` [n, 16] (the initial noise, first half), `it<k>.noise` [25, n, 16]
  (the `randn_like` draw at respaced step i stored at index i, first n rows), `it<k>.x0`/
  `it<k>.out0` (the head's input and raw output at its first call, t = 999, before guidance),
  `it<k>.tokens` [n, 16] (the kept samples); then `latents` [B, 16, 4, 4] (the unpatchified
  tokens) and `image` [B, 3, 64, 64] (`vae.decode(latents / 0.2325)`).

`--patch-size 2` writes crates/arvis-models/tests/golden/mar_tiny_p2.safetensors instead: the
same recipe (same seeds, same VAE) with patch_size 2 on img_size 96 (6×6 latents → 3×3 = 9
tokens of 16·2² = 64 channels; a token side 3 ≠ p 2 so a mix-up of the two cannot cancel out),
1 + 1 blocks and a head of depth 1, width 72 (`stabilize` needs width ≥ channels + 2), and one
`guided` run (see VARIANTS; the file stays small). It also records `golden.<run>.final_tokens`
[B, 9, 64], the tokens `sample_tokens` passes to the official `unpatchify` (checked here to
equal `patchify(latents)`), so the Rust test can check the token ↔ latent layout directly. The
patch-size-1 fixture does not hold it (it stays byte-identical to the committed file).

CPU, fp32, one thread; `.cuda()` is patched to a no-op (the reference hard-codes it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from functools import partial

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import golden_klvae  # noqa: E402  (the tiny VAE)
from convert_var import save  # noqa: E402
from golden_mar_head import Recorder, stabilize  # noqa: E402

OUT_PATH = "crates/arvis-models/tests/golden/mar_tiny.safetensors"
LATENT_SCALE = 0.2325
HEAD_STEPS = 25
MAR_CFG = dict(img_size=64, vae_stride=16, patch_size=1, vae_embed_dim=16,
               encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2,
               decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=2,
               mlp_ratio=4.0, class_num=10, buffer_size=64)
HEAD = dict(diffloss_d=2, diffloss_w=64)
# name: (labels or None, num_iter, cfg, cfg_schedule, temperature)
RUNS = {
    "guided": ([3, 7], 4, 3.0, "linear", 0.9),
    "uncond": (None, 3, 1.0, "constant", 1.0),
}
# --patch-size: (output file, MAR config, head, runs, record the tokens unpatchify receives)
VARIANTS = {
    1: (OUT_PATH, MAR_CFG, HEAD, RUNS, False),
    2: ("crates/arvis-models/tests/golden/mar_tiny_p2.safetensors",
        dict(MAR_CFG, img_size=96, patch_size=2, encoder_depth=1, decoder_depth=1),
        dict(diffloss_d=1, diffloss_w=72),
        {"guided": ([4, 9], 5, 2.5, "linear", 0.7)}, True),
}


@torch.no_grad()
def randomize_mar(model: nn.Module, g: torch.Generator) -> None:
    """Seeded values for every MAR parameter outside the head: linears N(0, 1/fan_in), biases
    N(0, 0.1²), LayerNorm weights 1 + N(0, 0.1²), class table and fake latent N(0, 1), mask
    token and position embeddings N(0, 0.5²)."""
    for name, p in sorted(model.named_parameters()):
        if name.startswith("diffloss."):
            continue
        if name in ("class_emb.weight", "fake_latent"):
            p.copy_(torch.randn(p.shape, generator=g))
        elif name == "mask_token" or name.endswith("pos_embed_learned"):
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
        elif p.ndim == 2:
            p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
        elif name.endswith("weight"):  # LayerNorm
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        elif name.endswith("bias"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        else:
            raise RuntimeError(f"randomize_mar: unhandled parameter {name} {tuple(p.shape)}")
        p.copy_(p.half().float())


def stub_scipy_stats() -> None:
    """models/mar.py imports scipy only for the training mask-ratio distribution
    (`stats.truncnorm`, used by `random_masking`, never by `sample_tokens`); without scipy
    installed, a stand-in module whose `truncnorm` raises if ever sampled."""
    try:
        import scipy.stats  # noqa: F401
        return
    except ImportError:
        pass
    import types

    class _Unavailable:
        def __init__(self, *a, **k):
            pass

        def rvs(self, *a, **k):
            raise RuntimeError("scipy is not installed: training-time masking is unavailable")

    scipy = types.ModuleType("scipy")
    stats = types.ModuleType("scipy.stats")
    stats.truncnorm = _Unavailable
    scipy.stats = stats
    sys.modules.setdefault("scipy", scipy)
    sys.modules.setdefault("scipy.stats", stats)


def source(args) -> str:
    try:
        rev = subprocess.check_output(["git", "-C", args.mar_repo, "rev-parse", "--short", "HEAD"],
                                      text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "fe470ac (not a git checkout)"
    flags = f"--seed {args.seed}" + (f" --patch-size {args.patch_size}" if args.patch_size != 1 else "")
    return (f"python xtask/py/golden_mar.py {flags}; LTH14/mar @ {rev}; "
            f"torch {torch.__version__}; fp32 CPU")


def record_run(model, name: str, spec, tensors: dict, record_tokens: bool = False) -> None:
    labels, num_iter, cfg, schedule, temperature = spec
    dl, net = model.diffloss, model.diffloss.net
    bsz = 2
    orig_orders, orig_sample, orig_forward = model.sample_orders, dl.sample, net.forward
    orig_unpatchify = model.unpatchify
    state = {"orders": None, "iters": [], "final_tokens": None}

    def unpatchify(x):
        state["final_tokens"] = x.clone()
        return orig_unpatchify(x)

    def sample_orders(b):
        o = orig_orders(b)
        state["orders"] = o.clone()
        return o

    def sample(z, temperature=1.0, cfg=1.0):
        calls = []

        def forward(x, t, c):
            out = orig_forward(x, t, c)
            calls.append((x.clone(), t.clone(), out.clone()))
            return out

        net.forward = forward
        with Recorder() as rec:
            out = orig_sample(z, temperature, cfg)
        del net.forward
        n = out.shape[0] // 2 if cfg != 1.0 else out.shape[0]
        assert len(rec.randn) == 1 and len(rec.randn_like) == HEAD_STEPS == len(calls)
        peak = max(float(c[0].abs().max()) for c in calls)
        assert peak < 500.0, f"{name}: the head's chain diverged (max |x_t| {peak})"
        state["iters"].append(dict(
            z=z.clone(), cfg=torch.tensor([float(cfg)]), init=rec.randn[0][:n].clone(),
            noise=torch.stack([d[:n] for d in reversed(rec.randn_like)]),
            x0=calls[0][0], t0=calls[0][1][:1].float(), out0=calls[0][2], tokens=out[:n].clone()))
        return out

    model.sample_orders, dl.sample, model.unpatchify = sample_orders, sample, unpatchify
    try:
        y = None if labels is None else torch.tensor(labels)
        with torch.no_grad():
            latents = model.sample_tokens(bsz, num_iter=num_iter, cfg=cfg, cfg_schedule=schedule,
                                          labels=y, temperature=temperature)
    finally:
        del model.sample_orders, dl.sample, model.unpatchify
    pre = f"golden.{name}"
    tensors[f"{pre}.orders"] = state["orders"].float()
    tensors[f"{pre}.latents"] = latents
    if record_tokens:
        tokens = state["final_tokens"]
        assert torch.equal(model.patchify(latents), tokens), "patchify is not unpatchify's inverse"
        tensors[f"{pre}.final_tokens"] = tokens
    for k, it in enumerate(state["iters"]):
        for key, v in it.items():
            tensors[f"{pre}.it{k}.{key}"] = v
    print(f"{name}: {len(state['iters'])} iterations with predictions, "
          f"|latents| max {float(latents.abs().max()):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mar-repo", required=True)
    ap.add_argument("--out", default=REPO_ROOT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch-size", type=int, choices=sorted(VARIANTS), default=1)
    args = ap.parse_args()
    out_path, mar_cfg, head, runs, record_tokens = VARIANTS[args.patch_size]

    torch.Tensor.cuda = lambda self, *a, **k: self  # the reference hard-codes .cuda()
    torch.set_num_threads(1)
    vae_mod = golden_klvae.import_official(args.mar_repo)  # puts the checkout on sys.path
    stub_scipy_stats()
    from models.mar import MAR  # noqa: E402  (official code)

    torch.manual_seed(args.seed)
    import numpy as np
    np.random.seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = MAR(norm_layer=partial(nn.LayerNorm, eps=1e-6), num_sampling_steps=str(HEAD_STEPS),
                **mar_cfg, **head).eval()
    randomize_mar(model, g)
    stabilize(model.diffloss.net, g)

    vae = golden_klvae.build_tiny(vae_mod, golden_klvae.TINY)
    golden_klvae.randomize(vae, torch.Generator().manual_seed(0))  # = klvae_tiny.safetensors

    tensors = {}
    for name, spec in runs.items():
        record_run(model, name, spec, tensors, record_tokens)
        with torch.no_grad():
            tensors[f"golden.{name}.image"] = vae.decode(tensors[f"golden.{name}.latents"] / LATENT_SCALE)

    tensors = {k: v.float().contiguous() for k, v in tensors.items()}
    for k, v in model.state_dict().items():
        tensors[k] = v.detach().clone().contiguous() if k.startswith("diffloss.") else v.half()
    for k, v in vae.state_dict().items():
        tensors[f"vae.{k}"] = v.detach().half().contiguous()
    mar_cfg = dict(mar_cfg, norm_eps=1e-6)
    meta = {
        "arvis.family": "mar",
        "arvis.config": json.dumps({"mar": mar_cfg, "vae": golden_klvae.arvis_config(golden_klvae.TINY)},
                                   sort_keys=True),
        "arvis.golden": json.dumps({k: dict(zip(["labels", "num_iter", "cfg", "cfg_schedule", "temperature"], v),
                                            head_steps=HEAD_STEPS) for k, v in runs.items()}, sort_keys=True),
        "arvis.source": source(args),
    }
    path = os.path.join(args.out, out_path)
    save(path, tensors, meta)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
