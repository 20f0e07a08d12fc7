# PyTorch peer of bench/translate-decode.ts: the same model directory, loaded through
# interop/pytorch/hasten_torch.py, decoding the same token ids with the same rules.
#
#   python3 torch_translate.py MODEL_DIR THREADS
#
# A JSON-lines server, so the benchmark can interleave its rounds with Hasten's (a slow patch of a
# shared machine then hits both alike). On start it prints {"ready": true, version, blas, threads};
# then, per line read:
#   {"cmd": "sources", "sources": [[ids], ...]}                   -> {"ok": true}
#   {"cmd": "run", "beam": K, "batch": B, "maxLenA": a, "maxLenB": b, "lengthPenalty": α, "banned": [...]}
#                                                                  -> {"ms": decoding time, "tokens": [[ids], ...]}
#   {"cmd": "quit"}
# The time covers decode_corpus only (batching, encoder, search), not the pipe.
import json
import os
import sys
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)  # torch_lm: the BLAS probe and thread setting the other benchmarks use
sys.path.insert(0, os.path.join(here, "..", "..", "interop", "pytorch"))
from torch_lm import blas_library, set_threads  # noqa: E402
import hasten_torch as ht  # noqa: E402


def main(model_dir, threads):
    set_threads(threads)
    model, _ = ht.load_model_dir(model_dir)
    sources = []
    print(json.dumps({"ready": True, "version": torch.__version__, "blas": blas_library(), "threads": torch.get_num_threads(),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "quit":
            break
        if req["cmd"] == "sources":
            sources = req["sources"]
            reply = {"ok": True}
        elif req["cmd"] == "run":
            opts = dict(max_len_a=req["maxLenA"], max_len_b=req["maxLenB"], banned=tuple(req["banned"]))
            if req["beam"] > 1:
                opts["length_penalty"] = req["lengthPenalty"]
            t0 = time.perf_counter()
            with torch.inference_mode():
                hyps = ht.decode_corpus(model, sources, batch_size=req["batch"], beam=req["beam"], **opts)
            reply = {"ms": (time.perf_counter() - t0) * 1e3, "tokens": [h[0] for h in hyps]}
        else:
            reply = {"error": f"torch_translate: unknown cmd {req['cmd']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: torch_translate.py MODEL_DIR THREADS")
    main(sys.argv[1], int(sys.argv[2]))
