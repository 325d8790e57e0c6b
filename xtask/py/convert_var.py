#!/usr/bin/env python3
"""Converts official VAR checkpoints (FoundationVision/VAR) into one arvis `.safetensors` file.

    python xtask/py/convert_var.py --vae vae_ch160v4096z32.pth --var var_d16.pth \
        --out var_d16.safetensors [--dtype f32|f16|bf16]
    python xtask/py/convert_var.py --vae vae_ch160v4096z32.pth --out vqvae.safetensors   # VAE only

Layout (the contract in the arvis VAR plan):
- VAR transformer keys exactly as the official `VAR.state_dict()` (unprefixed);
- VQ-VAE keys exactly as the official `VQVAE.state_dict()`, prefixed `vae.`;
- dropped, because the loader recomputes them: `lvl_1L`, `attn_bias_for_masking`,
  `blocks.*.attn.zero_k_bias`, `vae.quantize.ema_vocab_hit_SV`. The dropped VAR buffers are
  recomputed here the way `VAR.__init__` builds them and compared (a mismatch is a warning).
- metadata: `arvis.family` ("var", or "vqvae" without `--var`), `arvis.source` (free text),
  `arvis.config` (JSON {"var": {...}, "vae": {...}}), all inferred from key names and shapes.

Validation is strict: the expected key set and every shape are enumerated from the inferred
config the way the official constructors build them; any unknown, missing or mis-shaped key is
an error. Needs only torch + safetensors (not the official repository).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

DEFAULT_PATCH_NUMS: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}

# Buffers that the loader recomputes: never written.
VAR_BUFFERS = ("lvl_1L", "attn_bias_for_masking")
VAR_BUFFER_RE = re.compile(r"^blocks\.\d+\.attn\.zero_k_bias$")
VAE_BUFFERS = ("quantize.ema_vocab_hit_SV",)

Shapes = "OrderedDict[str, Tuple[int, ...]]"


class ConversionError(ValueError):
    """The checkpoint does not match the layout the official code would build."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def _strip_common_prefix(sd: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    out = OrderedDict(sd)
    for prefix in ("_orig_mod.", "module."):
        if out and all(k.startswith(prefix) for k in out):
            out = OrderedDict((k[len(prefix):], v) for k, v in out.items())
    return out


def load_checkpoint(path: str, role: str) -> "OrderedDict[str, torch.Tensor]":
    """Loads a `.pth`: a bare state_dict (the official releases) or a training checkpoint.

    role is "var" or "vae"; training checkpoints (`{"trainer": {"var_wo_ddp": ..., "vae_local":
    ...}}`, see trainer.py `state_dict`) are unwrapped to the matching module.
    """
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and "trainer" in obj and isinstance(obj["trainer"], Mapping):
        obj = obj["trainer"]
    sub = {"var": "var_wo_ddp", "vae": "vae_local"}[role]
    if isinstance(obj, Mapping) and sub in obj and isinstance(obj[sub], Mapping):
        obj = obj[sub]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path}: expected a state_dict of tensors for the {role}")
    return _strip_common_prefix(obj)


# --------------------------------------------------------------------------------------------
# Expected layouts, enumerated like the official constructors
# --------------------------------------------------------------------------------------------

def _conv(out: "Shapes", name: str, cout: int, cin: int, ks: int) -> None:
    out[f"{name}.weight"] = (cout, cin, ks, ks)
    out[f"{name}.bias"] = (cout,)


def _norm(out: "Shapes", name: str, c: int) -> None:
    out[f"{name}.weight"] = (c,)
    out[f"{name}.bias"] = (c,)


def _resnet(out: "Shapes", name: str, cin: int, cout: int) -> None:
    _norm(out, f"{name}.norm1", cin)
    _conv(out, f"{name}.conv1", cout, cin, 3)
    _norm(out, f"{name}.norm2", cout)
    _conv(out, f"{name}.conv2", cout, cout, 3)
    if cin != cout:
        _conv(out, f"{name}.nin_shortcut", cout, cin, 1)


def _attn(out: "Shapes", name: str, c: int) -> None:
    _norm(out, f"{name}.norm", c)
    _conv(out, f"{name}.qkv", 3 * c, c, 1)
    _conv(out, f"{name}.proj_out", c, c, 1)


def expected_vae_shapes(cfg: Mapping) -> "Shapes":
    """Every VQVAE state_dict key (buffers included) and shape, as models/vqvae.py builds them."""
    out: "Shapes" = OrderedDict()
    ch, mult, nrb = cfg["ch"], list(cfg["ch_mult"]), cfg["num_res_blocks"]
    z, cin_img, n_lv = cfg["z_channels"], cfg["in_channels"], len(cfg["ch_mult"])
    # Encoder
    _conv(out, "encoder.conv_in", ch, cin_img, 3)
    in_mult = [1] + mult
    block_in = ch
    for i in range(n_lv):
        block_in, block_out = ch * in_mult[i], ch * mult[i]
        for j in range(nrb):
            _resnet(out, f"encoder.down.{i}.block.{j}", block_in, block_out)
            block_in = block_out
            if i == n_lv - 1 and cfg["using_sa"]:
                _attn(out, f"encoder.down.{i}.attn.{j}", block_in)
        if i != n_lv - 1:
            _conv(out, f"encoder.down.{i}.downsample.conv", block_in, block_in, 3)
    _resnet(out, "encoder.mid.block_1", block_in, block_in)
    if cfg["using_mid_sa"]:
        _attn(out, "encoder.mid.attn_1", block_in)
    _resnet(out, "encoder.mid.block_2", block_in, block_in)
    _norm(out, "encoder.norm_out", block_in)
    _conv(out, "encoder.conv_out", z, block_in, 3)
    # Decoder (up.{i}: i = 0 is the highest resolution; built with insert(0))
    block_in = ch * mult[-1]
    _conv(out, "decoder.conv_in", block_in, z, 3)
    _resnet(out, "decoder.mid.block_1", block_in, block_in)
    if cfg["using_mid_sa"]:
        _attn(out, "decoder.mid.attn_1", block_in)
    _resnet(out, "decoder.mid.block_2", block_in, block_in)
    up: Dict[int, "Shapes"] = {}
    for i in reversed(range(n_lv)):
        lv: "Shapes" = OrderedDict()
        block_out = ch * mult[i]
        for j in range(nrb + 1):
            _resnet(lv, f"decoder.up.{i}.block.{j}", block_in, block_out)
            block_in = block_out
            if i == n_lv - 1 and cfg["using_sa"]:
                _attn(lv, f"decoder.up.{i}.attn.{j}", block_in)
        if i != 0:
            _conv(lv, f"decoder.up.{i}.upsample.conv", block_in, block_in, 3)
        up[i] = lv
    for i in range(n_lv):
        out.update(up[i])
    _norm(out, "decoder.norm_out", block_in)
    _conv(out, "decoder.conv_out", cin_img, block_in, 3)
    # Quantizer
    v = cfg["vocab_size"]
    out["quantize.ema_vocab_hit_SV"] = (len(cfg["patch_nums"]), v)
    out["quantize.embedding.weight"] = (v, z)
    share = cfg["share_quant_resi"]
    if abs(cfg["quant_resi"]) > 1e-6:
        if share == 0:
            for k in range(len(cfg["patch_nums"])):
                _conv(out, f"quantize.quant_resi.{k}", z, z, 3)
        elif share == 1:
            _conv(out, "quantize.quant_resi.qresi", z, z, 3)
        else:
            for k in range(share):
                _conv(out, f"quantize.quant_resi.qresi_ls.{k}", z, z, 3)
    ks = cfg["quant_conv_ks"]
    _conv(out, "quant_conv", z, z, ks)
    _conv(out, "post_quant_conv", z, z, ks)
    return out


def expected_var_shapes(cfg: Mapping, vae_cfg: Mapping) -> "Shapes":
    """Every VAR state_dict key (buffers included) and shape, as models/var.py builds them."""
    out: "Shapes" = OrderedDict()
    c, h, depth = cfg["embed_dim"], cfg["num_heads"], cfg["depth"]
    pns = cfg["patch_nums"]
    big_l, first_l = sum(p * p for p in pns), pns[0] ** 2
    hidden = round(c * cfg["mlp_ratio"])
    out["pos_start"] = (1, first_l, c)
    out["pos_1LC"] = (1, big_l, c)
    out["lvl_1L"] = (1, big_l)
    out["attn_bias_for_masking"] = (1, 1, big_l, big_l)
    out["word_embed.weight"] = (c, vae_cfg["z_channels"])
    out["word_embed.bias"] = (c,)
    out["class_emb.weight"] = (cfg["num_classes"] + 1, c)
    out["lvl_embed.weight"] = (len(pns), c)
    if cfg["shared_aln"]:
        out["shared_ada_lin.1.weight"] = (6 * c, c)
        out["shared_ada_lin.1.bias"] = (6 * c,)
    for i in range(depth):
        p = f"blocks.{i}"
        if cfg["attn_l2_norm"]:
            out[f"{p}.attn.scale_mul_1H11"] = (1, h, 1, 1)
        out[f"{p}.attn.q_bias"] = (c,)
        out[f"{p}.attn.v_bias"] = (c,)
        out[f"{p}.attn.zero_k_bias"] = (c,)
        out[f"{p}.attn.mat_qkv.weight"] = (3 * c, c)
        out[f"{p}.attn.proj.weight"] = (c, c)
        out[f"{p}.attn.proj.bias"] = (c,)
        out[f"{p}.ffn.fc1.weight"] = (hidden, c)
        out[f"{p}.ffn.fc1.bias"] = (hidden,)
        out[f"{p}.ffn.fc2.weight"] = (c, hidden)
        out[f"{p}.ffn.fc2.bias"] = (c,)
        if cfg["shared_aln"]:
            out[f"{p}.ada_gss"] = (1, 1, 6, c)
        else:
            out[f"{p}.ada_lin.1.weight"] = (6 * c, c)
            out[f"{p}.ada_lin.1.bias"] = (6 * c,)
    out["head_nm.ada_lin.1.weight"] = (2 * c, c)
    out["head_nm.ada_lin.1.bias"] = (2 * c,)
    out["head.weight"] = (vae_cfg["vocab_size"], c)
    out["head.bias"] = (vae_cfg["vocab_size"],)
    return out


# --------------------------------------------------------------------------------------------
# Config inference
# --------------------------------------------------------------------------------------------

def _need(sd: Mapping[str, torch.Tensor], key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise ConversionError(f"{what}: missing key {key!r}; cannot infer the config")
    return sd[key]


def _indices(sd: Iterable[str], pattern: str) -> List[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd for m in [rx.match(k)] if m})


def infer_vae_config(sd: Mapping[str, torch.Tensor], patch_nums: Sequence[int],
                     quant_resi: float = 0.5) -> dict:
    """The "vae" config from key names and shapes (quant_resi's ratio is not stored: argument)."""
    w_in = _need(sd, "encoder.conv_in.weight", "vae")
    ch, in_ch = int(w_in.shape[0]), int(w_in.shape[1])
    levels = _indices(sd, r"^encoder\.down\.(\d+)\.")
    if levels != list(range(len(levels))) or not levels:
        raise ConversionError(f"vae: encoder.down levels are not 0..n-1: {levels}")
    mult = []
    for i in levels:
        co = int(_need(sd, f"encoder.down.{i}.block.0.conv1.weight", "vae").shape[0])
        if co % ch:
            raise ConversionError(f"vae: level {i} has {co} channels, not a multiple of ch={ch}")
        mult.append(co // ch)
    nrb = len(_indices(sd, r"^encoder\.down\.0\.block\.(\d+)\."))
    emb = _need(sd, "quantize.embedding.weight", "vae")
    vocab, z = int(emb.shape[0]), int(emb.shape[1])
    if any(k.startswith("quantize.quant_resi.qresi_ls.") for k in sd):
        share = len(_indices(sd, r"^quantize\.quant_resi\.qresi_ls\.(\d+)\."))
        if share < 2:
            raise ConversionError("vae: a partially shared Phi list needs >= 2 entries")
    elif "quantize.quant_resi.qresi.weight" in sd:
        share = 1
    elif any(re.match(r"^quantize\.quant_resi\.\d+\.", k) for k in sd):
        share = 0
        n = len(_indices(sd, r"^quantize\.quant_resi\.(\d+)\."))
        if n != len(patch_nums):
            raise ConversionError(f"vae: {n} non-shared Phi convs for {len(patch_nums)} scales")
    else:
        share, quant_resi = 4, 0.0  # all Phi are nn.Identity: no parameters at all
    return {
        "vocab_size": vocab,
        "z_channels": z,
        "ch": ch,
        "ch_mult": mult,
        "num_res_blocks": nrb,
        "using_sa": any(k.startswith(f"encoder.down.{levels[-1]}.attn.") for k in sd),
        "using_mid_sa": "encoder.mid.attn_1.qkv.weight" in sd,
        "quant_conv_ks": int(_need(sd, "quant_conv.weight", "vae").shape[-1]),
        "quant_resi": float(quant_resi),
        "share_quant_resi": share,
        "test_mode": True,
        "patch_nums": [int(p) for p in patch_nums],
        "in_channels": in_ch,
    }


def patch_nums_from_lvl(lvl_1L: torch.Tensor) -> List[int]:
    """patch_nums from the `lvl_1L` buffer: level i holds pn_i² tokens."""
    counts = torch.bincount(lvl_1L.reshape(-1).long()).tolist()
    pns = []
    for c in counts:
        pn = math.isqrt(int(c))
        if pn * pn != c:
            raise ConversionError(f"lvl_1L: a level holds {c} tokens, not a square")
        pns.append(pn)
    return pns


def infer_patch_nums(var_sd: Optional[Mapping[str, torch.Tensor]],
                     given: Optional[Sequence[int]]) -> List[int]:
    """--patch-nums, else from `lvl_1L`, else the default 10 scales (checked against pos_1LC)."""
    if given is not None:
        pns = [int(p) for p in given]
    elif var_sd is not None and "lvl_1L" in var_sd:
        pns = patch_nums_from_lvl(var_sd["lvl_1L"])
    else:
        pns = list(DEFAULT_PATCH_NUMS)
    if var_sd is not None:
        big_l = int(_need(var_sd, "pos_1LC", "var").shape[1])
        n_lv = int(_need(var_sd, "lvl_embed.weight", "var").shape[0])
        if big_l != sum(p * p for p in pns) or n_lv != len(pns):
            raise ConversionError(
                f"patch_nums {pns} (L={sum(p * p for p in pns)}, {len(pns)} levels) disagree "
                f"with pos_1LC (L={big_l}) / lvl_embed ({n_lv} levels); pass --patch-nums")
    return pns


def infer_var_config(sd: Mapping[str, torch.Tensor], patch_nums: Sequence[int],
                     norm_eps: float = 1e-6) -> dict:
    """The "var" config from key names and shapes (norm_eps is not stored: argument)."""
    c = int(_need(sd, "class_emb.weight", "var").shape[1])
    blocks = _indices(sd, r"^blocks\.(\d+)\.")
    if not blocks or blocks != list(range(len(blocks))):
        raise ConversionError(f"var: blocks are not 0..n-1: {blocks}")
    depth = len(blocks)
    attn_l2 = "blocks.0.attn.scale_mul_1H11" in sd
    if attn_l2:
        heads = int(sd["blocks.0.attn.scale_mul_1H11"].shape[1])
    else:
        heads = depth  # not stored without l2-norm; the official build_vae_var uses heads = depth
        warnings.warn("var: no scale_mul_1H11 (attn_l2_norm off); assuming num_heads = depth")
    if c % heads:
        raise ConversionError(f"var: embed_dim {c} not divisible by num_heads {heads}")
    hidden = int(_need(sd, "blocks.0.ffn.fc1.weight", "var").shape[0])
    if c != 64 * depth or heads != depth:
        warnings.warn(f"var: embed_dim={c}, heads={heads}, depth={depth} differ from the official "
                      "build_vae_var (64·depth, depth)")
    return {
        "depth": depth,
        "embed_dim": c,
        "num_heads": heads,
        "mlp_ratio": hidden / c,
        "num_classes": int(sd["class_emb.weight"].shape[0]) - 1,
        "norm_eps": float(norm_eps),
        "shared_aln": "shared_ada_lin.1.weight" in sd,
        "attn_l2_norm": attn_l2,
        "patch_nums": [int(p) for p in patch_nums],
    }


# --------------------------------------------------------------------------------------------
# Validation, buffers, conversion
# --------------------------------------------------------------------------------------------

def validate(sd: Mapping[str, torch.Tensor], expected: "Shapes", buffers: Iterable[str],
             what: str) -> None:
    """Strict: unknown, missing or mis-shaped keys raise. Buffers may be absent (recomputed)."""
    buffers = set(buffers)
    unknown = sorted(set(sd) - set(expected))
    missing = sorted(set(expected) - set(sd) - buffers)
    bad = sorted(f"{k}: {tuple(sd[k].shape)} != expected {expected[k]}"
                 for k in set(sd) & set(expected) if tuple(sd[k].shape) != tuple(expected[k]))
    msgs = []
    for label, items in (("unknown", unknown), ("missing", missing), ("mis-shaped", bad)):
        if items:
            shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
            msgs.append(f"{label} keys: {shown}")
    if msgs:
        raise ConversionError(f"{what}: " + "; ".join(msgs))
    for k, v in sd.items():
        if k not in buffers and not v.is_floating_point():
            raise ConversionError(f"{what}: parameter {k} has non-float dtype {v.dtype}")


def recompute_var_buffers(patch_nums: Sequence[int]) -> Dict[str, torch.Tensor]:
    """`lvl_1L` and `attn_bias_for_masking` built as in VAR.__init__ (models/var.py §5)."""
    big_l = sum(p * p for p in patch_nums)
    d = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(patch_nums)]).view(1, big_l, 1)
    dT = d.transpose(1, 2)
    lvl_1L = dT[:, 0].contiguous()
    bias = torch.where(d >= dT, 0.0, -torch.inf).reshape(1, 1, big_l, big_l)
    return {"lvl_1L": lvl_1L, "attn_bias_for_masking": bias}


def check_dropped_var_buffers(sd: Mapping[str, torch.Tensor], patch_nums: Sequence[int]) -> List[str]:
    """Compares the stored buffers with the recomputed ones; returns (and warns) mismatches."""
    want = recompute_var_buffers(patch_nums)
    problems = []
    for k, w in want.items():
        if k in sd:
            got = sd[k]
            if tuple(got.shape) != tuple(w.shape) or not torch.equal(got.to(w.dtype), w):
                problems.append(f"{k} differs from the recomputed buffer")
    for k, v in sd.items():
        if VAR_BUFFER_RE.match(k) and bool(v.ne(0).any()):
            problems.append(f"{k} is not all zeros")
    for p in problems:
        warnings.warn(f"var: {p}; the loader recomputes it, so the converted file will differ")
    return problems


def _is_var_buffer(k: str) -> bool:
    return k in VAR_BUFFERS or bool(VAR_BUFFER_RE.match(k))


def convert(vae_sd: Mapping[str, torch.Tensor],
            var_sd: Optional[Mapping[str, torch.Tensor]] = None,
            *, patch_nums: Optional[Sequence[int]] = None, norm_eps: float = 1e-6,
            quant_resi: float = 0.5, dtype: torch.dtype = torch.float32,
            source: str = "", norm_groups: int = 32,
            ) -> Tuple["OrderedDict[str, torch.Tensor]", Dict[str, str]]:
    """state_dicts → (tensors in the arvis layout, safetensors metadata). Raises ConversionError."""
    pns = infer_patch_nums(var_sd, patch_nums)
    vae_cfg = infer_vae_config(vae_sd, pns, quant_resi)
    if norm_groups != 32:  # GroupNorm's group count is not stored in the weights
        vae_cfg["norm_groups"] = int(norm_groups)
    validate(vae_sd, expected_vae_shapes(vae_cfg), VAE_BUFFERS, "vae")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    config: Dict[str, dict] = {}
    if var_sd is not None:
        var_cfg = infer_var_config(var_sd, pns, norm_eps)
        exp = expected_var_shapes(var_cfg, vae_cfg)
        validate(var_sd, exp, [k for k in exp if _is_var_buffer(k)], "var")
        check_dropped_var_buffers(var_sd, pns)
        for k, v in var_sd.items():
            if not _is_var_buffer(k):
                out[k] = v.detach().to(dtype).contiguous()
        config["var"] = var_cfg
    for k, v in vae_sd.items():
        if k not in VAE_BUFFERS:
            out[f"vae.{k}"] = v.detach().to(dtype).contiguous()
    config["vae"] = vae_cfg
    meta = {
        "arvis.family": "var" if var_sd is not None else "vqvae",
        "arvis.source": source or f"xtask/py/convert_var.py (torch {torch.__version__})",
        "arvis.config": json.dumps(config),
    }
    return out, meta


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def save(path: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """Writes a safetensors file byte-reproducibly (sorted header and metadata, data by name).

    `safetensors.torch.save_file` orders the metadata through a hash map, so two runs of the
    same script would differ in the header; this writer keeps fixtures stable in git.
    """
    assert sys.byteorder == "little", "safetensors data is little-endian"
    header: Dict[str, object] = {"__metadata__": {k: meta[k] for k in sorted(meta)}} if meta else {}
    order, offset = sorted(tensors), 0
    for name in order:
        t = tensors[name]
        if t.dtype not in _ST_DTYPES:
            raise ConversionError(f"{name}: cannot store dtype {t.dtype}")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for name in order:
            t = tensors[name].detach().cpu().contiguous().reshape(-1)
            if t.numel():
                f.write(t.view(torch.uint8).numpy().tobytes())


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vae", required=True, help="VQ-VAE checkpoint (e.g. vae_ch160v4096z32.pth)")
    ap.add_argument("--var", help="VAR checkpoint (e.g. var_d16.pth); omit for a VAE-only file")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    ap.add_argument("--depth", type=int,
                    help="expected depth (checked; it is always inferred from the blocks.* keys)")
    ap.add_argument("--patch-nums", type=lambda s: [int(x) for x in s.split(",")],
                    help="comma-separated; default from lvl_1L or the 10 official scales")
    ap.add_argument("--norm-eps", type=float, default=1e-6)
    ap.add_argument("--quant-resi", type=float, default=0.5)
    ap.add_argument("--norm-groups", type=int, default=32,
                    help="GroupNorm groups of the VAE (32 in every released checkpoint; not stored "
                         "in the weights)")
    args = ap.parse_args(argv)
    try:
        vae_sd = load_checkpoint(args.vae, "vae")
        var_sd = load_checkpoint(args.var, "var") if args.var else None
        src = (f"xtask/py/convert_var.py from {os.path.basename(args.vae)}"
               + (f" + {os.path.basename(args.var)}" if args.var else "")
               + f" (torch {torch.__version__}, dtype {args.dtype})")
        tensors, meta = convert(vae_sd, var_sd, patch_nums=args.patch_nums,
                                norm_eps=args.norm_eps, quant_resi=args.quant_resi,
                                dtype=DTYPES[args.dtype], source=src,
                                norm_groups=args.norm_groups)
        cfg = json.loads(meta["arvis.config"])
        if args.depth is not None and cfg.get("var", {}).get("depth") != args.depth:
            raise ConversionError(f"--depth {args.depth} but the checkpoint has "
                                  f"{cfg.get('var', {}).get('depth')} blocks")
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
