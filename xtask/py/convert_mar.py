#!/usr/bin/env python3
"""Converts an official MAR checkpoint (LTH14/mar) and its KL-16 VAE into one arvis file.

    python xtask/py/convert_mar.py --ckpt checkpoint-last.pth --vae kl16.ckpt --out mar-b.safetensors \
        [--key model_ema|model] [--dtype f32|f16|bf16] [--num-heads N] [--vae-stride 16]

Layout:
- MAR's keys exactly as the official `MAR.state_dict()` (`class_emb.weight`, `fake_latent`,
  `encoder_blocks.{i}.attn.qkv.weight`, ..., the diffusion head under `diffloss.net.`), taken
  from `ckpt["model_ema"]` by default (what the official evaluation and demo use; `--key model`
  takes the raw weights); MAR registers no buffers, so nothing is dropped;
- the VAE under `vae.` as `convert_klvae.py` writes it (its validation and config inference);
- metadata: `arvis.family` = "mar", `arvis.source`, `arvis.config` = JSON {"mar": {...}, "vae":
  {...}}: the Rust `MarConfig` inferred from shapes (token and buffer counts from the position
  embeddings, depths from the block indices, `mlp_ratio` from `fc1`), except what the weights do
  not hold: the head count (768 → 12, 1024 → 16, 1280 → 16 as in `mar_base/large/huge`, else
  `--num-heads`), `vae_stride` (16) and the LayerNorm eps (1e-6, as every `mar_*` passes it).

Validation is strict: every key and shape the official constructor would create for the
inferred config is required, anything else is an error (exit 2, no file written).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import OrderedDict
from typing import Mapping, Optional, Sequence

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_klvae  # noqa: E402
from convert_llamagen import Shapes, _levels, _need, validate  # noqa: E402
from convert_var import DTYPES, ConversionError, save  # noqa: E402

HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16}  # mar_base / mar_large / mar_huge


def load_mar_checkpoint(path: str, key: str) -> "OrderedDict[str, torch.Tensor]":
    """`ckpt[key]` of an official training checkpoint (`{model, model_ema, optimizer, epoch,
    scaler, args}`); a bare state dict is accepted too."""
    import argparse as _argparse

    try:
        torch.serialization.add_safe_globals([_argparse.Namespace])
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a conversion error
        raise ConversionError(f"MAR checkpoint {path}: cannot load ({e})") from e
    if isinstance(ckpt, Mapping) and key in ckpt:
        ckpt = ckpt[key]
        if ckpt is None:
            raise ConversionError(f"MAR checkpoint {path}: `{key}` is empty (trained without EMA?)")
    elif isinstance(ckpt, Mapping) and ("model" in ckpt or "model_ema" in ckpt):
        raise ConversionError(f"MAR checkpoint {path}: no `{key}` (keys {sorted(ckpt)[:8]})")
    if not isinstance(ckpt, Mapping) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ConversionError(f"MAR checkpoint {path}: not a state dict of tensors")
    return OrderedDict(ckpt)


def infer_config(sd: Mapping[str, torch.Tensor], vae_embed_dim: int = 16, vae_stride: int = 16,
                 num_heads: Optional[int] = None) -> dict:
    """The `"mar"` config (Rust `MarConfig`) implied by the state dict's names and shapes."""
    de, tok = (int(d) for d in _need(sd, "z_proj.weight", "MAR").shape)
    dd = int(_need(sd, "decoder_embed.weight", "MAR").shape[0])
    s = int(_need(sd, "diffusion_pos_embed_learned", "MAR").shape[1])
    total = int(_need(sd, "encoder_pos_embed_learned", "MAR").shape[1])
    side, p2 = math.isqrt(s), tok // vae_embed_dim
    p = math.isqrt(p2)
    if side * side != s or p * p * vae_embed_dim != tok or total <= s:
        raise ConversionError(f"{s} tokens of {tok} channels with {total - s} buffer tokens: not a "
                              f"square grid of {vae_embed_dim}-channel p×p patches")
    heads = {}
    for part, width in (("encoder", de), ("decoder", dd)):
        h = num_heads or HEADS_BY_WIDTH.get(width)
        if h is None or width % h:
            raise ConversionError(f"{part} width {width}: head count unknown (not a released size); "
                                  "pass --num-heads")
        heads[part] = h
    hidden = int(_need(sd, "encoder_blocks.0.mlp.fc1.weight", "MAR").shape[0])
    return dict(img_size=side * p * vae_stride, vae_stride=vae_stride, patch_size=p,
                vae_embed_dim=vae_embed_dim,
                encoder_embed_dim=de, encoder_depth=_levels(sd, "encoder_blocks."),
                encoder_num_heads=heads["encoder"],
                decoder_embed_dim=dd, decoder_depth=_levels(sd, "decoder_blocks."),
                decoder_num_heads=heads["decoder"],
                mlp_ratio=hidden / de, class_num=int(_need(sd, "class_emb.weight", "MAR").shape[0]),
                buffer_size=total - s, norm_eps=1e-6)


def head_config(sd: Mapping[str, torch.Tensor]) -> dict:
    w, c = (int(d) for d in _need(sd, "diffloss.net.input_proj.weight", "head").shape)
    return dict(width=w, channels=c, depth=_levels(sd, "diffloss.net.res_blocks."),
                z=int(_need(sd, "diffloss.net.cond_embed.weight", "head").shape[1]))


def expected_shapes(c: dict, h: dict) -> Shapes:
    """Every key and shape of the official MAR (with its DiffLoss head) for configs c and h."""
    out: Shapes = OrderedDict()
    s = (c["img_size"] // c["vae_stride"] // c["patch_size"]) ** 2
    tok = c["vae_embed_dim"] * c["patch_size"] ** 2
    de, dd, buf = c["encoder_embed_dim"], c["decoder_embed_dim"], c["buffer_size"]

    def lin(name, o, i):
        out[f"{name}.weight"] = (o, i)
        out[f"{name}.bias"] = (o,)

    def ln(name, ch):
        out[f"{name}.weight"] = (ch,)
        out[f"{name}.bias"] = (ch,)

    def blocks(prefix, depth, ch):
        hid = int(ch * c["mlp_ratio"])
        for i in range(depth):
            p = f"{prefix}.{i}"
            ln(f"{p}.norm1", ch)
            lin(f"{p}.attn.qkv", 3 * ch, ch)
            lin(f"{p}.attn.proj", ch, ch)
            ln(f"{p}.norm2", ch)
            lin(f"{p}.mlp.fc1", hid, ch)
            lin(f"{p}.mlp.fc2", ch, hid)

    out["fake_latent"] = (1, de)
    out["mask_token"] = (1, 1, dd)
    out["encoder_pos_embed_learned"] = (1, s + buf, de)
    out["decoder_pos_embed_learned"] = (1, s + buf, dd)
    out["diffusion_pos_embed_learned"] = (1, s, dd)
    out["class_emb.weight"] = (c["class_num"], de)
    lin("z_proj", de, tok)
    ln("z_proj_ln", de)
    blocks("encoder_blocks", c["encoder_depth"], de)
    ln("encoder_norm", de)
    lin("decoder_embed", dd, de)
    blocks("decoder_blocks", c["decoder_depth"], dd)
    ln("decoder_norm", dd)
    w, n = h["width"], "diffloss.net"
    lin(f"{n}.time_embed.mlp.0", w, 256)
    lin(f"{n}.time_embed.mlp.2", w, w)
    lin(f"{n}.cond_embed", w, dd)
    lin(f"{n}.input_proj", w, tok)
    for i in range(h["depth"]):
        ln(f"{n}.res_blocks.{i}.in_ln", w)
        lin(f"{n}.res_blocks.{i}.mlp.0", w, w)
        lin(f"{n}.res_blocks.{i}.mlp.2", w, w)
        lin(f"{n}.res_blocks.{i}.adaLN_modulation.1", 3 * w, w)
    lin(f"{n}.final_layer.linear", 2 * tok, w)
    lin(f"{n}.final_layer.adaLN_modulation.1", 2 * w, w)
    return out


def convert(mar_sd: Mapping[str, torch.Tensor], vae_sd: Mapping[str, torch.Tensor], *,
            dtype: torch.dtype = torch.float32, num_heads: Optional[int] = None, vae_stride: int = 16,
            vae_resolution: int = 256, vae_norm_groups: int = 32, source: str = ""):
    """(MAR state dict, VAE state dict) → (tensors in the arvis layout, metadata)."""
    vae_tensors, vae_meta = convert_klvae.convert(vae_sd, resolution=vae_resolution,
                                                  norm_groups=vae_norm_groups, dtype=dtype)
    vae_cfg = json.loads(vae_meta["arvis.config"])["vae"]
    cfg = infer_config(mar_sd, vae_cfg["embed_dim"], vae_stride, num_heads)
    validate(mar_sd, expected_shapes(cfg, head_config(mar_sd)), (), "MAR")
    tensors = OrderedDict((k, v.to(dtype).contiguous()) for k, v in mar_sd.items())
    tensors.update(vae_tensors)
    meta = {
        "arvis.family": "mar",
        "arvis.config": json.dumps({"mar": cfg, "vae": vae_cfg}, sort_keys=True),
        "arvis.source": source,
    }
    return tensors, meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="MAR checkpoint (checkpoint-last.pth)")
    ap.add_argument("--vae", required=True, help="KL-16 VAE checkpoint (kl16.ckpt)")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--key", default="model_ema", choices=["model_ema", "model"])
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--num-heads", type=int, default=None,
                    help="attention heads (inferred for the released widths)")
    ap.add_argument("--vae-stride", type=int, default=16)
    ap.add_argument("--vae-resolution", type=int, default=256)
    ap.add_argument("--vae-norm-groups", type=int, default=32)
    args = ap.parse_args(argv)
    try:
        mar_sd = load_mar_checkpoint(args.ckpt, args.key)
        vae_sd = convert_klvae.load_checkpoint(args.vae, "VAE")
        src = (f"xtask/py/convert_mar.py from {os.path.basename(args.ckpt)}[{args.key}] + "
               f"{os.path.basename(args.vae)} (torch {torch.__version__}, dtype {args.dtype})")
        tensors, meta = convert(mar_sd, vae_sd, dtype=DTYPES[args.dtype], num_heads=args.num_heads,
                                vae_stride=args.vae_stride, vae_resolution=args.vae_resolution,
                                vae_norm_groups=args.vae_norm_groups, source=src)
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
