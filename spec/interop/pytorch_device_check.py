# The PyTorch bridge on an accelerator, run by hand where there is one (the spec suite runs torch on
# the CPU only):
#
#   python3 spec/interop/pytorch_device_check.py        # exit status 1 when a check fails
#
# For the Transformer and Markov Transformers (strict and window, orders 1, 3, 12), random models:
# logits on the device within 1e-4 of the CPU's, the same greedy and beam tokens (decoding past
# maxLen where the positions allow), a few AdamW steps with dropout (and a bf16 autocast pass)
# with finite losses, the strict window intact under dropout on the device, and a model directory
# saved from the device that loads back onto it unchanged. Without CUDA it compares CPU with CPU.
import json, math, os, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "interop", "pytorch"))
import torch
import torch.nn.functional as F
import hasten_torch as ht

t0 = time.time()
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False  # float32 matmuls in float32, as on the CPU
print("torch", torch.__version__, "device", dev, torch.cuda.get_device_name(0) if dev == "cuda" else "")
V = 400
tok = {"format": "hasten-bpe", "version": 1, "specials": ht.SPECIALS, "vocabSize": V, "alphabet": [chr(0x4e00 + i) for i in range(V - 261)], "merges": []}
g = torch.Generator().manual_seed(1)
def rows(n, lo, hi):
    return [torch.randint(5, V, (int(torch.randint(lo, hi + 1, (1,), generator=g)),), generator=g).tolist() for _ in range(n)]
src, tgt = rows(8, 1, 12), [[1] + r for r in rows(8, 1, 10)]
def pad(rs):
    w = max(map(len, rs))
    return torch.tensor([r + [0] * (w - len(r)) for r in rs])
S, TI = pad(src), pad(tgt)
TO = pad([r[1:] + [2] for r in tgt])
report, failed = {}, 0
for kind, extra in [("transformer", {}), *[("markov", {"order": k, "variant": v}) for v in ("strict", "window") for k in (1, 3, 12)]]:
    name = kind + "".join(f"-{x}" for x in extra.values())
    torch.manual_seed(3)
    cfg = (ht.markov_config if kind == "markov" else ht.transformer_config)(vocab=V, dModel=32, heads=4, ffn=64, encLayers=2, decLayers=2, maxLen=16, dropout=0.1, attnDropout=0.1, **extra)
    m = ht.build_model(kind, cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    m.eval()
    with torch.no_grad():
        y_cpu = m(S, TI)
        gr_cpu = ht.greedy_decode(m, src, max_len_a=1, max_len_b=20)
        bm_cpu = ht.beam_search(m, src, beam=4, max_len_a=1, max_len_b=20)
    m = m.to(dev)
    with torch.no_grad():
        y_dev = m(S.to(dev), TI.to(dev)).cpu()
    gr_dev = ht.greedy_decode(m, src, max_len_a=1, max_len_b=20)
    bm_dev = ht.beam_search(m, src, beam=4, max_len_a=1, max_len_b=20)
    r = {"logit_diff": (y_cpu - y_dev).abs().max().item(),
         "greedy_same": [a[0] for a in gr_cpu] == [b[0] for b in gr_dev],
         "beam_same": [a[0] for a in bm_cpu] == [b[0] for b in bm_dev],
         "longest_greedy": max(len(a[0]) for a in gr_dev)}
    # Training on the device: dropout on, a few AdamW steps, loss finite and falling; bf16 autocast.
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=1e-4)
    losses = []
    for _ in range(5):
        logits = m(S.to(dev), TI.to(dev))
        loss = F.cross_entropy(logits.reshape(-1, V), TO.to(dev).reshape(-1), ignore_index=0, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        losses.append(round(loss.item(), 4))
    r["losses"] = losses
    if dev == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lb = F.cross_entropy(m(S.to(dev), TI.to(dev)).float().reshape(-1, V), TO.to(dev).reshape(-1), ignore_index=0, label_smoothing=0.1)
        lb.backward()
        r["bf16_loss_finite"] = bool(torch.isfinite(lb).item())
    if kind == "markov" and extra["variant"] == "strict":
        other = TI.clone()
        other[:, 0] = torch.where(other[:, 0] == 5, 6, 5)
        with torch.no_grad():
            torch.manual_seed(9); a = m(S.to(dev), TI.to(dev))
            torch.manual_seed(9); b = m(S.to(dev), other.to(dev))
        k = extra["order"]
        r["strict_train_past_window"] = (a[:, k:] - b[:, k:]).abs().max().item() if TI.shape[1] > k else None
    # Save from the device, load back onto it.
    with tempfile.TemporaryDirectory() as d:
        ht.save_model_dir(m, {"task": "translation", "src": "de", "tgt": "en", "decoding": {"maxLenA": 1, "maxLenB": 5, "beam": 4, "lengthPenalty": 1}},
                          os.path.join(d, "m"), tokenizer=tok, training={"note": "gpu check"})
        m2, c2 = ht.load_model_dir(os.path.join(d, "m"), device=dev)
        m.eval()
        with torch.no_grad():
            r["reload_diff"] = (m(S.to(dev), TI.to(dev)) - m2(S.to(dev), TI.to(dev))).abs().max().item()
        r["reload_kind"] = [c2["kind"], type(m2).__name__, c2.get("training")]
    bad = [k for k, ok in (("logit_diff", r["logit_diff"] <= 1e-4), ("greedy_same", r["greedy_same"]), ("beam_same", r["beam_same"]),
                           ("losses", all(map(math.isfinite, r["losses"]))), ("bf16_loss_finite", r.get("bf16_loss_finite", True)),
                           ("strict_train_past_window", not r.get("strict_train_past_window")), ("reload_diff", r["reload_diff"] == 0)) if not ok]
    report[name] = r
    print(f"FAIL {name} ({', '.join(bad)})" if bad else f"ok   {name}", json.dumps(r), flush=True)
    failed += bool(bad)
print(f"{len(report) - failed} of {len(report)} models passed in {time.time() - t0:.1f}s")
sys.exit(1 if failed else 0)
