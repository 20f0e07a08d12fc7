# The PyTorch half of spec/interop/pytorch-lm.spec.ts: runs a list of operations through
# interop/pytorch/hasten_lm.py and prints one JSON line with a result per operation.
#
#   python3 pytorch_lm_driver.py REQUEST.json
#
# REQUEST: {"ops": [{"op": ..., ...}, ...]}. Float arrays go to raw little-endian float32 files
# (named by "out"); token batches come as lists of id lists (all rows one length). An operation
# that fails reports {"error": message} instead of stopping the others.
import ctypes
import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop", "pytorch"))
import hasten_lm as hl  # noqa: E402

_models = {}


def model_of(path):
    if path not in _models:
        _models[path] = hl.load_lm_dir(path)
    return _models[path]


def write_f32(path, t):
    t = t.detach().float().contiguous()
    with open(path, "wb") as f:
        f.write(ctypes.string_at(t.data_ptr(), t.numel() * 4))
    return list(t.shape)


def ids(rows):
    return torch.tensor(rows, dtype=torch.long)


def randomize(model, seed):
    # Every parameter random (LayerNorm weights and all biases too, glimpse.o.bias among them, so
    # a swapped name or a dropped bias cannot hide behind equal or zero values).
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def run(op):
    kind = op["op"]
    if kind == "logits":
        model, _ = model_of(op["dir"])
        with torch.no_grad():
            return {"shape": write_f32(op["out"], model(ids(op["tokens"])))}
    if kind == "glide_logits":
        draft, _ = model_of(op["draft"])
        target, _ = model_of(op["target"])
        with torch.no_grad():
            return {"shape": write_f32(op["out"], hl.glide_train_logits(draft, target, ids(op["tokens"]), block_size=op["blockSize"]))}
    if kind == "lm_loss":
        model, _ = model_of(op["dir"])
        with torch.no_grad():
            return {"loss": hl.lm_loss(model, ids(op["windows"]), label_smoothing=op["labelSmoothing"]).item()}
    if kind == "glide_loss":
        # In train mode, as Hasten's trainer runs the draft (its dropout is 0 here), with a gradient.
        draft, _ = model_of(op["draft"])
        target, _ = model_of(op["target"])
        draft.train()
        try:
            draft.zero_grad()
            loss = hl.glide_loss(draft, target, ids(op["windows"]), block_size=op["blockSize"], label_smoothing=op["labelSmoothing"])
            loss.backward()
            frozen = all(p.grad is None for p in target.parameters())
            learned = sum(1 for p in draft.parameters() if p.grad is not None and p.grad.abs().sum() > 0)
        finally:
            draft.eval()
        return {"loss": loss.item(), "targetFrozen": frozen, "draftParamsWithGrad": learned, "draftParams": len(list(draft.parameters()))}
    if kind == "save_random_lm":
        model = randomize(hl.build_lm_model("lm", hl.lm_config(**op["config"])), op["seed"])
        hl.save_lm_dir(model, None, op["out"], tokenizer=op["tokenizer"], dtype=op["dtype"], training={"note": "random torch weights"})
        return {"names": sorted(model.state_dict())}
    if kind == "save_random_glide":
        target, _ = model_of(op["target"])
        model = randomize(hl.build_lm_model("glide", hl.glide_config(target, **op["config"])), op["seed"])
        hl.save_lm_dir(model, None, op["out"], dtype=op["dtype"], decoding=op.get("decoding"), target=op["target"])
        return {"names": sorted(model.state_dict())}
    if kind == "resave":
        model, cfg = model_of(op["dir"])
        hl.save_lm_dir(model, cfg, op["out"], dtype="F32")
        return {}
    if kind == "load":
        model, cfg = model_of(op["dir"])
        return {"kind": cfg["kind"], "config": model.config, "decoding": cfg["decoding"],
                "dropouts": sorted([n, m.p] for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout))}
    if kind == "save_glide_bad":
        # A glide draft saved without naming its target, or for a target of another shape.
        target, _ = model_of(op["target"])
        model = hl.build_lm_model("glide", hl.glide_config(target, dModel=8, heads=2, ffn=8))
        hl.save_lm_dir(model, None, op["out"], tokenizer=op.get("tokenizer"), target=op.get("saveTarget"))
        return {}
    if kind == "glide_mismatch":
        draft, _ = model_of(op["draft"])
        target, _ = model_of(op["target"])
        hl.glide_train_logits(draft, target, ids(op["tokens"]), block_size=3)
        return {}
    raise ValueError(f"pytorch_lm_driver: unknown op {kind!r}")


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
