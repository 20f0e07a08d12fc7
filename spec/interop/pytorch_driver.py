# The PyTorch half of spec/interop/pytorch-bridge.spec.ts: runs a list of operations through
# interop/pytorch/hasten_torch.py and prints one JSON line with a result per operation.
#
#   python3 pytorch_driver.py REQUEST.json
#
# REQUEST: {"ops": [{"op": ..., ...}, ...]}. Float arrays go to raw little-endian float32 files
# (named by "out"), so the spec compares them without a JSON round trip. An operation that fails
# reports {"error": message} instead of stopping the others.
import ctypes
import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop", "pytorch"))
import hasten_torch as ht  # noqa: E402

_models = {}
CONFIGS = {"transformer": ht.transformer_config, "markov": ht.markov_config}


def model_of(path):
    if path not in _models:
        _models[path] = ht.load_model_dir(path)
    return _models[path]


def write_f32(path, t):
    t = t.detach().float().contiguous()
    with open(path, "wb") as f:
        f.write(ctypes.string_at(t.data_ptr(), t.numel() * 4))
    return list(t.shape)


def padded(rows, pad=0):
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long)


def run(op):
    kind = op["op"]
    if kind == "logits":
        model, _ = model_of(op["dir"])
        with torch.no_grad():
            return {"shape": write_f32(op["out"], model(padded(op["src"]), padded(op["tgt"])))}
    if kind == "loss":
        # The training loss as the bridge's docs tell a PyTorch user to write it.
        model, _ = model_of(op["dir"])
        with torch.no_grad():
            logits = model(padded(op["src"]), padded(op["tgt"]))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), padded(op["tgtOut"]).reshape(-1),
                                                     ignore_index=0, label_smoothing=op["labelSmoothing"])
        return {"loss": loss.item()}
    if kind in ("greedy", "beam"):
        model, _ = model_of(op["dir"])
        common = dict(max_len_a=op["maxLenA"], max_len_b=op["maxLenB"], banned=tuple(op["banned"]) if "banned" in op else None)
        if kind == "greedy":
            hyps = ht.greedy_decode(model, op["sources"], **common)
        else:
            hyps = ht.beam_search(model, op["sources"], beam=op["beam"], length_penalty=op["lengthPenalty"], **common)
        return {"tokens": [h[0] for h in hyps], "scores": [h[1] for h in hyps]}
    if kind == "save_random":
        # A fresh torch model with every parameter random (LayerNorm weights and biases too, so a
        # swapped name cannot hide behind equal values), saved as a Hasten model directory.
        torch.manual_seed(op["seed"])
        model_kind = op.get("kind", "transformer")
        model = ht.build_model(model_kind, CONFIGS[model_kind](**op["config"]))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * op.get("noise", 0.2))
        cfg = {"task": "translation", "src": "de", "tgt": "en",
               "decoding": {"maxLenA": 1.2, "maxLenB": 10, "beam": 5, "lengthPenalty": 1}}
        ht.save_model_dir(model, cfg, op["out"], tokenizer=op["tokenizer"], version=op["version"], dtype=op["dtype"],
                          **({"training": op["training"]} if "training" in op else {}))
        return {"parameters": sum(p.numel() for p in model.parameters()), "names": sorted(model.state_dict())}
    if kind == "build":
        model = ht.build_model(op["kind"], op["config"])
        return {"kind": model.kind, "class": type(model).__name__}
    if kind == "markov_train_window":
        # Training mode (dropout on): two passes with the same dropout masks (same seed) on targets
        # that differ only in the first token. Strict: logits at positions >= order must not move,
        # or dropout (or anything else) reads tokens older than the window.
        torch.manual_seed(op["seed"])
        model = ht.build_model("markov", ht.markov_config(**op["config"])).train()
        src, tgt = padded(op["src"]), padded(op["tgt"])
        other = tgt.clone()
        other[:, 0] = torch.where(other[:, 0] == 5, 6, 5)
        with torch.no_grad():
            torch.manual_seed(7)
            a = model(src, tgt)
            torch.manual_seed(7)
            b = model(src, other)
            torch.manual_seed(8)
            c = model(src, tgt)
        k = model.config["order"]
        return {"insideWindow": (a[:, :k] - b[:, :k]).abs().max().item(), "pastWindow": (a[:, k:] - b[:, k:]).abs().max().item(),
                "otherMasks": (a - c).abs().max().item()}
    if kind == "sinusoid":
        return {"shape": write_f32(op["out"], ht.sinusoid_table(op["maxLen"], op["dModel"]))}
    if kind == "decode_ids":
        _, cfg = model_of(op["dir"])
        tokens = ht.tokenizer_tokens(cfg["tokenizer"])
        return {"texts": [ht.decode_ids(tokens, ids) for ids in op["ids"]]}
    if kind == "load":
        model, cfg = model_of(op["dir"])
        return {"version": cfg["version"], "kind": cfg["kind"], "class": type(model).__name__, "config": model.config}
    raise ValueError(f"pytorch_driver: unknown op {kind!r}")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        ops = json.load(f)["ops"]
    results = []
    for op in ops:
        try:
            results.append(run(op))
        except Exception as e:  # reported per operation; the spec decides whether it was expected
            results.append({"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)})
    print(json.dumps({"torch": torch.__version__, "results": results}))


if __name__ == "__main__":
    main()
