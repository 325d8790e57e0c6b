#!/usr/bin/env python3
"""Converts official LlamaGen c2i checkpoints (FoundationVision/LlamaGen) into one arvis `.safetensors` file.

    python xtask/py/convert_llamagen.py --vq vq_ds16_c2i.pt --gpt c2i_B_256.pt \
        --out llamagen_b.safetensors [--dtype f32|f16|bf16] [--image-size 256] [--head-dim 64]

Layout:
- GPT keys exactly as the official `Transformer.state_dict()` (from `ckpt["model"]`, or
  `"module"` / `"state_dict"` / a bare dict), prefixed `gpt.`;
- VQ keys exactly as the official `VQModel.state_dict()`, prefixed `vq.`; the buffer
  `quantize.codebook_used` (a training statistic) is dropped;
- metadata: `arvis.family` = "llamagen", `arvis.source`, `arvis.config` (JSON {"gpt": {...},
  "vq": {...}}, inferred from key names and shapes; the head count is `dim / --head-dim`, 64 in
  every release, and the token grid is `--image-size / 2^(levels − 1)`), `arvis.sampling`
  (the official sampler's cfg 4, top-k 2000, top-p 1).

Validation is strict: the expected key set and every shape are enumerated from the inferred
config the way the official constructors build them; any unknown, missing or mis-shaped key is an
error. Needs only torch + safetensors (not the official repository).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from convert_var import DTYPES, ConversionError, save  # noqa: E402

VQ_BUFFERS = ("quantize.codebook_used",)
SAMPLING = {"cfg": 4.0, "top_k": 2000, "top_p": 1.0}
Shapes = "OrderedDict[str, Tuple[int, ...]]"


def load_checkpoint(path: str, role: str) -> Dict[str, torch.Tensor]:
    """The state dict of an official checkpoint: `ckpt["model"]` (releases), `"module"`,
    `"state_dict"`, or the bare dict; `_orig_mod.` / `module.` prefixes are stripped."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a conversion error
        raise ConversionError(f"{role} checkpoint {path}: cannot load ({e})") from e
    for key in ("model", "module", "state_dict"):
        if isinstance(ckpt, Mapping) and key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, Mapping) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ConversionError(f"{role} checkpoint {path}: not a state dict of tensors")
    sd = OrderedDict(ckpt)
    for prefix in ("_orig_mod.", "module."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = OrderedDict((k[len(prefix):], v) for k, v in sd.items())
    return sd


def _need(sd: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise ConversionError(f"{what}: missing `{key}`")
    return sd[key]


def _levels(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if not idx or idx != set(range(len(idx))):
        raise ConversionError(f"`{prefix}*` indices {sorted(idx)} are not 0..n-1")
    return len(idx)


# ----------------------------------------------------------------------------- VQ

def infer_vq_config(sd: Mapping[str, torch.Tensor], norm_groups: int = 32) -> dict:
    emb = _need(sd, "quantize.embedding.weight", "VQ")
    conv_in = _need(sd, "encoder.conv_in.weight", "VQ")
    ch, in_ch = conv_in.shape[0], conv_in.shape[1]
    n_enc = _levels(sd, "encoder.conv_blocks.")
    n_dec = _levels(sd, "decoder.conv_blocks.")
    enc_mult = [int(_need(sd, f"encoder.conv_blocks.{i}.res.0.conv1.weight", "VQ").shape[0]) // ch
                for i in range(n_enc)]
    # Decoder conv_blocks.j is level n − 1 − j (lowest resolution first).
    dec_mult = [int(_need(sd, f"decoder.conv_blocks.{n_dec - 1 - i}.res.0.conv2.weight", "VQ").shape[0]) // ch
                for i in range(n_dec)]
    return dict(
        codebook_size=int(emb.shape[0]), codebook_embed_dim=int(emb.shape[1]), codebook_l2_norm=True,
        encoder_ch_mult=enc_mult, decoder_ch_mult=dec_mult,
        z_channels=int(_need(sd, "encoder.conv_out.weight", "VQ").shape[0]), ch=int(ch),
        num_res_blocks=_levels(sd, "encoder.conv_blocks.0.res."), in_channels=int(in_ch),
        norm_groups=norm_groups)


def expected_vq_shapes(c: dict) -> Shapes:
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
        res(f"{name}.0", ch, ch)
        attn(f"{name}.1", ch)
        res(f"{name}.2", ch, ch)

    ch, nrb = c["ch"], c["num_res_blocks"]
    m = c["encoder_ch_mult"]
    conv("encoder.conv_in", ch, c["in_channels"], 3)
    block_in = ch
    for i, mult in enumerate(m):
        for b in range(nrb):
            res(f"encoder.conv_blocks.{i}.res.{b}", block_in, ch * mult)
            block_in = ch * mult
            if i == len(m) - 1:
                attn(f"encoder.conv_blocks.{i}.attn.{b}", block_in)
        if i != len(m) - 1:
            conv(f"encoder.conv_blocks.{i}.downsample.conv", block_in, block_in, 3)
    mid("encoder.mid", block_in)
    norm("encoder.norm_out", block_in)
    conv("encoder.conv_out", c["z_channels"], block_in, 3)

    m = c["decoder_ch_mult"]
    block_in = ch * m[-1]
    conv("decoder.conv_in", block_in, c["z_channels"], 3)
    mid("decoder.mid", block_in)
    for j, mult in enumerate(reversed(m)):
        for b in range(nrb + 1):
            res(f"decoder.conv_blocks.{j}.res.{b}", block_in, ch * mult)
            block_in = ch * mult
            if j == 0:
                attn(f"decoder.conv_blocks.{j}.attn.{b}", block_in)
        if j != len(m) - 1:
            conv(f"decoder.conv_blocks.{j}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", c["in_channels"], block_in, 3)
    out["quantize.embedding.weight"] = (c["codebook_size"], c["codebook_embed_dim"])
    conv("quant_conv", c["codebook_embed_dim"], c["z_channels"], 1)
    conv("post_quant_conv", c["z_channels"], c["codebook_embed_dim"], 1)
    return out


# ----------------------------------------------------------------------------- GPT

def ffn_hidden(dim: int, multiple_of: int = 256) -> int:
    h = int(2 * (4 * dim) / 3)
    return h if h % multiple_of == 0 else h + multiple_of - h % multiple_of


def infer_gpt_config(sd: Mapping[str, torch.Tensor], block_size: int, head_dim: int = 64) -> dict:
    tok = _need(sd, "tok_embeddings.weight", "GPT")
    vocab, dim = int(tok.shape[0]), int(tok.shape[1])
    cls = _need(sd, "cls_embedding.embedding_table.weight", "GPT")
    if dim % head_dim:
        raise ConversionError(f"GPT width {dim} is not a multiple of the head dim {head_dim}")
    return dict(dim=dim, n_layer=_levels(sd, "layers."), n_head=dim // head_dim, vocab_size=vocab,
                block_size=block_size, num_classes=int(cls.shape[0]) - 1, cls_token_num=1,
                multiple_of=256, norm_eps=1e-5, rope_base=10000.0)


def expected_gpt_shapes(c: dict) -> Shapes:
    d, f = c["dim"], ffn_hidden(c["dim"], c["multiple_of"])
    out: Shapes = OrderedDict()
    out["cls_embedding.embedding_table.weight"] = (c["num_classes"] + 1, d)
    out["tok_embeddings.weight"] = (c["vocab_size"], d)
    for i in range(c["n_layer"]):
        p = f"layers.{i}."
        out[p + "attention.wqkv.weight"] = (3 * d, d)
        out[p + "attention.wo.weight"] = (d, d)
        out[p + "feed_forward.w1.weight"] = (f, d)
        out[p + "feed_forward.w3.weight"] = (f, d)
        out[p + "feed_forward.w2.weight"] = (d, f)
        out[p + "attention_norm.weight"] = (d,)
        out[p + "ffn_norm.weight"] = (d,)
    out["norm.weight"] = (d,)
    out["output.weight"] = (c["vocab_size"], d)
    return out


def validate(sd: Mapping[str, torch.Tensor], expected: Shapes, dropped: Sequence[str], what: str) -> None:
    have = set(sd) - set(dropped)
    missing = [k for k in expected if k not in have]
    unknown = sorted(have - set(expected))
    bad = [f"{k}: {tuple(sd[k].shape)} != {v}" for k, v in expected.items()
           if k in sd and tuple(sd[k].shape) != v]
    if missing or unknown or bad:
        raise ConversionError(f"{what}: missing {missing[:8]}, unknown {unknown[:8]}, "
                              f"mis-shaped {bad[:8]}")


def convert(vq_sd: Mapping[str, torch.Tensor], gpt_sd: Mapping[str, torch.Tensor], *,
            image_size: int = 256, head_dim: int = 64, dtype: torch.dtype = torch.float32,
            source: str = "", norm_groups: int = 32):
    """state_dicts → (tensors in the arvis layout, safetensors metadata). Raises ConversionError."""
    vq_cfg = infer_vq_config(vq_sd, norm_groups)
    validate(vq_sd, expected_vq_shapes(vq_cfg), VQ_BUFFERS, "VQ")
    down = 2 ** (len(vq_cfg["encoder_ch_mult"]) - 1)
    if image_size % down:
        raise ConversionError(f"--image-size {image_size} is not a multiple of the VQ's {down}")
    grid = image_size // down
    gpt_cfg = infer_gpt_config(gpt_sd, grid * grid, head_dim)
    validate(gpt_sd, expected_gpt_shapes(gpt_cfg), (), "GPT")
    if gpt_cfg["vocab_size"] != vq_cfg["codebook_size"]:
        raise ConversionError(f"GPT vocabulary {gpt_cfg['vocab_size']} != VQ codebook "
                              f"{vq_cfg['codebook_size']}")
    tensors = {f"gpt.{k}": v.to(dtype).contiguous() for k, v in gpt_sd.items()}
    tensors.update({f"vq.{k}": v.to(dtype).contiguous() for k, v in vq_sd.items() if k not in VQ_BUFFERS})
    meta = {
        "arvis.family": "llamagen",
        "arvis.config": json.dumps({"gpt": gpt_cfg, "vq": vq_cfg}, sort_keys=True),
        "arvis.source": source,
        "arvis.sampling": json.dumps(SAMPLING, sort_keys=True),
    }
    return tensors, meta


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vq", required=True, help="VQ checkpoint (vq_ds16_c2i.pt)")
    ap.add_argument("--gpt", required=True, help="GPT checkpoint (c2i_{B,L,XL,XXL}_256.pt)")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--norm-groups", type=int, default=32,
                    help="GroupNorm groups of the VQ (32 in every release; not in the weights)")
    args = ap.parse_args(argv)
    try:
        vq_sd = load_checkpoint(args.vq, "VQ")
        gpt_sd = load_checkpoint(args.gpt, "GPT")
        src = (f"xtask/py/convert_llamagen.py from {os.path.basename(args.vq)} + "
               f"{os.path.basename(args.gpt)} (torch {torch.__version__}, dtype {args.dtype})")
        tensors, meta = convert(vq_sd, gpt_sd, image_size=args.image_size, head_dim=args.head_dim,
                                dtype=DTYPES[args.dtype], source=src, norm_groups=args.norm_groups)
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
