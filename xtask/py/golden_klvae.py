#!/usr/bin/env python3
"""Writes the KL-VAE golden fixture from the official LTH14/mar code (random weights).

    /work/venv/bin/python xtask/py/golden_klvae.py --mar-repo /path/to/mar \
        [--out crates/arvis-tokenizer/tests/golden/klvae_tiny.safetensors]

The model is MAR's `AutoencoderKL` (`models/vae.py`, imported from --mar-repo, tested at commit
fe470ac, never copied) with the real KL-16 structure — ch_mult (1, 1, 2, 2, 4), 2 residual blocks
(3 in the decoder), separate q/k/v attention, double_z, 1×1 quant convs, embed_dim 16 — but
`ch = 8`, `resolution = 64` (so the encoder's attention at 16×16 falls on level 2 of a 64² input)
and `GroupNorm(4)`: the official `Normalize` hard-codes 32 groups, which would force ch ≥ 32; the
script replaces that function at run time (the only change) and records `"norm_groups": 4`.
`AutoencoderKL` passes neither `ch` nor `resolution` on, so its encoder and decoder are rebuilt
with the official `Encoder`/`Decoder` classes.

Every parameter is re-randomised with seeded values (convs N(0, 1/fan_in), decoder `conv_out`
×0.6, GroupNorm affine 1 + N(0, 0.2²) / N(0, 0.2²), biases N(0, 0.05²)), rounded to f16 *before*
anything is computed and stored as F16 under `vae.` (exact). Everything runs in fp32 on CPU, one
thread. The `golden.*` tensors (F32): the input image, the posterior mean and clamped log-variance,
the `torch.randn` draw of `posterior.sample()` (replayed by re-seeding), the sample, MAR's tokens
`sample · 0.2325` and the decoded image `decode(tokens / 0.2325)`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from convert_var import save  # noqa: E402  (byte-reproducible safetensors writer)

OUT_PATH = "crates/arvis-tokenizer/tests/golden/klvae_tiny.safetensors"
TINY_GROUPS = 4
TINY = dict(embed_dim=16, ch_mult=[1, 1, 2, 2, 4], ch=8, num_res_blocks=2, resolution=64)
LATENT_SCALE = 0.2325  # engine_mar.py L65 / L159


def normal(shape, std: float, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * std


def import_official(mar_repo: str):
    """`models.vae` of the checkout, with `Normalize` using TINY_GROUPS groups."""
    mar_repo = os.path.abspath(mar_repo)
    if not os.path.isfile(os.path.join(mar_repo, "models", "vae.py")):
        raise SystemExit(f"{mar_repo}: not an LTH14/mar checkout (no models/vae.py)")
    sys.path.insert(0, mar_repo)
    import models.vae as vae  # official code

    vae.Normalize = lambda in_channels, num_groups=32: nn.GroupNorm(
        TINY_GROUPS, in_channels, eps=1e-6, affine=True)
    return vae


def build_tiny(vae, cfg: dict) -> nn.Module:
    """The official AutoencoderKL with the tiny encoder and decoder (official classes)."""
    model = vae.AutoencoderKL(embed_dim=cfg["embed_dim"], ch_mult=tuple(cfg["ch_mult"]))
    common = dict(ch=cfg["ch"], ch_mult=tuple(cfg["ch_mult"]), num_res_blocks=cfg["num_res_blocks"],
                  resolution=cfg["resolution"], z_channels=cfg["embed_dim"])
    model.encoder = vae.Encoder(**common)
    model.decoder = vae.Decoder(**common)
    return model.eval()


@torch.no_grad()
def randomize(model: nn.Module, g: torch.Generator, out_gain: float = 0.6) -> None:
    """Seeded values for every parameter (the official init is PyTorch's default, but the fixture
    must not depend on it)."""
    for name, p in model.named_parameters():
        if ".norm" in name or name.endswith(("norm1.weight", "norm2.weight")):
            base = 1.0 if name.endswith("weight") else 0.0
            p.copy_(base + normal(p.shape, 0.2, g))
        elif p.dim() == 4:
            fan_in = p.shape[1] * p.shape[2] * p.shape[3]
            gain = out_gain if name == "decoder.conv_out.weight" else 1.0
            p.copy_(normal(p.shape, gain / math.sqrt(fan_in), g))
        elif name.endswith("bias"):
            p.copy_(normal(p.shape, 0.05, g))
        else:
            raise RuntimeError(f"randomize: unhandled parameter {name} {tuple(p.shape)}")
        p.copy_(p.half().float())


def arvis_config(cfg: dict) -> dict:
    """The `"vae"` object of `arvis.config` (KlVaeConfig) for the official defaults the tiny
    model keeps: encoder attention at 16, none in the decoder, 3 image channels."""
    return dict(embed_dim=cfg["embed_dim"], ch_mult=cfg["ch_mult"], ch=cfg["ch"],
                num_res_blocks=cfg["num_res_blocks"], resolution=cfg["resolution"],
                encoder_attn_resolutions=[16], decoder_attn_resolutions=[], in_channels=3,
                norm_groups=TINY_GROUPS, latent_scale=LATENT_SCALE)


def smooth_image(b: int, size: int, g: torch.Generator) -> torch.Tensor:
    """[b,3,size,size] in (-1,1): bicubic-upsampled noise plus a random plane wave, tanh'ed."""
    low = torch.randn(b, 3, size // 8, size // 8, generator=g)
    img = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    for i in range(b):
        k = torch.randint(1, 5, (2,), generator=g).float()
        ph = float(torch.rand(1, generator=g)) * 2 * math.pi
        img[i] += 0.5 * torch.sin(2 * math.pi * (k[0] * xx + k[1] * yy) + ph)
    return torch.tanh(img)


def source(args) -> str:
    try:
        rev = subprocess.check_output(["git", "-C", args.mar_repo, "rev-parse", "--short", "HEAD"],
                                      text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "fe470ac (not a git checkout; the revision models.md pins)"
    return (f"python xtask/py/golden_klvae.py --seed {args.seed} --image-size {args.image_size}; "
            f"LTH14/mar @ {rev}; torch {torch.__version__}; fp32 CPU")


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mar-repo", required=True, help="checkout of LTH14/mar")
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, OUT_PATH))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vae = import_official(args.mar_repo)

    g = torch.Generator().manual_seed(args.seed)
    model = build_tiny(vae, TINY)
    randomize(model, g)
    img = smooth_image(2, args.image_size, g)

    posterior = model.encode(img)
    torch.manual_seed(args.seed + 1)
    sample = posterior.sample()
    torch.manual_seed(args.seed + 1)  # the same draw `sample()` made
    noise = torch.randn(posterior.mean.shape)
    assert torch.equal(sample, posterior.mean + posterior.std * noise), "noise replay"
    tokens = sample.clone().mul_(LATENT_SCALE)
    rec = model.decode(tokens / LATENT_SCALE)
    print(f"mean |max| {posterior.mean.abs().max():.3f}, logvar in "
          f"[{posterior.logvar.min():.3f}, {posterior.logvar.max():.3f}], |rec| max {rec.abs().max():.3f}")

    tensors = {f"vae.{k}": v.detach().half().contiguous() for k, v in model.named_parameters()}
    assert len(tensors) == len(model.state_dict()), "AutoencoderKL has no buffers"
    tensors.update({
        "golden.img": img.contiguous(),
        "golden.mean": posterior.mean.contiguous(),
        "golden.logvar": posterior.logvar.contiguous(),
        "golden.noise": noise.contiguous(),
        "golden.sample": sample.contiguous(),
        "golden.tokens": tokens.contiguous(),
        "golden.rec": rec.contiguous(),
    })
    meta = {
        "arvis.family": "klvae",
        "arvis.config": json.dumps({"vae": arvis_config(TINY)}, sort_keys=True),
        "arvis.source": source(args),
    }
    save(args.out, tensors, meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB, "
          f"{sum(p.numel() for p in model.parameters())} parameters)")


if __name__ == "__main__":
    main()
