#!/usr/bin/env python3
"""Round-trip test for convert_llamagen.py against the official LlamaGen classes (plain asserts).

    /work/venv/bin/python xtask/py/test_convert_llamagen.py --llamagen-repo /path/to/LlamaGen

Builds tiny official models (the golden fixtures' VQ and GPT configurations), saves them in the
release format (`{"model": state_dict}`, the VQ one with its `quantize.codebook_used` buffer),
runs the converter CLI and checks keys, values, dtypes and metadata, then the failure modes.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_llamagen as cl  # noqa: E402
import golden_llamagen as gl  # noqa: E402


def run_cli(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cl.main(list(argv))


def read(path: str):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llamagen-repo", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.abspath(args.llamagen_repo))
    import autoregressive.models.gpt as gpt  # official code
    import tokenizer.tokenizer_image.vq_model as vqm  # official code

    vqm.Normalize = lambda c, norm_type="group": nn.GroupNorm(gl.TINY_GROUPS, c, eps=1e-6, affine=True)
    g = torch.Generator().manual_seed(0)
    vq = gl.build_tiny_vq(vqm, gl.TINY_VQ)
    gl.randomize_vq(vq, g)
    model = gpt.Transformer(gpt.ModelArgs(**gl.TINY_GPT)).eval()
    gl.randomize_gpt(model, g)
    assert "quantize.codebook_used" in vq.state_dict()

    with tempfile.TemporaryDirectory() as tmp:
        vq_path, gpt_path, out = (os.path.join(tmp, n) for n in ("vq.pt", "gpt.pt", "out.safetensors"))
        torch.save({"model": vq.state_dict()}, vq_path)
        torch.save({"model": model.state_dict(), "steps": 1}, gpt_path)
        assert run_cli("--vq", vq_path, "--gpt", gpt_path, "--out", out, "--norm-groups", "8") == 0
        tensors, meta = read(out)
        want = {f"gpt.{k}": v for k, v in model.state_dict().items()}
        want.update({f"vq.{k}": v for k, v in vq.state_dict().items() if k != "quantize.codebook_used"})
        assert set(tensors) == set(want), sorted(set(tensors) ^ set(want))[:10]
        for k, v in want.items():
            assert tensors[k].dtype == torch.float32 and torch.equal(tensors[k], v), k
        assert meta["arvis.family"] == "llamagen"
        cfg = json.loads(meta["arvis.config"])
        assert cfg["gpt"] == dict(dim=128, n_layer=2, n_head=2, vocab_size=4096, block_size=256,
                                  num_classes=1000, cls_token_num=1, multiple_of=256, norm_eps=1e-5,
                                  rope_base=10000.0), cfg["gpt"]
        assert cfg["vq"] == gl.arvis_vq_config(gl.TINY_VQ), cfg["vq"]
        assert json.loads(meta["arvis.sampling"]) == {"cfg": 4.0, "top_k": 2000, "top_p": 1.0}

        # f16 output; byte-reproducible.
        assert run_cli("--vq", vq_path, "--gpt", gpt_path, "--out", out + "2", "--norm-groups", "8",
                       "--dtype", "f16") == 0
        t16, _ = read(out + "2")
        assert all(v.dtype == torch.float16 for v in t16.values())
        assert run_cli("--vq", vq_path, "--gpt", gpt_path, "--out", out + "3", "--norm-groups", "8") == 0
        assert open(out, "rb").read() == open(out + "3", "rb").read()

        # Failure modes: each is a clean error (exit 2), no file written.
        def fails(vq_sd, gpt_sd, *extra):
            a, b = os.path.join(tmp, "a.pt"), os.path.join(tmp, "b.pt")
            torch.save({"model": vq_sd}, a)
            torch.save({"model": gpt_sd}, b)
            bad = os.path.join(tmp, "bad.safetensors")
            code = run_cli("--vq", a, "--gpt", b, "--out", bad, "--norm-groups", "8", *extra)
            assert code == 2 and not os.path.exists(bad), code

        vsd, gsd = vq.state_dict(), model.state_dict()
        fails(vsd, {k: v for k, v in gsd.items() if k != "layers.1.ffn_norm.weight"})  # missing
        fails(vsd, {**gsd, "layers.0.extra.weight": torch.zeros(1)})  # unknown
        fails(vsd, {**gsd, "norm.weight": torch.zeros(3)})  # mis-shaped
        fails({**vsd, "quantize.embedding.weight": torch.zeros(100, 8)}, gsd)  # vocab ≠ codebook
        fails(vsd, gsd, "--image-size", "250")  # not a multiple of 16
        # The GPT's shapes do not depend on the grid: --image-size picks it (384 → 24×24).
        assert run_cli("--vq", vq_path, "--gpt", gpt_path, "--out", out + "4", "--norm-groups", "8",
                       "--image-size", "384") == 0
        assert json.loads(read(out + "4")[1]["arvis.config"])["gpt"]["block_size"] == 576
    print("test_convert_llamagen: ok")


if __name__ == "__main__":
    main()
