#!/usr/bin/env python3
"""Writes the VAR-slice golden fixtures from the official FoundationVision/VAR code (random weights).

    /work/venv/bin/python xtask/py/golden_var.py --var-repo /path/to/VAR [--out-dir REPO_ROOT]

Outputs (paths relative to --out-dir, default the repository root):
- crates/arvis-tokenizer/tests/golden/vqvae_tiny.safetensors: tiny official VQVAE (`vae.*`) and
  the tokenizer round trip (`golden.img`, `golden.f`, `golden.idx.{si}`, `golden.fhat`,
  `golden.fhat_from_idx`, `golden.rec`);
- crates/arvis-models/tests/golden/var_tiny_shared{0,1}.safetensors: tiny official VAR (+ the
  same `vae.*`) and one recorded `autoregressive_infer_cfg` run (per-scale CFG-mixed and raw
  logits, sampled indices, f_hat, image) plus the teacher-forced logits of `VAR.forward`.

Official code is imported from --var-repo, never copied. Everything runs in fp32 on CPU with
flash-attn / xformers / fused kernels absent. Model weights are re-randomised with seeded values
(see var_official.py) and, with --weights-dtype f16 (default), rounded to f16 *before* any golden
is computed, so storing them as F16 is exact; every `golden.*` tensor is F32 (integers as F32).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_var  # noqa: E402
import var_official as vo  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOK_PATH = "crates/arvis-tokenizer/tests/golden/vqvae_tiny.safetensors"
VAR_PATH = "crates/arvis-models/tests/golden/var_tiny_shared{}.safetensors"
LABELS = [3, 7]
SAMPLING = dict(cfg=3.0, top_k=20, top_p=0.9, more_smooth=False)


def smooth_image(b: int, g: torch.Generator) -> torch.Tensor:
    """[b,3,256,256] in (-1,1): bicubic-upsampled 8×8 noise plus a random plane wave, tanh'ed."""
    low = torch.randn(b, 3, 8, 8, generator=g)
    img = F.interpolate(low, size=(256, 256), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    for i in range(b):
        k = torch.randint(1, 5, (2,), generator=g).float()
        ph = float(torch.rand(1, generator=g)) * 2 * math.pi
        img[i] += 0.5 * torch.sin(2 * math.pi * (k[0] * xx + k[1] * yy) + ph)
    return torch.tanh(img)


def argmin_gaps(vae, f: torch.Tensor, fhats: List[torch.Tensor], idx: List[torch.Tensor]) -> float:
    """Smallest (2nd-nearest − nearest) squared distance over all quantiser look-ups."""
    emb = vae.quantize.embedding.weight
    pns = vae.quantize.v_patch_nums
    worst = float("inf")
    for si, pn in enumerate(pns):
        rest = f - (fhats[si - 1] if si else 0)
        z = F.interpolate(rest, size=(pn, pn), mode="area") if si != len(pns) - 1 else rest
        z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
        d = torch.cdist(z, emb.double()).square()
        top2 = d.topk(2, dim=1, largest=False)
        assert torch.equal(top2.indices[:, 0], idx[si].reshape(-1)), f"argmin disagrees at {si}"
        worst = min(worst, float((top2.values[:, 1] - top2.values[:, 0]).min()))
    return worst


def f32(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.float32).contiguous()


def tokenizer_golden(vae, g: torch.Generator) -> Dict[str, torch.Tensor]:
    img = smooth_image(2, g)
    out = {"golden.img": f32(img)}
    with torch.no_grad():
        f = vae.quant_conv(vae.encoder(img))
        idx = vae.img_to_idxBl(img)  # official: List[LongTensor [B, pn*pn]]
        fhats = vae.quantize.f_to_idxBl_or_fhat(f, to_fhat=True)
        fhat = fhats[-1]
        b, c = f.shape[:2]
        ms_h = [vae.quantize.embedding(i).transpose(1, 2).reshape(b, c, pn, pn)
                for i, pn in zip(idx, vae.quantize.v_patch_nums)]
        fhat_idx = vae.quantize.embed_to_fhat(ms_h, all_to_max_scale=True, last_one=True)
        rec = vae.fhat_to_img(fhat.clone())
    gap = argmin_gaps(vae, f, fhats, idx)
    print(f"[tokenizer] f std {f.std():.3f}; codes used per scale "
          f"{[int(i.unique().numel()) for i in idx]}; min argmin gap {gap:.3e}; "
          f"|fhat - fhat_from_idx| max {float((fhat - fhat_idx).abs().max()):.2e}; "
          f"rec std {rec.std():.3f}, clamped {float((rec.abs() >= 1).float().mean()):.4f}")
    out["golden.f"] = f32(f)
    for si, i in enumerate(idx):
        out[f"golden.idx.{si}"] = f32(i)
    out["golden.fhat"] = f32(fhat)
    out["golden.fhat_from_idx"] = f32(fhat_idx)
    out["golden.rec"] = f32(rec)
    return out


def var_golden(models, var, vae, g_seed: int) -> Dict[str, torch.Tensor]:
    """Runs the official AR loop with recording hooks, then the teacher-forced forward."""
    import models.var as var_mod

    rec: Dict[str, list] = {"mixed": [], "idx": [], "kept": [], "raw": [], "fhat": []}
    orig_sample = var_mod.sample_with_top_k_top_p_

    def sample_hook(logits_BlV, **kw):
        rec["mixed"].append(logits_BlV.clone())  # CFG-mixed [B, pn², V]; filtered in place below
        idx = orig_sample(logits_BlV, **kw)
        rec["kept"].append(torch.isfinite(logits_BlV).sum(-1))
        rec["idx"].append(idx[:, :, 0].clone())
        return idx

    orig_fhat_to_img = vae.fhat_to_img

    def fhat_hook(f_hat):
        rec["fhat"].append(f_hat.clone())
        return orig_fhat_to_img(f_hat)

    labels = torch.tensor(LABELS, dtype=torch.long)
    handle = var.head.register_forward_hook(lambda m, i, o: rec["raw"].append(o.clone()))
    var_mod.sample_with_top_k_top_p_ = sample_hook
    vae.fhat_to_img = fhat_hook
    try:
        img = var.autoregressive_infer_cfg(B=len(LABELS), label_B=labels, g_seed=g_seed,
                                           **SAMPLING)
    finally:
        var_mod.sample_with_top_k_top_p_ = orig_sample
        del vae.fhat_to_img
        handle.remove()
    pns = var.patch_nums
    assert len(rec["mixed"]) == len(pns) == len(rec["raw"]) and len(rec["fhat"]) == 1

    var.cond_drop_rate = 0.0
    with torch.no_grad():
        x = vae.quantize.idxBl_to_var_input(rec["idx"])  # official teacher-forcing input
        teacher = var(labels, x)
    b = len(LABELS)
    raw_cond = torch.cat([r[:b] for r in rec["raw"]], dim=1)
    diff = float((teacher - raw_cond).abs().max())
    print(f"[var shared_aln={var.blocks[0].shared_aln}] teacher vs AR-loop cond logits: max |Δ| "
          f"{diff:.3e} (max |logit| {float(raw_cond.abs().max()):.2f}); raw logit std "
          f"{float(torch.cat([r.flatten() for r in rec['raw']]).std()):.2f}; kept tokens/row "
          f"min {min(int(k.min()) for k in rec['kept'])} max {max(int(k.max()) for k in rec['kept'])}; "
          f"image mean {float(img.mean()):.3f} std {float(img.std()):.3f}")
    assert diff < 1e-4, "teacher-forced logits disagree with the AR loop"

    out = {"golden.labels": f32(labels), "golden.cfg": torch.tensor([SAMPLING["cfg"]]),
           "golden.top_k": torch.tensor([float(SAMPLING["top_k"])]),
           "golden.top_p": torch.tensor([SAMPLING["top_p"]], dtype=torch.float32),
           "golden.g_seed": torch.tensor([float(g_seed)])}
    for si in range(len(pns)):
        out[f"golden.idx.{si}"] = f32(rec["idx"][si])
        out[f"golden.logits.{si}"] = f32(rec["mixed"][si])
        out[f"golden.logits_raw.{si}"] = f32(rec["raw"][si])
        out[f"golden.kept.{si}"] = f32(rec["kept"][si])
    out["golden.fhat"] = f32(rec["fhat"][0])
    out["golden.img"] = f32(img)
    out["golden.teacher_logits"] = f32(teacher)
    return out


def write(path: str, weights: Dict[str, torch.Tensor], golden: Dict[str, torch.Tensor],
          meta: Dict[str, str]) -> int:
    clash = set(weights) & set(golden)
    assert not clash, clash
    convert_var.save(path, {**weights, **golden}, meta)
    size = os.path.getsize(path)
    print(f"wrote {path}: {size / 1e6:.2f} MB ({len(weights)} weights, {len(golden)} golden)")
    return size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--var-repo", required=True, help="FoundationVision/VAR checkout (78b9539)")
    ap.add_argument("--out-dir", default=REPO_ROOT)
    ap.add_argument("--seed", type=int, default=2,
                    help="weight / image seed (6: the widest nearest-code margin of seeds 0..7)")
    ap.add_argument("--g-seed", type=int, default=1234, help="autoregressive_infer_cfg g_seed")
    ap.add_argument("--weights-dtype", choices=("f32", "f16"), default="f16",
                    help="stored dtype of model weights (f16: values pre-rounded, exact)")
    args = ap.parse_args()

    models = vo.import_official(args.var_repo)
    torch.manual_seed(args.seed)
    wdtype = convert_var.DTYPES[args.weights_dtype]
    rev = vo.repo_revision(args.var_repo)
    cmd = (f"xtask/py/golden_var.py --var-repo <VAR checkout> --seed {args.seed} "
           f"--g-seed {args.g_seed} --weights-dtype {args.weights_dtype}")
    source = f"{cmd}; FoundationVision/VAR @ {rev}; torch {torch.__version__}; fp32 CPU"

    g = torch.Generator().manual_seed(args.seed)
    vae = vo.quiet_ctor(vo.build_tiny_vae, models)
    vo.randomize_vae(vae, g)
    vo.round_params_(vae, wdtype)
    vae_sd = vae.state_dict()
    total = 0

    # a. tokenizer
    tok = tokenizer_golden(vae, torch.Generator().manual_seed(args.seed + 100))
    weights, meta = convert_var.convert(vae_sd, None, dtype=wdtype, source=source,
                                        norm_groups=vo.TINY_NORM_GROUPS)
    assert json.loads(meta["arvis.config"]) == {"vae": vo.vae_config_of(vae)}
    total += write(os.path.join(args.out_dir, TOK_PATH), weights, tok, meta)

    # b. VAR, shared_aln off / on
    for shared in (0, 1):
        var = vo.quiet_ctor(vo.build_tiny_var, models, vae, bool(shared))
        vo.randomize_var(var, torch.Generator().manual_seed(args.seed + 1 + shared))
        vo.round_params_(var, wdtype)
        golden = var_golden(models, var, vae, args.g_seed)
        weights, meta = convert_var.convert(vae_sd, var.state_dict(), dtype=wdtype, source=source,
                                            norm_groups=vo.TINY_NORM_GROUPS)
        cfg = json.loads(meta["arvis.config"])
        assert cfg["var"] == dict(vo.TINY_VAR, shared_aln=bool(shared), mlp_ratio=4.0,
                                  patch_nums=list(vo.PATCH_NUMS)), cfg["var"]
        meta["arvis.golden"] = json.dumps(dict(B=len(LABELS), labels=LABELS, g_seed=args.g_seed,
                                               **SAMPLING))
        total += write(os.path.join(args.out_dir, VAR_PATH.format(shared)), weights, golden, meta)
    print(f"total fixture size: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
