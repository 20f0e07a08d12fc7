# The PyTorch half of spec/interop/pytorch-train.spec.ts: runs operations on interop/pytorch/
# train_torch.py's pieces and prints one JSON line with a result per operation.
#
#   python3 pytorch_train_driver.py REQUEST.json
#
# REQUEST: {"ops": [{"op": ..., ...}, ...]}; an operation that fails reports {"error": message}.
import json
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop", "pytorch"))
import hasten_data as hd  # noqa: E402
import hasten_torch as ht  # noqa: E402
import train_torch as tt  # noqa: E402

CPU = torch.device("cpu")


def run(op):
    kind = op["op"]
    if kind == "pair_batches":
        # The first `count` training batches and every validation batch, as Hasten's Batcher makes them.
        meta = hd.read_meta(op["data"])
        data = hd.PairData(op["data"], "train", meta["idDtype"], CPU)
        b = hd.Batcher(data.src_len.tolist(), data.tgt_len.tolist(), op["maxTokens"], seed=op["seed"])
        out = []
        for _ in range(op["count"]):
            epoch = b.epoch if b.position < b.batches_in_epoch else b.epoch + 1
            src, tgt_in, tgt_out, n = data.batch(b.next(), 0, 1, 2)
            out.append({"src": src.flatten().tolist(), "tgtIn": tgt_in.flatten().tolist(), "tgtOut": tgt_out.flatten().tolist(),
                        "srcShape": list(src.shape), "tgtShape": list(tgt_in.shape), "numTokens": n, "epoch": epoch})
        return {"batches": out, "batchesInEpoch": b.batches_in_epoch}
    if kind == "lm_batches":
        meta = hd.read_meta(op["data"])
        stream = hd.read_ids(os.path.join(op["data"], "train.ids"), meta["idDtype"])
        T = op["seqLen"]
        obj = hd.LMBatcher(stream.numel(), T, max(1, op["maxTokens"] // T), seed=op["seed"])
        out = []
        for _ in range(op["count"]):
            starts = torch.tensor(obj.next()) * T
            w = stream[starts.view(-1, 1) + torch.arange(T + 1).view(1, -1)]
            out.append({"input": w[:, :-1].flatten().tolist(), "target": w[:, 1:].flatten().tolist(), "shape": [w.shape[0], T]})
        return {"batches": out, "stream": stream.tolist()}
    if kind == "init_stats":
        # A fresh model as train_torch.py builds it: mean, std and size of every parameter.
        torch.manual_seed(op["seed"])
        model = tt.build_model(op["kind"], op["config"])
        return {"stats": {k: [v.double().mean().item(), v.double().std().item() if v.numel() > 1 else 0.0, v.numel()]
                          for k, v in model.state_dict().items()}}
    if kind == "has":
        return {"build_model": hasattr(ht, "build_model"), "hasten_lm": _importable("hasten_lm")}
    raise ValueError(f"pytorch_train_driver: unknown op {kind!r}")


def _importable(name):
    try:
        __import__(name)
        return True
    except ImportError:
        return False


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
