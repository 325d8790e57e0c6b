"""Helpers shared by golden_var.py, bench_var_torch.py and test_convert_var.py.

Imports the official FoundationVision/VAR code from a checkout given on the command line (it is
never copied into this repository) and re-randomises the models so that random-weight goldens
exercise every path: the official init scales the block AdaLN gammas by 1e-5 and the head by
0.02, and `build_vae_var` leaves the VQ-VAE as uninitialised `torch.empty`.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Tuple

import torch
import torch.nn as nn

TINY_VAE = dict(vocab_size=64, z_channels=8, ch=16, quant_conv_ks=3, quant_resi=0.5,
                share_quant_resi=4)
# The official VAE hard-codes GroupNorm(32) (`basic_vae.Normalize`), which forces ch >= 32 and a
# 4.4M-parameter "tiny" VAE. The golden VAE uses 8 groups with ch 16 instead: the only change to
# the official code, made by replacing `Normalize`'s default argument at run time; the Rust side
# reads `norm_groups` from the config (32 when absent, as in every released checkpoint).
TINY_NORM_GROUPS = 8
TINY_VAR = dict(depth=2, embed_dim=128, num_heads=2, num_classes=10, norm_eps=1e-6,
                attn_l2_norm=True)
PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


def import_official(var_repo: str):
    """Imports `models` (and `dist`) from the checkout; refuses fused/flash/xformers kernels."""
    import warnings

    # VAR.forward uses the deprecated torch.cuda.amp.autocast(enabled=False): harmless on CPU.
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.autocast", category=FutureWarning)
    var_repo = os.path.abspath(var_repo)
    if not os.path.isfile(os.path.join(var_repo, "models", "var.py")):
        raise SystemExit(f"{var_repo}: not a FoundationVision/VAR checkout (no models/var.py)")
    if var_repo not in sys.path:
        sys.path.insert(0, var_repo)
    import models  # noqa: F401  (the official package)
    import models.basic_var as bv
    for name in ("flash_attn_func", "memory_efficient_attention", "fused_mlp_func",
                 "dropout_add_layer_norm"):
        if getattr(bv, name, None) is not None:
            raise SystemExit(f"models.basic_var.{name} is available: uninstall flash-attn/xformers "
                             "before making fp32 goldens (see models.md §1.4)")
    return models


def repo_revision(var_repo: str) -> str:
    """The checkout's commit if it is a git work tree, else the commit the project pins."""
    try:
        return subprocess.run(["git", "-C", var_repo, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "78b9539 (not a git checkout; the revision models.md pins)"


def _normal(shape, std: float, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float32) * std


@torch.no_grad()
def randomize_vae(vae: nn.Module, g: torch.Generator, out_gain: float = 0.6,
                  emb_std: float = 0.5) -> None:
    """Fills every VQ-VAE parameter with seeded values that keep activations O(1).

    Convs: N(0, 1/fan_in) (×`out_gain` for the decoder's last conv, so the image is mostly
    inside the clamp); GroupNorm affine around (1, 0); biases small; the codebook is N(0, 1)
    rows (std `emb_std`, about the encoder output's), distinct, so nearest-neighbour ties have
    probability zero.
    """
    for name, p in vae.named_parameters():
        if name.startswith("quantize.embedding"):
            p.copy_(_normal(p.shape, emb_std, g))
        elif ".norm" in name or name.endswith(("norm1.weight", "norm2.weight")):
            base = 1.0 if name.endswith("weight") else 0.0
            p.copy_(base + _normal(p.shape, 0.2, g))
        elif p.dim() == 4:
            fan_in = p.shape[1] * p.shape[2] * p.shape[3]
            gain = out_gain if name == "decoder.conv_out.weight" else 1.0
            p.copy_(_normal(p.shape, gain / math.sqrt(fan_in), g))
        elif name.endswith("bias"):
            p.copy_(_normal(p.shape, 0.05, g))
        else:
            raise RuntimeError(f"randomize_vae: unhandled parameter {name} {tuple(p.shape)}")
    for name, b in vae.named_buffers():
        b.zero_()


@torch.no_grad()
def randomize_var(var: nn.Module, g: torch.Generator, head_gain: float = 1.5) -> None:
    """Fills every VAR parameter (not the VAE's) with seeded values where every path matters.

    AdaLN outputs (gammas, scales, shifts) come out O(0.5) instead of 1e-5; the per-head
    `scale_mul_1H11` gets distinct values in [ln 3, ln 30] and, in block 0, one head above
    ln 100 so that the clamp is exercised; logits get a spread of a few units.
    """
    c = var.C
    for name, p in var.named_parameters():
        if name.startswith("vae_") or name.startswith("vae."):
            continue
        if name.endswith("scale_mul_1H11"):
            h = p.shape[1]
            v = torch.empty(h).uniform_(math.log(3.0), math.log(30.0), generator=g)
            if name.startswith("blocks.0.") and h > 1:
                v[-1] = math.log(150.0)  # above the clamp max ln(100)
            p.copy_(v.view(1, h, 1, 1))
        elif name in ("class_emb.weight",):
            p.copy_(_normal(p.shape, 1.0, g))
        elif name in ("pos_start", "pos_1LC", "lvl_embed.weight"):
            p.copy_(_normal(p.shape, 0.5, g))
        elif name.endswith(("q_bias", "v_bias")):
            p.copy_(_normal(p.shape, 0.5, g))
        elif name.endswith("ada_gss"):
            p.copy_(_normal(p.shape, 0.3, g))
        elif name == "head.weight":
            p.copy_(_normal(p.shape, head_gain / math.sqrt(p.shape[1]), g))
        elif name == "head.bias":
            p.copy_(_normal(p.shape, 0.5, g))
        elif p.dim() == 2:  # Linear weights: ada_lin / shared_ada_lin / qkv / proj / ffn / word_embed
            gain = 0.8 if "ada_lin" in name else 1.0
            p.copy_(_normal(p.shape, gain / math.sqrt(p.shape[1]), g))
        elif name.endswith("bias"):
            p.copy_(_normal(p.shape, 0.1, g))
        else:
            raise RuntimeError(f"randomize_var: unhandled parameter {name} {tuple(p.shape)}")
    assert c == var.pos_1LC.shape[-1]


def round_params_(module: nn.Module, dtype: torch.dtype) -> None:
    """Rounds every parameter to `dtype` in place (kept f32), so storing them as `dtype` is exact."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def build_tiny_vae(models, patch_nums=PATCH_NUMS, norm_groups=TINY_NORM_GROUPS, **over):
    import models.basic_vae as bvae
    kw = dict(TINY_VAE, **over)
    saved = bvae.Normalize.__defaults__
    bvae.Normalize.__defaults__ = (norm_groups,)
    try:
        vae = models.VQVAE(test_mode=True, v_patch_nums=tuple(patch_nums), **kw).eval()
    finally:
        bvae.Normalize.__defaults__ = saved
    vae.arvis_norm_groups = norm_groups
    return vae


def build_tiny_var(models, vae, shared_aln: bool, patch_nums=PATCH_NUMS, **over):
    kw = dict(TINY_VAR, **over)
    var = models.VAR(vae_local=vae, shared_aln=shared_aln, cond_drop_rate=0.0,
                     patch_nums=tuple(patch_nums), flash_if_available=False,
                     fused_if_available=False, mlp_ratio=4.0, drop_rate=0.0,
                     attn_drop_rate=0.0, drop_path_rate=0.0, **kw).eval()
    for p in var.parameters():
        p.requires_grad_(False)
    return var


def vae_config_of(vae, patch_nums=PATCH_NUMS) -> dict:
    """The "vae" config JSON for a VQVAE built with the official class."""
    return {
        "vocab_size": int(vae.vocab_size), "z_channels": int(vae.Cvae),
        "ch": int(vae.encoder.ch), "ch_mult": [1, 1, 2, 2, 4],
        "num_res_blocks": int(vae.encoder.num_res_blocks), "using_sa": True,
        "using_mid_sa": True, "quant_conv_ks": int(vae.quant_conv.kernel_size[0]),
        "quant_resi": float(vae.quantize.quant_resi_ratio),
        "share_quant_resi": len(vae.quantize.quant_resi.qresi_ls), "test_mode": True,
        "patch_nums": [int(p) for p in patch_nums], "in_channels": 3,
        **({"norm_groups": int(vae.arvis_norm_groups)}
           if getattr(vae, "arvis_norm_groups", 32) != 32 else {}),
    }


def quiet_ctor(fn, *a, **k):
    """Calls a constructor with its stdout banner suppressed."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **k)


def model_summary(t: torch.Tensor) -> Tuple[float, float, float]:
    return float(t.mean()), float(t.std()), float(t.abs().max())
