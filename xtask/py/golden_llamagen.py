#!/usr/bin/env python3
"""Writes the LlamaGen golden fixtures from the official FoundationVision/LlamaGen code (random weights).

    /work/venv/bin/python xtask/py/golden_llamagen.py --llamagen-repo /path/to/LlamaGen [--out REPO_ROOT]

Outputs (paths relative to --out, default the repository root):
- crates/arvis-tokenizer/tests/golden/llamagen_vq_tiny.safetensors: a tiny official `VQModel`
  (`vq.*`, the real VQ-16 structure with few channels) and its round trip of a random image
  (`golden.img`, `golden.latent`, `golden.idx`, `golden.quant`, `golden.rec`);
- crates/arvis-models/tests/golden/llamagen_gpt_b_block.safetensors: one block at GPT-B widths
  (dim 768, 12 heads, vocabulary 16384) with *hashed* weights (a formula Rust evaluates
  bit-identically, so only the run is stored): a recorded CFG generation's tokens, logits at a few
  steps (first 2048 columns) and the teacher-forced logits there;
- crates/arvis-models/tests/golden/llamagen_gpt_tiny.safetensors: a tiny official c2i GPT
  (`gpt.*`: 2 layers, dim 128, 2 heads of the real head dim 64, the real 16×16 grid and
  block_size 256, vocabulary 4096 = the tiny VQ's codebook) and one recorded `generate` run with
  CFG and top-k/top-p: the sampled tokens (replayed, not reproduced), the CFG-mixed and conditional
  logits at the recorded steps, the teacher-forced logits at the same positions, and the image
  decoded by the tokenizer fixture's VQ (same weights, not stored twice).

The official code is imported from --llamagen-repo (tested at commit ce98ec4), never copied.
Everything runs in fp32 on CPU, one thread. Weights are re-randomised with seeded values and
rounded to f16 *before* any golden is computed, so storing them as F16 is exact; every `golden.*`
tensor is F32 (integers as F32).
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
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TOK_PATH = "crates/arvis-tokenizer/tests/golden/llamagen_vq_tiny.safetensors"
GPT_PATH = "crates/arvis-models/tests/golden/llamagen_gpt_tiny.safetensors"
WIDE_PATH = "crates/arvis-models/tests/golden/llamagen_gpt_b_block.safetensors"
# One block at GPT-B widths (dim 768, 12 heads of 64, SwiGLU hidden 2048, the real vocabulary
# 16384). Its 19.6M weights are not stored: they are *hashed weights* (`hashed_weights` below,
# `arvis_models::llamagen::random::hashed_weights_bytes` in Rust), a formula both languages
# evaluate bit-identically, so the fixture holds only the recorded run.
WIDE_GPT = dict(n_layer=1, dim=768, n_head=12, vocab_size=16384, block_size=256, num_classes=1000,
                cls_token_num=1, class_dropout_prob=0.1)
WIDE_SEED = 7
WIDE_LABELS = [207, 980]
# Recorded steps of the wide run, and the vocabulary columns kept of their logits (the whole
# hidden state feeds every column, so a slice checks the block; all 16384 would be 4x the size).
WIDE_STEPS = [0, 1, 2, 127, 255]
WIDE_COLS = 2048
TINY_GPT = dict(n_layer=2, dim=128, n_head=2, vocab_size=4096, block_size=256, num_classes=1000,
                cls_token_num=1, class_dropout_prob=0.1)
LABELS = [3, 7]
SAMPLING = dict(cfg_scale=4.0, temperature=1.0, top_k=100, top_p=0.9)
# Logits are recorded at these steps only (all 256 would be 8 MB per tensor): the first 4,
# every 32nd and the last. The sampled tokens of every step are recorded.
STEPS = sorted(set(range(4)) | set(range(0, 256, 32)) | {255})

# The official `Normalize` hard-codes GroupNorm(32), which forces ch >= 32 (too many parameters
# for a fixture); the tiny VQ uses 8 groups (recorded as "norm_groups" in the config).
TINY_GROUPS = 8
TINY_VQ = dict(codebook_size=4096, codebook_embed_dim=8, ch=16,
               ch_mult=[1, 1, 2, 2, 4], z_channels=256, num_res_blocks=2)


def normal(shape, std: float, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * std


@torch.no_grad()
def randomize_vq(vq: nn.Module, g: torch.Generator, out_gain: float = 0.6) -> None:
    """Seeded values for every parameter: convs N(0, 1/fan_in) (decoder conv_out ×out_gain),
    GroupNorm affine 1 + N(0, 0.2²) / N(0, 0.2²), biases N(0, 0.05²), codebook N(0, 1)."""
    for name, p in vq.named_parameters():
        if name.startswith("quantize.embedding"):
            p.copy_(normal(p.shape, 1.0, g))
        elif ".norm" in name or name.endswith(("norm1.weight", "norm2.weight")):
            base = 1.0 if name.endswith("weight") else 0.0
            p.copy_(base + normal(p.shape, 0.2, g))
        elif p.dim() == 4:
            fan_in = p.shape[1] * p.shape[2] * p.shape[3]
            gain = out_gain if name == "decoder.conv_out.weight" else 1.0
            p.copy_(normal(p.shape, gain / math.sqrt(fan_in), g))
        elif name.endswith("bias"):
            p.copy_(normal(p.shape, 0.05, g))
        else:
            raise RuntimeError(f"randomize_vq: unhandled parameter {name} {tuple(p.shape)}")


@torch.no_grad()
def round_f16(m: nn.Module) -> None:
    for p in m.parameters():
        p.copy_(p.half().float())


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


def build_tiny_vq(vqm, cfg: dict):
    """The official VQModel with the tiny channel count (Encoder/Decoder take `ch`, ModelArgs
    does not: the two are rebuilt with the official classes)."""
    args = vqm.ModelArgs(codebook_size=cfg["codebook_size"], codebook_embed_dim=cfg["codebook_embed_dim"],
                         encoder_ch_mult=cfg["ch_mult"], decoder_ch_mult=cfg["ch_mult"],
                         z_channels=cfg["z_channels"])
    model = vqm.VQModel(args)
    model.encoder = vqm.Encoder(ch=cfg["ch"], ch_mult=cfg["ch_mult"], num_res_blocks=cfg["num_res_blocks"],
                                z_channels=cfg["z_channels"])
    model.decoder = vqm.Decoder(ch=cfg["ch"], ch_mult=cfg["ch_mult"], num_res_blocks=cfg["num_res_blocks"],
                                z_channels=cfg["z_channels"])
    return model.eval()


def arvis_vq_config(cfg: dict) -> dict:
    return dict(codebook_size=cfg["codebook_size"], codebook_embed_dim=cfg["codebook_embed_dim"],
                codebook_l2_norm=True, encoder_ch_mult=cfg["ch_mult"], decoder_ch_mult=cfg["ch_mult"],
                z_channels=cfg["z_channels"], ch=cfg["ch"], num_res_blocks=cfg["num_res_blocks"],
                in_channels=3, norm_groups=TINY_GROUPS)


def vq_state(model: nn.Module) -> dict:
    """`vq.*` tensors as F16 (exact: the weights were rounded), without buffers."""
    params = dict(model.named_parameters())
    return {f"vq.{k}": v.detach().half().contiguous() for k, v in params.items()}


def nearest_margin(model, latent: torch.Tensor) -> float:
    """Smallest (2nd-nearest − nearest) distance over all look-ups, as the official code computes d."""
    z = latent.permute(0, 2, 3, 1).reshape(-1, latent.shape[1])
    z = F.normalize(z, p=2, dim=-1)
    e = F.normalize(model.quantize.embedding.weight, p=2, dim=-1)
    d = torch.sum(z ** 2, dim=1, keepdim=True) + torch.sum(e ** 2, dim=1) - 2 * z @ e.t()
    two = torch.topk(d, 2, dim=1, largest=False).values
    return float((two[:, 1] - two[:, 0]).min())


@torch.no_grad()
def tokenizer_fixture(vqm, args) -> None:
    g = torch.Generator().manual_seed(args.seed)
    model = build_tiny_vq(vqm, TINY_VQ)
    randomize_vq(model, g)
    round_f16(model)
    img = smooth_image(2, args.image_size, g)
    latent = model.quant_conv(model.encoder(img))
    _, _, (_, _, idx) = model.quantize(latent)
    b, c, h, w = latent.shape
    quant = model.quantize.get_codebook_entry(idx, (b, c, h, w), channel_first=True)
    rec = model.decode_code(idx, (b, c, h, w))
    margin = nearest_margin(model, latent)
    print(f"tokenizer: {idx.numel()} look-ups, nearest-code margin {margin:.3e}, "
          f"|rec| max {rec.abs().max():.3f}")
    tensors = vq_state(model)
    tensors.update({
        "golden.img": img.contiguous(),
        "golden.latent": latent.contiguous(),
        "golden.idx": idx.reshape(b, h * w).float().contiguous(),
        "golden.quant": quant.contiguous(),
        "golden.rec": rec.contiguous(),
    })
    meta = {
        "arvis.family": "llamagen-vq",
        "arvis.config": json.dumps({"vq": arvis_vq_config(TINY_VQ)}),
        "arvis.source": source(args),
        "arvis.golden.margin": f"{margin:.6e}",
    }
    write(os.path.join(args.out, TOK_PATH), tensors, meta)
    return model


@torch.no_grad()
def randomize_gpt(model: nn.Module, g: torch.Generator, head_gain: float = 2.0) -> None:
    """Seeded values for every parameter, the zero-initialised `output` included: linears
    N(0, 1/fan_in) (`output` ×head_gain, so logits spread over a few units), embeddings N(0, 1),
    RMSNorm weights 1 + N(0, 0.2²)."""
    for name, p in model.named_parameters():
        if "embedding" in name:
            p.copy_(normal(p.shape, 1.0, g))
        elif name.endswith("norm.weight"):
            p.copy_(1.0 + normal(p.shape, 0.2, g))
        elif p.dim() == 2:
            gain = head_gain if name == "output.weight" else 1.0
            p.copy_(normal(p.shape, gain / math.sqrt(p.shape[1]), g))
        else:
            raise RuntimeError(f"randomize_gpt: unhandled parameter {name} {tuple(p.shape)}")


def arvis_gpt_config() -> dict:
    c = TINY_GPT
    return dict(dim=c["dim"], n_layer=c["n_layer"], n_head=c["n_head"], vocab_size=c["vocab_size"],
                block_size=c["block_size"], num_classes=c["num_classes"], cls_token_num=c["cls_token_num"],
                multiple_of=256, norm_eps=1e-5, rope_base=10000.0)


@torch.no_grad()
def gpt_fixture(gpt, gen, vq, args) -> None:
    g = torch.Generator().manual_seed(args.seed + 1)
    model = gpt.Transformer(gpt.ModelArgs(**TINY_GPT)).eval()
    randomize_gpt(model, g)
    round_f16(model)
    labels = torch.tensor(LABELS)
    b = len(labels)

    # Record what the official loop computes, without changing it: the model's raw output
    # (cond rows then uncond rows) and the CFG-mixed logits handed to `sample`.
    raw, mixed = [], []
    forward = model.forward

    def recording_forward(*a, **k):
        out = forward(*a, **k)
        raw.append(out[0][:, -1].clone())
        return out

    sample = gen.sample

    def recording_sample(logits, **k):
        mixed.append(logits[:, -1].clone())
        return sample(logits, **k)

    model.forward = recording_forward
    gen.sample = recording_sample
    torch.manual_seed(args.seed)
    seq = gen.generate(model, labels, TINY_GPT["block_size"], **SAMPLING)
    gen.sample = sample
    del model.forward
    assert len(raw) == len(mixed) == TINY_GPT["block_size"], (len(raw), len(mixed))

    # Teacher forcing: the whole sequence at once through the official forward's "naive
    # inference" branch (idx and cond_idx both given; no KV cache, causal SDPA, eval mode).
    for layer in model.layers:
        layer.attention.kv_cache = None
    teacher, _ = model(seq[:, :-1], labels, input_pos=torch.arange(TINY_GPT["block_size"]))
    assert teacher.shape == (b, TINY_GPT["block_size"], TINY_GPT["vocab_size"]), teacher.shape

    side = int(TINY_GPT["block_size"] ** 0.5)
    img = vq.decode_code(seq.reshape(-1), (b, vq.config.codebook_embed_dim, side, side))
    steps = torch.tensor(STEPS)
    raw_t = torch.stack(raw)  # [T, 2B, V]
    mixed_t = torch.stack(mixed)  # [T, B, V]
    gap = max(float((teacher[:, s] - raw_t[s, :b]).abs().max()) for s in STEPS)
    print(f"gpt: {b}×{seq.shape[1]} tokens, |mixed logits| max {mixed_t.abs().max():.2f}, "
          f"teacher vs cached max |Δ| {gap:.2e}, |img| max {img.abs().max():.3f}")
    tensors = {f"gpt.{k}": v.detach().half().contiguous() for k, v in model.named_parameters()}
    tensors.update({
        "golden.labels": labels.float(),
        "golden.cfg": torch.tensor([SAMPLING["cfg_scale"]]),
        "golden.temperature": torch.tensor([SAMPLING["temperature"]]),
        "golden.top_k": torch.tensor([float(SAMPLING["top_k"])]),
        "golden.top_p": torch.tensor([SAMPLING["top_p"]]),
        "golden.tokens": seq.float().contiguous(),
        "golden.steps": steps.float(),
        "golden.logits": mixed_t[steps].contiguous(),
        "golden.logits_cond": raw_t[steps, :b].contiguous(),
        "golden.teacher_logits": teacher[:, steps].contiguous(),
        "golden.img": img.contiguous(),
    })
    meta = {
        "arvis.family": "llamagen",
        "arvis.config": json.dumps({"gpt": arvis_gpt_config()}),
        "arvis.source": source(args),
        "arvis.golden.vq": TOK_PATH,
    }
    write(os.path.join(args.out, GPT_PATH), tensors, meta)


MASK64 = (1 << 64) - 1


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for byte in name.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    return h


def hashed_uniform(name: str, seed: int, n: int):
    """u_i in [-1, 1), i < n: the top 24 bits of splitmix64(fnv1a64(name) + seed·2^32 + i) as
    k/2^23 − 1 (exact in f32)."""
    import numpy as np

    base = np.uint64((fnv1a64(name) + (seed << 32)) & MASK64)
    with np.errstate(over="ignore"):
        x = base + np.arange(n, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    k = (x >> np.uint64(40)).astype(np.float32)
    return k / np.float32(1 << 23) - np.float32(1.0)


def hashed_weights(model: nn.Module, seed: int) -> None:
    """Every parameter = mean + scale · hashed_uniform (the f32 scale computed in f64 then rounded;
    the product and sum in f32): linears scale √3·gain/√fan_in (unit-variance outputs; `output`
    gain 2), embeddings √3, RMSNorm weights 1 + 0.1·√3·u. The Rust twin is
    `arvis_models::llamagen::random::hashed_weights_bytes`."""
    import numpy as np

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embedding" in name:
                mean, scale = 0.0, math.sqrt(3.0)
            elif name.endswith("norm.weight"):
                mean, scale = 1.0, 0.1 * math.sqrt(3.0)
            elif p.dim() == 2:
                gain = 2.0 if name == "output.weight" else 1.0
                mean, scale = 0.0, math.sqrt(3.0) * gain / math.sqrt(p.shape[1])
            else:
                raise RuntimeError(f"hashed_weights: unhandled parameter {name} {tuple(p.shape)}")
            u = hashed_uniform(name, seed, p.numel())
            v = u * np.float32(scale) + np.float32(mean)
            p.copy_(torch.from_numpy(v.astype(np.float32)).reshape(p.shape))


@torch.no_grad()
def wide_fixture(gpt, gen, args) -> None:
    """One GPT-B-width block with hashed weights: a recorded CFG `generate` run (every token, the
    guided and conditional logits at WIDE_STEPS, first WIDE_COLS columns) and the teacher-forced
    logits at the same positions."""
    model = gpt.Transformer(gpt.ModelArgs(**WIDE_GPT)).eval()
    hashed_weights(model, WIDE_SEED)
    labels = torch.tensor(WIDE_LABELS)
    b = len(labels)
    raw, mixed = [], []
    forward = model.forward

    def recording_forward(*a, **k):
        out = forward(*a, **k)
        raw.append(out[0][:, -1].clone())
        return out

    sample = gen.sample

    def recording_sample(logits, **k):
        mixed.append(logits[:, -1].clone())
        return sample(logits, **k)

    model.forward = recording_forward
    gen.sample = recording_sample
    torch.manual_seed(args.seed + 2)
    seq = gen.generate(model, labels, WIDE_GPT["block_size"], **SAMPLING)
    gen.sample = sample
    del model.forward
    for layer in model.layers:
        layer.attention.kv_cache = None
    teacher, _ = model(seq[:, :-1], labels, input_pos=torch.arange(WIDE_GPT["block_size"]))
    steps = torch.tensor(WIDE_STEPS)
    raw_t = torch.stack(raw)[steps, :, :WIDE_COLS]
    mixed_t = torch.stack(mixed)[steps, :, :WIDE_COLS]
    gap = float((teacher[:, steps, :WIDE_COLS] - raw_t[:, :b].transpose(0, 1)).abs().max())
    print(f"gpt-b block: {b}×{seq.shape[1]} tokens, |mixed logits| max {mixed_t.abs().max():.2f}, "
          f"teacher vs cached max |Δ| {gap:.2e}")
    cfg = dict(WIDE_GPT)
    cfg = dict(dim=cfg["dim"], n_layer=cfg["n_layer"], n_head=cfg["n_head"],
               vocab_size=cfg["vocab_size"], block_size=cfg["block_size"],
               num_classes=cfg["num_classes"], cls_token_num=cfg["cls_token_num"],
               multiple_of=256, norm_eps=1e-5, rope_base=10000.0)
    tensors = {
        "golden.labels": labels.float(),
        "golden.cfg": torch.tensor([SAMPLING["cfg_scale"]]),
        "golden.temperature": torch.tensor([SAMPLING["temperature"]]),
        "golden.top_k": torch.tensor([float(SAMPLING["top_k"])]),
        "golden.top_p": torch.tensor([SAMPLING["top_p"]]),
        "golden.tokens": seq.float().contiguous(),
        "golden.steps": steps.float(),
        "golden.logits": mixed_t.contiguous(),
        "golden.logits_cond": raw_t[:, :b].contiguous(),
        "golden.teacher_logits": teacher[:, steps, :WIDE_COLS].contiguous(),
    }
    # The first values of a few weights: a formula mismatch then fails with its own message.
    params = dict(model.named_parameters())
    for name in ("tok_embeddings.weight", "layers.0.attention.wqkv.weight", "norm.weight",
                 "output.weight"):
        tensors[f"golden.probe.{name}"] = params[name].detach().reshape(-1)[:64].contiguous()
    meta = {
        "arvis.family": "llamagen-golden-hashed",
        "arvis.config": json.dumps({"gpt": cfg}),
        "arvis.source": source(args),
        "arvis.golden.hashed_seed": str(WIDE_SEED),
        "arvis.golden.cols": str(WIDE_COLS),
    }
    write(os.path.join(args.out, WIDE_PATH), tensors, meta)


def source(args) -> str:
    try:
        rev = subprocess.check_output(["git", "-C", args.llamagen_repo, "rev-parse", "--short", "HEAD"],
                                      text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    cmd = "python xtask/py/golden_llamagen.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("llamagen_repo", "out"))
    return f"{cmd}; FoundationVision/LlamaGen @ {rev}; torch {torch.__version__}; fp32 CPU"


def write(path: str, tensors: dict, meta: dict) -> None:
    """Writes the file unless it already holds exactly these tensors (the metadata is written in
    an arbitrary order, so rewriting would change the bytes only)."""
    if os.path.exists(path):
        from safetensors.torch import load_file
        old = load_file(path)
        if old.keys() == tensors.keys() and all(torch.equal(old[k], v) for k, v in tensors.items()):
            print(f"unchanged {path}")
            return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(tensors, path, metadata=meta)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llamagen-repo", required=True, help="checkout of FoundationVision/LlamaGen")
    ap.add_argument("--out", default=REPO_ROOT, help="repository root to write the fixtures under")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sys.path.insert(0, os.path.abspath(args.llamagen_repo))
    import tokenizer.tokenizer_image.vq_model as vqm  # official code

    vqm.Normalize = lambda c, norm_type="group": nn.GroupNorm(TINY_GROUPS, c, eps=1e-6, affine=True)
    vq = tokenizer_fixture(vqm, args)
    import autoregressive.models.gpt as gpt  # official code
    import autoregressive.models.generate as gen  # official code
    gpt_fixture(gpt, gen, vq, args)
    wide_fixture(gpt, gen, args)


if __name__ == "__main__":
    main()
