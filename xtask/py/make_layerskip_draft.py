"""Layer-skip draft model for `--sampler spec`: the first K transformer blocks of a LlamaGen
file with its embeddings, final norm and output head (no training), written as a GPT-only
LlamaGen file (the draft needs no tokenizer).

    python xtask/py/make_layerskip_draft.py IN.safetensors OUT.safetensors K

`arvis generate/eval --sampler spec --draft OUT.safetensors` then drafts with it. A shallow
prefix of the model agrees with the full model only on easy tokens (docs/samplers.md measures
it on the embedded LlamaGen-style model: 20 % of drafts accepted with K = 2 of 6).
"""
import json
import sys

from safetensors import safe_open
from safetensors.numpy import save_file


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, k = argv[0], argv[1], int(argv[2])
    with safe_open(src, "np") as f:
        meta = dict(f.metadata() or {})
        cfg = json.loads(meta["arvis.config"])
        n_layer = cfg["gpt"]["n_layer"]
        if not 1 <= k < n_layer:
            print(f"K must be in 1..{n_layer - 1} for a {n_layer}-block model", file=sys.stderr)
            return 2
        tensors = {}
        for name in f.keys():
            parts = name.split(".")
            if parts[0] != "gpt" or (parts[1] == "layers" and int(parts[2]) >= k):
                continue
            tensors[name] = f.get_tensor(name)
    meta["arvis.config"] = json.dumps({"gpt": dict(cfg["gpt"], n_layer=k)})
    meta["arvis.source"] = json.dumps({"derived_from": src, "how": f"first {k} of {n_layer} blocks (layer-skip draft)"})
    save_file(tensors, dst, metadata=meta)
    print(f"{dst}: {len(tensors)} tensors, {k} of {n_layer} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
