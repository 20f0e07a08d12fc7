# PyTorch reference for bench/train-step.ts and bench/decode-step.ts: the benchmark LM
# (bench/peers/lm.ts) with the weights Hasten exported, timed on 1 thread and on all threads.
#
#   python3 torch_lm.py train  DIR B T warmup rounds     (DIR from writeForPython: weights, ids, targets)
#   python3 torch_lm.py decode DIR steps warmup runs     (DIR: weights, prompt)
#
# Prints one JSON line. Each timing starts from the initial weights (and fresh AdamW state), so
# the first loss is comparable with the other peers'. With each timing, the CPU time (user and
# system) the process used over the timed rounds, and the BLAS it loaded (torch_env.py).
import json, math, os, sys, time

import torch
import torch.nn.functional as F
from torch import nn
from torch_env import CpuTimer, blas_report, set_threads, wait_policy  # set_threads: other peers import it from here


class Attention(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h, self.dh = h, d // h
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, cache=None, layer=0):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.h, self.dh).transpose(1, 2)  # [B, H, T, Dh]
        q = split(self.q(x)) * (1.0 / math.sqrt(self.dh))
        k, v = split(self.k(x)), split(self.v(x))
        offset = 0
        if cache is not None:
            if layer in cache:
                pk, pv = cache[layer]
                offset = pk.shape[2]
                k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
            cache[layer] = (k, v)
        scores = q @ k.transpose(-1, -2)  # [B, H, T, Tk]
        if t > 1:
            tk = k.shape[2]
            i = torch.arange(t).unsqueeze(1) + offset
            j = torch.arange(tk).unsqueeze(0)
            scores = scores.masked_fill(j > i, -1e9)
        out = scores.softmax(-1) @ v
        return self.o(out.transpose(1, 2).reshape(b, t, d))


class Layer(nn.Module):
    def __init__(self, d, h, f):
        super().__init__()
        self.selfNorm, self.ffnNorm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.selfAttn = Attention(d, h)
        self.ffn = nn.Module()
        self.ffn.fc1, self.ffn.fc2 = nn.Linear(d, f), nn.Linear(f, d)

    def forward(self, x, cache=None, layer=0):
        x = x + self.selfAttn(self.selfNorm(x), cache, layer)
        return x + self.ffn.fc2(F.gelu(self.ffn.fc1(self.ffnNorm(x))))


class LM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.d = c["dModel"]
        self.embed = nn.Embedding(c["vocab"], self.d)
        self.positions = nn.Module()
        self.positions.weight = nn.Parameter(torch.zeros(c["maxLen"], self.d))
        self.layers = nn.ModuleList(Layer(self.d, c["heads"], c["ffn"]) for _ in range(c["layers"]))
        self.norm = nn.LayerNorm(self.d)

    def forward(self, ids, cache=None, offset=0):
        t = ids.shape[1]
        x = self.embed(ids) * math.sqrt(self.d) + self.positions.weight[offset:offset + t]
        for i, layer in enumerate(self.layers):
            x = layer(x, cache, i)
        return self.norm(x) @ self.embed.weight.t()  # tied output projection


def load(folder):
    man = json.load(open(os.path.join(folder, "manifest.json")))
    flat = torch.from_file(os.path.join(folder, "weights.f32"), size=sum(math.prod(s) for s in man["shapes"]), dtype=torch.float32)
    state, off = {}, 0
    for name, shape in zip(man["names"], man["shapes"]):
        n = math.prod(shape)
        state[name] = flat[off:off + n].view(*shape).clone()
        off += n
    arrays = {k: torch.from_file(os.path.join(folder, a["file"]), size=a["length"], dtype=torch.int32).long()
              for k, a in man["arrays"].items()}
    return man, state, arrays


def build(man, state):
    model = LM(man["config"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"torch_lm: weights do not match the model: missing {missing}, unexpected {unexpected}")
    return model


def blas_library():
    """The path of the BLAS this process loaded, or None (torch_env.blas_report says what it is)."""
    info = blas_report()
    return info["path"] if info else None


def median(xs):
    s = sorted(xs)
    h = len(s) // 2
    return s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2


def train(folder, b, t, warmup, rounds):
    man, state, arr = load(folder)
    ids, targets = arr["ids"].view(b, t), arr["targets"].view(b, t)
    out = {"version": torch.__version__, "threads_all": os.cpu_count() or 1}
    for label, threads in (("1t", 1), ("all", out["threads_all"])):
        set_threads(threads)
        model = build(man, state)
        out["params"] = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        losses = []

        def step():
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(ids).view(b * t, -1), targets.view(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            return (time.perf_counter() - t0) * 1e3

        for _ in range(warmup):
            step()
        with CpuTimer() as cpu:
            times = [step() for _ in range(rounds)]
        out[f"ms_{label}"] = median(times)
        out[f"times_{label}"] = times
        out[f"cpu_{label}"] = cpu.result
        out["losses"] = losses[:2]
    return out


@torch.no_grad()
def decode(folder, steps, warmup, runs):
    man, state, arr = load(folder)
    prompt = arr["prompt"].view(1, -1)
    model = build(man, state).eval()
    out = {"version": torch.__version__, "threads_all": os.cpu_count() or 1, "params": sum(p.numel() for p in model.parameters())}
    for label, threads in (("1t", 1), ("all", out["threads_all"])):
        set_threads(threads)
        step_ms, prefill = [], []

        def run():
            cache = {}
            t0 = time.perf_counter()
            tok = model(prompt, cache)[0, -1].argmax().item()
            p_ms = (time.perf_counter() - t0) * 1e3
            toks, ms = [tok], []
            for s in range(steps):
                t0 = time.perf_counter()
                tok = model(torch.tensor([[tok]]), cache, prompt.shape[1] + s)[0, -1].argmax().item()
                ms.append((time.perf_counter() - t0) * 1e3)
                toks.append(tok)
            return toks, ms, p_ms

        for _ in range(warmup):
            run()
        with CpuTimer() as cpu:
            for _ in range(runs):
                toks, ms, p_ms = run()
                step_ms += ms
                prefill.append(p_ms)
        out[f"ms_{label}"] = median(step_ms)
        out[f"prefill_ms_{label}"] = median(prefill)
        out[f"cpu_{label}"] = cpu.result
        out["tokens"] = toks
    return out


if __name__ == "__main__":
    mode, folder = sys.argv[1], sys.argv[2]
    nums = [int(x) for x in sys.argv[3:]]
    env = {"blas": blas_report(), "omp_wait_policy": wait_policy()}
    if mode == "train":
        print(json.dumps({**train(folder, *nums), **env}))
    elif mode == "decode":
        print(json.dumps({**decode(folder, *nums), **env}))
    else:
        raise SystemExit(f"torch_lm: mode must be train or decode, got {mode}")
