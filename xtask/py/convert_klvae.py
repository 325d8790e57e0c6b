#!/usr/bin/env python3
"""Converts MAR's KL-16 VAE checkpoint (LTH14/mar `kl16.ckpt`) into an arvis `.safetensors` file.

    python xtask/py/convert_klvae.py --ckpt kl16.ckpt --out kl16.safetensors \
        [--dtype f32|f16|bf16] [--resolution 256] [--norm-groups 32] [--latent-scale 0.2325]

Layout:
- keys exactly as the official `AutoencoderKL.state_dict()` (MAR loads `torch.load(p)["model"]`,
  `models/vae.py` L463-471; `"module"` / `"state_dict"` / a bare dict are accepted too),
  prefixed `vae.`; the model has no buffers. Keys under `loss.` (the LDM training loss: LPIPS,
  discriminator, logvar), if the checkpoint carries any, are dropped — the official loader
  (`strict=False`) ignores them too; any other unknown key is an error;
- metadata: `arvis.family` = "klvae", `arvis.source`, `arvis.config` (JSON {"vae": {...}}, the
  fields of the Rust `KlVaeConfig`, inferred from key names and shapes; `resolution` (which
  places attention: encoder level i works at resolution / 2^i), `norm_groups` and
  `latent_scale` are not in the weights and come from the flags, defaulting to MAR's).

Validation is strict: the expected key set and every shape are enumerated from the inferred
config the way the official constructors build them; any missing, unknown or mis-shaped key is an
error (exit 2, no file written). Needs only torch + safetensors (not the official repository).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict
from typing import Mapping, Optional, Sequence

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from convert_llamagen import Shapes, _levels, _need, load_checkpoint, validate  # noqa: E402
from convert_var import DTYPES, ConversionError, save  # noqa: E402

TRAINING_PREFIX = "loss."
LATENT_SCALE = 0.2325  # engine_mar.py L65 / L159


def _attn_levels(sd: Mapping[str, torch.Tensor], prefix: str, n: int) -> list:
    """Levels i < n that have `{prefix}{i}.attn.*` keys."""
    return [i for i in range(n) if any(k.startswith(f"{prefix}{i}.attn.") for k in sd)]


def infer_config(sd: Mapping[str, torch.Tensor], resolution: int = 256, norm_groups: int = 32,
                 latent_scale: float = LATENT_SCALE) -> dict:
    """The `"vae"` config (Rust `KlVaeConfig`) implied by the state dict's names and shapes."""
    conv_in = _need(sd, "encoder.conv_in.weight", "VAE")
    ch, in_ch = int(conv_in.shape[0]), int(conv_in.shape[1])
    n = _levels(sd, "encoder.down.")
    if _levels(sd, "decoder.up.") != n:
        raise ConversionError(f"encoder has {n} levels, decoder {_levels(sd, 'decoder.up.')}")
    mult = []
    for i in range(n):
        out = int(_need(sd, f"encoder.down.{i}.block.0.conv1.weight", "VAE").shape[0])
        if out % ch:
            raise ConversionError(f"encoder.down.{i}: {out} channels is not a multiple of ch {ch}")
        mult.append(out // ch)
    embed = int(_need(sd, "post_quant_conv.weight", "VAE").shape[0])
    quant = _need(sd, "quant_conv.weight", "VAE")
    if tuple(quant.shape[:2]) != (2 * embed, 2 * embed):
        raise ConversionError(f"quant_conv {tuple(quant.shape)}: expected {2 * embed}→{2 * embed} "
                              "(mean and log-variance; use_variational=False is not supported)")
    lowest = resolution >> (n - 1)
    return dict(
        embed_dim=embed, ch_mult=mult, ch=ch,
        num_res_blocks=_levels(sd, "encoder.down.0.block."), resolution=resolution,
        encoder_attn_resolutions=sorted({resolution >> i for i in _attn_levels(sd, "encoder.down.", n)},
                                        reverse=True),
        decoder_attn_resolutions=sorted({lowest << (n - 1 - i) for i in _attn_levels(sd, "decoder.up.", n)},
                                        reverse=True),
        in_channels=in_ch, norm_groups=norm_groups, latent_scale=latent_scale)


def expected_shapes(c: dict) -> Shapes:
    """Every key and shape of the official AutoencoderKL for config `c`, in module order."""
    out: Shapes = OrderedDict()

    def conv(name, cout, cin, k):
        out[f"{name}.weight"] = (cout, cin, k, k)
        out[f"{name}.bias"] = (cout,)

    def norm(name, ch):
        out[f"{name}.weight"] = (ch,)
        out[f"{name}.bias"] = (ch,)

    def res(name, cin, cout):
        norm(f"{name}.norm1", cin)
        conv(f"{name}.conv1", cout, cin, 3)
        norm(f"{name}.norm2", cout)
        conv(f"{name}.conv2", cout, cout, 3)
        if cin != cout:
            conv(f"{name}.nin_shortcut", cout, cin, 1)

    def attn(name, ch):
        norm(f"{name}.norm", ch)
        for p in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{p}", ch, ch, 1)

    def mid(name, ch):
        res(f"{name}.block_1", ch, ch)
        attn(f"{name}.attn_1", ch)
        res(f"{name}.block_2", ch, ch)

    ch, m, nrb, e = c["ch"], c["ch_mult"], c["num_res_blocks"], c["embed_dim"]
    n, res_ = len(m), c["resolution"]
    conv("encoder.conv_in", ch, c["in_channels"], 3)
    block_in = ch
    for i, mult in enumerate(m):
        for b in range(nrb):
            res(f"encoder.down.{i}.block.{b}", block_in, ch * mult)
            block_in = ch * mult
        if (res_ >> i) in c["encoder_attn_resolutions"]:
            for b in range(nrb):
                attn(f"encoder.down.{i}.attn.{b}", block_in)
        if i != n - 1:
            conv(f"encoder.down.{i}.downsample.conv", block_in, block_in, 3)
    mid("encoder.mid", block_in)
    norm("encoder.norm_out", block_in)
    conv("encoder.conv_out", 2 * e, block_in, 3)

    block_in = ch * m[-1]
    conv("decoder.conv_in", block_in, e, 3)
    mid("decoder.mid", block_in)
    lowest = res_ >> (n - 1)
    for i in reversed(range(n)):
        for b in range(nrb + 1):
            res(f"decoder.up.{i}.block.{b}", block_in, ch * m[i])
            block_in = ch * m[i]
        if (lowest << (n - 1 - i)) in c["decoder_attn_resolutions"]:
            for b in range(nrb + 1):
                attn(f"decoder.up.{i}.attn.{b}", block_in)
        if i != 0:
            conv(f"decoder.up.{i}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", c["in_channels"], block_in, 3)
    conv("quant_conv", 2 * e, 2 * e, 1)
    conv("post_quant_conv", e, e, 1)
    return out


def convert(sd: Mapping[str, torch.Tensor], *, resolution: int = 256, norm_groups: int = 32,
            latent_scale: float = LATENT_SCALE, dtype: torch.dtype = torch.float32, source: str = ""):
    """state_dict → (tensors in the arvis layout, safetensors metadata). Raises ConversionError."""
    if resolution <= 0 or norm_groups <= 0 or not latent_scale > 0:
        raise ConversionError("--resolution, --norm-groups and --latent-scale must be positive")
    training = [k for k in sd if k.startswith(TRAINING_PREFIX)]
    model_sd = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(TRAINING_PREFIX))
    cfg = infer_config(model_sd, resolution, norm_groups, latent_scale)
    for c in [cfg["ch"]] + [cfg["ch"] * m for m in cfg["ch_mult"]]:
        if c % norm_groups:
            raise ConversionError(f"channel count {c} is not divisible by --norm-groups {norm_groups}")
    validate(model_sd, expected_shapes(cfg), (), "VAE")
    if training:
        print(f"dropped {len(training)} training-loss keys ({TRAINING_PREFIX}*)", file=sys.stderr)
    tensors = {f"vae.{k}": v.to(dtype).contiguous() for k, v in model_sd.items()}
    meta = {
        "arvis.family": "klvae",
        "arvis.config": json.dumps({"vae": cfg}, sort_keys=True),
        "arvis.source": source,
    }
    return tensors, meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="VAE checkpoint (kl16.ckpt)")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--resolution", type=int, default=256,
                    help="the official `resolution` (places attention; 256 for kl16)")
    ap.add_argument("--norm-groups", type=int, default=32,
                    help="GroupNorm groups (32 in the release; not in the weights)")
    ap.add_argument("--latent-scale", type=float, default=LATENT_SCALE,
                    help="MAR's latent scale (0.2325; applied by the generator)")
    args = ap.parse_args(argv)
    try:
        sd = load_checkpoint(args.ckpt, "VAE")
        src = (f"xtask/py/convert_klvae.py from {os.path.basename(args.ckpt)} "
               f"(torch {torch.__version__}, dtype {args.dtype})")
        tensors, meta = convert(sd, resolution=args.resolution, norm_groups=args.norm_groups,
                                latent_scale=args.latent_scale, dtype=DTYPES[args.dtype], source=src)
    except ConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save(args.out, tensors, meta)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {n / 1e6:.2f}M values, "
          f"{os.path.getsize(args.out) / 1e6:.1f} MB; config {meta['arvis.config']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
