"""train_torch: Hasten's training recipe in PyTorch, for a GPU Hasten cannot use, and the result
back as a Hasten model directory.

    python3 interop/pytorch/train_torch.py --data .device-data/multi30k-de-en --out runs/ar-torch \\
        --kind transformer --lr 1e-3 --warmup 400 --max-steps 1800 --eval-every 400 --valid-bleu-limit 300

--data is a folder written by interop/pytorch/export-data.ts (token ids, the tokenizer, and per
model kind Hasten's default settings and their specs). Every Hasten setting of the task and kind
is a flag of the same name (`hasten train --help`: --d-model, --enc-layers, --max-tokens,
--label-smoothing, --seq-len, --order, ...); defaults are Hasten's (the task's, e.g. lm: lr 1e-3,
warmup 200, weight decay 0.01), values are checked with Hasten's specs, and the data settings
fixed by the export cannot be changed here. Flags of this script only:

    --kind K          transformer | markov (translation data), lm | glide (text data)
    --out DIR         the model directory to write (refused if it exists and is not empty, unless --force)
    --target DIR      glide: the target LM's model directory (its KV cache is what the draft reads)
    --device D        cuda | cpu (default: cuda when available)
    --precision P     fp32 | tf32 | bf16 (default tf32 on CUDA, fp32 on CPU; bf16: autocast)
    --dtype D         F16 | BF16 | F32 weights in the directory (default F16, as `hasten train` exports)
    --time-limit S    stop training after S seconds of wall time (from the start), then validate and save
    --bleu MODE       auto | on | off: validation BLEU (translation) with sacrebleu; auto = when
                      sacrebleu imports; on = decode even without it (hypotheses only)
    --no-save-at-eval save the directory at the end only (default: also after every validation,
                      so a killed job leaves its latest weights)
    --force           replace an existing --out

The recipe is nn/train (run.ts, trainer.ts) step for step:
  - AdamW (torch.optim.AdamW: p <- p(1 - lr*wd) - lr*m^/(sqrt(v^) + eps), as Hasten's adamw
    kernel) over every parameter, biases, LayerNorms and embeddings included (Hasten decays all);
    betas, eps and weight decay from the settings (translation: 0.9/0.98, 1e-9, 1e-4).
  - lr of update s (1-based): lr * min(s / warmup, sqrt(warmup / s)) (inverseSqrtLr).
  - the global gradient norm clipped to clipNorm (coefficient clipNorm / (norm + 1e-6), as clip.ts
    and torch's clip_grad_norm_).
  - the loss: mean label-smoothed cross-entropy over the batch's target tokens (ignore pad for
    translation), F.cross_entropy's label_smoothing being Hasten's.
  - batches: Hasten's Batcher and LMBatcher re-implemented bit for bit (mulberry32, the same
    Fisher-Yates shuffles, stable sort by padded length, greedy token-budget cuts, batch order
    shuffled per epoch, one generator per (seed, epoch)): the same batches in the same order as
    `hasten train` with the same seed.
  - validation: token-weighted label-smoothed loss and NLL over the validation set (translation:
    the pairs that fit maxLen/maxTokens), and BLEU of greedy translations of the first
    validBleuLimit sentences (sacrebleu's default BLEU is Hasten's corpusBleu).
  - init: the bridge's modules initialise as Hasten does (Xavier-uniform linear weights, zero biases,
    N(0, 1/D) embeddings and learned positions, LayerNorm 1/0); the values differ (torch's generator,
    seeded with --seed), the distributions do not. Dropout masks come from torch's generator too.
Written: DIR (config.json version 2 with a `training` record saying it was trained here,
tokenizer.json, model.safetensors), DIR/train-log.jsonl in Hasten's log.jsonl format, and
DIR/valid-hyps.txt (the last validation translations) when BLEU was computed. At --time-limit it
validates and saves; on SIGTERM/SIGINT it saves at once (a validation under way is dropped; as
Hasten's run, an interrupted run is not validated again), so a deadline never loses the weights.

Model kinds: "transformer" and "markov" are hasten_torch's (build_model, save_model_dir), "lm" and
"glide" hasten_lm's (build_lm_model, lm_loss, glide_train_logits, load_lm_dir for the target,
save_lm_dir); the glide draft is optimised alone, its target frozen, as in the glide task.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hasten_torch as ht  # noqa: E402

DEVICE_DATA_FORMAT = "hasten-device-data"
TRAINER = "interop/pytorch/train_torch.py"
M32 = 0xFFFFFFFF


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Hasten's random streams and batchers (core/rng.ts, nn/data/batcher.ts, nn/data/lm-batcher.ts)

def mulberry32(seed):
    """core/rng.ts mulberry32: floats in [0, 1), bit-identical to JavaScript's (all uint32 arithmetic)."""
    state = seed & M32

    def random():
        nonlocal state
        state = (state + 0x6D2B79F5) & M32
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & M32                 # Math.imul(t ^ t >>> 15, t | 1)
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32  # t ^= t + Math.imul(t ^ t >>> 7, t | 61)
        return ((t ^ (t >> 14)) & M32) / 4294967296
    return random


def shuffle_in_place(arr, random):
    """core/rng.ts shuffleInPlace (Fisher-Yates walking down)."""
    for i in range(len(arr) - 1, 0, -1):
        j = int(random() * (i + 1))
        arr[i], arr[j] = arr[j], arr[i]
    return arr


def mix_seed(seed, epoch):
    """(seed ^ Math.imul(epoch + 1, 0x9e3779b9)) >>> 0: one generator per (seed, epoch)."""
    return (seed ^ (((epoch + 1) * 0x9E3779B9) & M32)) & M32


class Batcher:
    """nn/data/batcher.ts: token-budget batches of (src, tgt) pairs. Holds the plan only; tensors
    are built by PairData.batch. State {seed, epoch, position} as Hasten's."""

    def __init__(self, src_len, tgt_len, max_tokens, seed=0, shuffle=True):
        self.pad_len = [max(1, s, t + 1) for s, t in zip(src_len, tgt_len)]
        for i, w in enumerate(self.pad_len):
            if w > max_tokens:
                raise ValueError(f"Batcher: example {i} alone needs {w} padded tokens but maxTokens is {max_tokens}")
        self.rank = [w * 65536 + min(s, 65535) for w, s in zip(self.pad_len, src_len)]
        self.max_tokens, self.seed, self.shuffle = max_tokens, seed, shuffle
        self.epoch = self.position = 0
        self._cached = None

    def plan_for(self, epoch):
        if self._cached and self._cached[0] == epoch:
            return self._cached[1]
        order = list(range(len(self.pad_len)))
        random = mulberry32(mix_seed(self.seed, epoch))
        if self.shuffle:
            shuffle_in_place(order, random)
        order.sort(key=self.rank.__getitem__)  # stable, as Array.prototype.sort
        plan, cur, width = [], [], 0
        for i in order:
            w = max(width, self.pad_len[i])
            if cur and (len(cur) + 1) * w > self.max_tokens:
                plan.append(cur)
                cur, width = [], 0
            cur.append(i)
            width = max(width, self.pad_len[i])
        if cur:
            plan.append(cur)
        if self.shuffle:
            shuffle_in_place(plan, random)
        self._cached = (epoch, plan)
        return plan

    @property
    def batches_in_epoch(self):
        return len(self.plan_for(self.epoch))

    def next(self):
        """Indices of the next batch (after the last batch of an epoch, the first of the next)."""
        if self.position >= len(self.plan_for(self.epoch)):
            self.epoch += 1
            self.position = 0
        b = self.plan_for(self.epoch)[self.position]
        self.position += 1
        return b

    def epochs_done(self):
        return self.epoch + (1 if self.position >= self.batches_in_epoch else 0)


class LMBatcher:
    """nn/data/lm-batcher.ts: windows of seqLen + 1 tokens at stride seqLen, in a seeded random
    order per epoch, batch_size at a time (the last batch of an epoch may be smaller)."""

    def __init__(self, stream_len, seq_len, batch_size, seed=0, shuffle=True):
        self.windows = (stream_len - 1) // seq_len
        if self.windows < 1:
            raise ValueError(f"LMBatcher: a stream of {stream_len} tokens holds no window of {seq_len} + 1 tokens")
        self.seq_len, self.batch_size, self.seed, self.shuffle = seq_len, batch_size, seed, shuffle
        self.epoch = self.position = 0
        self._cached = None

    @property
    def batches_in_epoch(self):
        return -(-self.windows // self.batch_size)

    def order(self):
        if self._cached and self._cached[0] == self.epoch:
            return self._cached[1]
        order = list(range(self.windows))
        if self.shuffle:
            shuffle_in_place(order, mulberry32(mix_seed(self.seed, self.epoch)))
        self._cached = (self.epoch, order)
        return order

    def next(self):
        """Window numbers of the next batch."""
        if self.position >= self.batches_in_epoch:
            self.epoch += 1
            self.position = 0
        a = self.position * self.batch_size
        w = self.order()[a:min(self.windows, a + self.batch_size)]
        self.position += 1
        return w

    def epochs_done(self):
        return self.epoch + (1 if self.position >= self.batches_in_epoch else 0)


# ---------------------------------------------------------------------------------------------
# The exported data

def read_ids(path, dtype):
    """A little-endian uint16 or int32 id file -> int64 tensor (torch < 2.3 has no uint16)."""
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    if not buf:
        return torch.zeros(0, dtype=torch.long)
    if dtype == "uint16":
        return torch.frombuffer(buf, dtype=torch.int16).long() & 0xFFFF
    if dtype == "int32":
        return torch.frombuffer(buf, dtype=torch.int32).long()
    raise ValueError(f"read_ids: unknown id dtype {dtype!r}")


def read_u32(path):
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    return (torch.frombuffer(buf, dtype=torch.int32).long() & M32) if buf else torch.zeros(0, dtype=torch.long)


def read_meta(root):
    path = os.path.join(root, "meta.json")
    if not os.path.exists(path):
        raise UsageError(f"--data: {path} is missing (export the data with interop/pytorch/export-data.ts)")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != DEVICE_DATA_FORMAT or meta.get("version") != 1:
        raise UsageError(f'--data: {path} is not a {DEVICE_DATA_FORMAT} version 1 folder')
    return meta


class PairData:
    """A split of parallel sentences on the device: ids back to back, offsets and lengths."""

    def __init__(self, root, split, dtype, device):
        self.src, self.tgt = (read_ids(os.path.join(root, f"{split}.{s}.ids"), dtype) for s in ("src", "tgt"))
        self.src_len, self.tgt_len = (read_u32(os.path.join(root, f"{split}.{s}.len")) for s in ("src", "tgt"))
        for side, ids, n in (("src", self.src, self.src_len), ("tgt", self.tgt, self.tgt_len)):
            if int(n.sum()) != ids.numel():
                raise ValueError(f"{root}: {split}.{side}.len sums to {int(n.sum())} tokens but {split}.{side}.ids holds {ids.numel()}")
        if self.src_len.numel() != self.tgt_len.numel():
            raise ValueError(f"{root}: {split} has {self.src_len.numel()} sources but {self.tgt_len.numel()} targets")
        self.src_off = torch.cumsum(self.src_len, 0) - self.src_len
        self.tgt_off = torch.cumsum(self.tgt_len, 0) - self.tgt_len
        self.device = device
        self._dev = {k: getattr(self, k).to(device) for k in ("src", "tgt", "src_len", "tgt_len", "src_off", "tgt_off")}

    def __len__(self):
        return self.src_len.numel()

    def subset(self, keep):
        """Keep the pairs at indices `keep` (a list), in that order."""
        idx = torch.tensor(keep, dtype=torch.long)
        out = object.__new__(PairData)
        out.src_len, out.tgt_len = self.src_len[idx], self.tgt_len[idx]
        s = [self.src[o:o + n] for o, n in zip(self.src_off[idx].tolist(), out.src_len.tolist())]
        t = [self.tgt[o:o + n] for o, n in zip(self.tgt_off[idx].tolist(), out.tgt_len.tolist())]
        out.src = torch.cat(s) if s else torch.zeros(0, dtype=torch.long)
        out.tgt = torch.cat(t) if t else torch.zeros(0, dtype=torch.long)
        out.src_off = torch.cumsum(out.src_len, 0) - out.src_len
        out.tgt_off = torch.cumsum(out.tgt_len, 0) - out.tgt_len
        out.device = self.device
        out._dev = {k: getattr(out, k).to(self.device) for k in ("src", "tgt", "src_len", "tgt_len", "src_off", "tgt_off")}
        return out

    def sources(self, n=None):
        n = len(self) if n is None else n
        return [self.src[o:o + k].tolist() for o, k in zip(self.src_off[:n].tolist(), self.src_len[:n].tolist())]

    def batch(self, indices, pad, bos, eos):
        """Hasten's Batch for these pairs: src [B, S], tgt_in = bos y [B, T], tgt_out = y eos [B, T],
        right-padded; S = max(1, longest source), T = longest target + 1; and the target token count."""
        d = self._dev
        idx = torch.tensor(indices, dtype=torch.long, device=self.device)
        sl, tl, so, to = d["src_len"][idx], d["tgt_len"][idx], d["src_off"][idx], d["tgt_off"][idx]
        S = max(1, int(self.src_len[indices].max()))
        T = int(self.tgt_len[indices].max()) + 1
        src = _gather_rows(d["src"], so, sl, S, pad)
        y = _gather_rows(d["tgt"], to, tl, T, pad)  # y1 ... ym then pad   [B, T]
        b = len(indices)
        tgt_in = torch.cat([torch.full((b, 1), bos, dtype=torch.long, device=self.device), y[:, :T - 1]], 1)
        tgt_out = y.scatter(1, tl.view(-1, 1), eos)  # eos right after the last target token
        return src, tgt_in, tgt_out, int(self.tgt_len[indices].sum()) + b


def _gather_rows(flat, off, length, width, pad):
    """[B, width]: row b holds flat[off[b] : off[b] + length[b]], then pad."""
    j = torch.arange(width, device=flat.device).view(1, -1)
    inside = j < length.view(-1, 1)
    pos = (off.view(-1, 1) + j).clamp(max=max(0, flat.numel() - 1))
    rows = flat[pos] if flat.numel() else torch.zeros(pos.shape, dtype=torch.long, device=flat.device)
    return torch.where(inside, rows, torch.full_like(rows, pad))


# ---------------------------------------------------------------------------------------------
# Settings: Hasten's keys, defaults and specs from meta.json, overridden by flags

OWN_FLAGS = {"data", "out", "kind", "target", "device", "precision", "dtype", "time-limit", "bleu", "save-at-eval", "force", "help"}
# Hasten settings that mean nothing here (the backend, checkpoints): accepted, recorded, unused.
INERT = {"backend", "checkpointEvery"}


def camel(flag):
    parts = flag.split("-")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def kebab(key):
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in key)


def check_option(spec, raw, where):
    """nn/options.ts checkOption: a value from a flag's text (or JSON) checked against its spec."""
    kind = spec["kind"]
    bad = UsageError(f"{where}: expected {describe_spec(spec)}, got {json.dumps(raw)}")
    if kind in ("int", "number"):
        if isinstance(raw, bool):
            raise bad
        if isinstance(raw, str):
            try:
                v = float(raw.strip())
            except ValueError:
                raise bad from None
        elif isinstance(raw, (int, float)):
            v = float(raw)
        else:
            raise bad
        if not math.isfinite(v) or (kind == "int" and v != int(v)):
            raise bad
        if (v <= spec["min"]) if (kind == "number" and spec.get("above")) else (v < spec["min"]):
            raise bad
        if spec.get("max") is not None and v > spec["max"]:
            raise bad
        return int(v) if kind == "int" else v
    if kind == "string":
        if not isinstance(raw, str) or (spec.get("nonEmpty") and raw == ""):
            raise bad
        return raw
    if kind == "enum":
        if raw not in spec["values"]:
            raise bad
        return raw
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "1", "yes"):
            return True
        if isinstance(raw, str) and raw.lower() in ("false", "0", "no"):
            return False
        raise bad
    raise bad


def describe_spec(s):
    k = s["kind"]
    if k == "int":
        return f"an integer >= {s['min']}" if s.get("max") is None else f"an integer in [{s['min']}, {s['max']}]"
    if k == "number":
        return f"a number {'>' if s.get('above') else '>='} {s['min']}" + ("" if s.get("max") is None else f" and <= {s['max']}")
    if k == "enum":
        return "one of " + ", ".join(s["values"])
    return {"string": "a string", "bool": "true or false"}[k]


def parse_args(argv):
    """--key value / --key=value / --flag / --no-flag -> (own flags, Hasten settings as raw text)."""
    own, settings = {}, {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            raise UsageError(f"unexpected argument {a!r}; options look like --key value or --key=value")
        name, eq, inline = a[2:].partition("=")
        name = kebab(name) if any(c.isupper() for c in name) else name
        is_bool = name in ("force", "help", "save-at-eval") or (name.startswith("no-") and not eq)
        if eq:
            value = inline
        elif is_bool:
            value = None
        elif i + 1 < len(argv):
            i += 1
            value = argv[i]
        else:
            raise UsageError(f"--{name} needs a value")
        if name in OWN_FLAGS or (name.startswith("no-") and name[3:] in OWN_FLAGS):
            own[name] = value
        else:
            settings[name] = value
        i += 1
    return own, settings


def resolve_config(meta, kind, raw):
    """Hasten's TrainConfig for this kind: the export's defaults, flags checked by Hasten's specs."""
    if kind not in meta["defaults"]:
        raise UsageError(f"--kind {kind}: the {meta['task']} data trains {', '.join(meta['defaults'])}")
    c = dict(meta["defaults"][kind])
    specs = meta["options"][kind]
    fixed = set(meta["exportConfig"])
    for flag, value in raw.items():
        neg = flag.startswith("no-") and value is None
        key = camel(flag[3:] if neg else flag)
        if key not in specs or key in ("task", "model", "out"):
            near = sorted(kebab(k) for k in specs if k not in ("task", "model", "out"))
            raise UsageError(f"unknown option --{flag} for kind {kind}; settings: {' '.join('--' + n for n in near)}")
        spec = specs[key]
        if value is None and spec["kind"] == "bool":
            v = not neg
        elif value is None:
            raise UsageError(f"--{flag} needs a value")
        else:
            v = check_option(spec, value, f"--{kebab(key)}")
        if key in fixed and v != c[key]:
            raise UsageError(f"--{kebab(key)}: the data was exported with {kebab(key)} {json.dumps(c[key])}; export again to change it")
        c[key] = v
    problems = []
    if c["maxSteps"] == 0 and c["maxEpochs"] == 0:
        problems.append("--max-steps and --max-epochs are both 0: training would never stop")
    if c["dModel"] % c["heads"]:
        problems.append(f"--d-model {c['dModel']} must be divisible by --heads {c['heads']}")
    if c.get("positions") == "sinusoidal" and c["dModel"] % 2:
        problems.append(f"--d-model {c['dModel']} must be even for sinusoidal --positions")
    task = meta["tasks"][kind]
    if task == "translation":  # parallelProblems
        mst = c["maxSentenceTokens"]
        if mst + 1 > c["maxLen"]:
            problems.append(f"--max-sentence-tokens {mst} needs --max-len >= {mst + 1}, got {c['maxLen']}")
        if mst + 1 > c["maxTokens"]:
            problems.append(f"--max-sentence-tokens {mst} needs --max-tokens >= {mst + 1}, got {c['maxTokens']}")
    else:
        T = c["seqLen"]
        if c["maxLen"] > 0 and T > c["maxLen"]:
            problems.append(f"--seq-len {T} needs --max-len >= {T}, got {c['maxLen']}")
        if T > c["maxTokens"]:
            problems.append(f"--seq-len {T} needs --max-tokens >= {T} (a batch holds maxTokens / seqLen sequences), got {c['maxTokens']}")
    if task == "glide":
        if c["gamma"] > c["blockSize"]:
            problems.append(f"--gamma {c['gamma']} exceeds --block-size {c['blockSize']}")
        bins = str(c["capeBins"]).split(",")
        if len(bins) != 10 or not all(b.strip().isdigit() and 1 <= int(b) <= 64 for b in bins):
            problems.append(f"--cape-bins must be 10 comma-separated integers in [1, 64], got {c['capeBins']!r}")
    if problems:
        raise UsageError("bad configuration:\n  " + "\n  ".join(problems))
    return c


# ---------------------------------------------------------------------------------------------
# Model kinds: the Transformer is in this bridge; the others come with hasten_torch.build_model
# (markov) and hasten_lm (lm, glide) once merged.

def _hasten_lm():
    try:
        import hasten_lm  # noqa: PLC0415 (the lm/glide half of the bridge)
    except ImportError as e:
        raise UsageError(f"kinds lm and glide need interop/pytorch/hasten_lm.py (build_lm_model, lm_loss, glide_train_logits, save_lm_dir), which this checkout lacks ({e})") from None
    return hasten_lm


def model_config(kind, c, V, pad, target=None):
    """The kind's config from the run's settings, as each kind's fromOptions builds it."""
    if kind in ("transformer", "markov"):
        mc = ht.transformer_config(
            srcVocab=V, tgtVocab=V, dModel=c["dModel"], heads=c["heads"], ffn=c["ffn"], encLayers=c["encLayers"],
            decLayers=c["decLayers"], dropout=c["dropout"], attnDropout=c["attnDropout"], activation=c["activation"],
            maxLen=c["maxLen"], positions=c["positions"], tieEmbeddings=c["tieEmbeddings"], tieOutput=True, padId=pad, seed=c["seed"])
        if kind == "markov":
            mc = {**mc, "order": c["order"], "variant": c["variant"]}
        return mc
    common = {k: c[k] for k in ("dModel", "heads", "ffn", "layers", "dropout", "attnDropout", "activation", "positions", "tieEmbeddings")}
    if kind == "lm":
        return {"vocab": V, **common, "maxLen": c["maxLen"], "window": c["window"] if c["window"] > 0 else None, "seed": c["seed"]}
    if kind == "glide":
        t = target["config"]
        if t["maxLen"] < c["seqLen"]:
            raise UsageError(f"--seq-len {c['seqLen']} exceeds the target's context of {t['maxLen']} positions")
        if t["vocab"] != V:
            raise UsageError(f"--target: the target's vocabulary has {t['vocab']} tokens but the data's tokenizer {V}; a draft uses its target's tokenizer")
        return {"vocab": V, **common, "maxLen": c["maxLen"] if c["maxLen"] > 0 else t["maxLen"],
                "targetLayers": t["layers"], "targetHeads": t["heads"], "targetHeadDim": t["dModel"] // t["heads"], "seed": c["seed"]}
    raise UsageError(f"unknown kind {kind!r}")


def build_model(kind, config):
    if kind in ("transformer", "markov"):
        if not hasattr(ht, "build_model"):  # a bridge from before the model kinds: the Transformer only
            if kind == "transformer":
                return ht.Transformer(config)
            raise UsageError(f"kind {kind} needs hasten_torch.build_model (the bridge's Markov Transformer), which this checkout's bridge lacks")
        return ht.build_model(kind, config)
    return _hasten_lm().build_lm_model(kind, config)


def load_target(path, device):
    """glide: the frozen target LM (kind lm) from its model directory."""
    if not os.path.exists(os.path.join(path, "config.json")):
        raise UsageError(f"--target: {os.path.join(path, 'config.json')} is missing; name the model directory of the target LM")
    hl = _hasten_lm()
    model, cfg = hl.load_lm_dir(path, device=device)
    if cfg["kind"] != "lm":
        raise UsageError(f"--target: {path} must hold a model of kind lm (a GliDe draft reads its KV cache), got kind {cfg['kind']!r}")
    for p in model.parameters():
        p.requires_grad_(False)  # frozen: no gradient, not in the optimizer
    return {"model": model.eval(), "dir": os.path.abspath(path), "config": model.config, "sha256": hl.file_sha256(path),
            "tokenizer": os.path.join(path, "tokenizer.json")}


# ---------------------------------------------------------------------------------------------
# Objectives: (mean loss to differentiate, [summed smoothed loss, summed NLL], target tokens)

def ce_sums(logits, target, ls, ignore_index=-100):
    flat, y = logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1)
    return (F.cross_entropy(flat, y, ignore_index=ignore_index, label_smoothing=ls, reduction="sum"),
            F.cross_entropy(flat, y, ignore_index=ignore_index, reduction="sum"))


class TranslationObjective:
    def __init__(self, data, valid, c, tok, device):
        self.data, self.ls = data, c["labelSmoothing"]
        self.pad, self.bos, self.eos = tok["padId"], tok["bosId"], tok["eosId"]
        self.train = Batcher(data.src_len.tolist(), data.tgt_len.tolist(), c["maxTokens"], seed=c["seed"])
        vb = Batcher(valid.src_len.tolist(), valid.tgt_len.tolist(), c["maxTokens"], shuffle=False)
        self.valid = [valid.batch(ix, self.pad, self.bos, self.eos) for ix in vb.plan_for(0)]

    def next(self):
        return self.data.batch(self.train.next(), self.pad, self.bos, self.eos)

    def loss(self, model, b):
        src, tgt_in, tgt_out, _ = b
        logits = model(src, tgt_in)  # [B, T, V]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tgt_out.reshape(-1), ignore_index=self.pad, label_smoothing=self.ls)

    def valid_sums(self, model, b):
        src, tgt_in, tgt_out, _ = b
        return ce_sums(model(src, tgt_in), tgt_out, self.ls, self.pad)

    @staticmethod
    def tokens(b):
        return b[3]


class LMObjective:
    """lm and glide: windows of the token stream; glide adds the frozen target's KV cache."""

    def __init__(self, train_stream, valid_stream, c, device, target=None):
        T = c["seqLen"]
        B = max(1, c["maxTokens"] // T)
        if valid_stream.numel() < T + 1:
            raise UsageError(f"the validation text is {valid_stream.numel()} tokens, fewer than one --seq-len + 1 = {T + 1}")
        self.T, self.ls, self.target, self.block = T, c["labelSmoothing"], target, c.get("blockSize")
        self.train_stream, self.valid_stream = train_stream.to(device), valid_stream.to(device)
        self.train = LMBatcher(train_stream.numel(), T, B, seed=c["seed"])
        vb = LMBatcher(valid_stream.numel(), T, B, shuffle=False)
        self.valid = [self._windows(self.valid_stream, vb.next()) for _ in range(vb.batches_in_epoch)]

    def _windows(self, stream, windows):
        starts = torch.tensor(windows, dtype=torch.long, device=stream.device) * self.T
        w = stream[starts.view(-1, 1) + torch.arange(self.T + 1, device=stream.device).view(1, -1)]  # [B, T+1]
        return w[:, :-1], w[:, 1:]

    def next(self):
        return self._windows(self.train_stream, self.train.next())

    def _logits(self, model, x):
        if self.target is None:
            return model(x)  # [B, T, V]
        # glide: the target runs over x (eval, no gradient), the draft glimpses its keys and values
        return _hasten_lm().glide_train_logits(model, self.target["model"], x, block_size=self.block)

    def loss(self, model, b):
        x, y = b
        logits = self._logits(model, x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), label_smoothing=self.ls)

    def valid_sums(self, model, b):
        x, y = b
        return ce_sums(self._logits(model, x), y, self.ls)

    @staticmethod
    def tokens(b):
        return b[1].numel()


# ---------------------------------------------------------------------------------------------
# Validation BLEU (translation): greedy decoding as the translate hook does, sacrebleu's BLEU

def bleu_of(model, valid_all, refs, c, tokens, stop, batch_size=128):
    """(BLEU or None without sacrebleu, hypotheses), or None when a stop signal came meanwhile."""
    n = len(refs) if c["validBleuLimit"] == 0 else min(c["validBleuLimit"], len(refs))
    limit = model.config["maxLen"]
    sources = [s[:limit] for s in valid_all.sources(n)]  # translateLines truncates to maxLen
    hyps = []
    for i in range(0, n, 4 * batch_size):  # in chunks, so that SIGTERM need not wait for all of it
        if stop.signal:
            return None
        hyps += ht.decode_corpus(model, sources[i:i + 4 * batch_size], batch_size=batch_size, max_len_a=c["maxLenA"], max_len_b=c["maxLenB"])
    texts = [_one_line(ht.decode_ids(tokens, h[0])) for h in hyps]
    try:
        import sacrebleu  # noqa: PLC0415
    except ImportError:
        return None, texts
    return sacrebleu.corpus_bleu(texts, [refs[:n]]).score, texts


def _one_line(s):
    # decoding/corpus.ts toOneLine: characters that end a line for some reader become spaces
    return "".join(" " if ch in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029" else ch for ch in s)


# ---------------------------------------------------------------------------------------------
# The run

def inverse_sqrt_lr(step, peak, warmup):
    """nn/optim/schedules.ts inverseSqrtLr: linear warm-up, then ∝ 1/√step."""
    if warmup == 0:
        return peak / math.sqrt(step)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def set_tf32(on):
    """TF32 for float32 matmuls (cuBLAS) or not. torch >= 2.9 has per-backend settings and refuses
    a mix of them with the legacy ones, so only the new one is set where it exists."""
    m = torch.backends.cuda.matmul
    if hasattr(m, "fp32_precision"):
        m.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.set_float32_matmul_precision("high" if on else "highest")


class Stop:
    def __init__(self):
        self.signal = None

    def __call__(self, signum, _frame):
        self.signal = signal.Signals(signum).name


def device_name(device):
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def main(argv):
    own, raw = parse_args(argv)
    if "help" in own:
        print(__doc__)
        return 0
    for k in ("data", "out", "kind"):
        if not own.get(k):
            raise UsageError(f"--{k} is required (see --help)")
    meta = read_meta(own["data"])
    kind = own["kind"]
    c = resolve_config(meta, kind, raw)
    task = meta["tasks"][kind]
    if task == "glide":
        c["target"] = own.get("target") or c.get("target") or ""
        if not c["target"]:
            raise UsageError("--target must name the target LM's model directory (the draft reads its KV cache)")
    out = os.path.abspath(own["out"])
    if os.path.exists(out) and os.listdir(out) and "force" not in own:
        raise UsageError(f"--out {out} exists and is not empty (pass --force to replace it)")
    if "force" in own and os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, "config.json")):
        raise UsageError(f"--out {out} is not a model directory; refusing to replace it even with --force")
    dev_name = own.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev_name not in ("cuda", "cpu") and not dev_name.startswith("cuda:"):
        raise UsageError(f"--device must be cuda or cpu, got {dev_name!r}")
    if dev_name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA device")
    device = torch.device(dev_name)
    precision = own.get("precision") or ("tf32" if device.type == "cuda" else "fp32")
    if precision not in ("fp32", "tf32", "bf16"):
        raise UsageError(f"--precision must be fp32, tf32 or bf16, got {precision!r}")
    dtype = own.get("dtype") or "F16"
    if dtype not in ("F16", "BF16", "F32"):
        raise UsageError(f"--dtype must be F16, BF16 or F32, got {dtype!r}")
    time_limit = float(own["time-limit"]) if own.get("time-limit") else math.inf
    bleu_mode = own.get("bleu") or "auto"
    if bleu_mode not in ("auto", "on", "off"):
        raise UsageError(f"--bleu must be auto, on or off, got {bleu_mode!r}")
    save_at_eval = "no-save-at-eval" not in own

    t0 = time.time()
    stop = Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    torch.manual_seed(c["seed"])
    if c["threads"] > 0:
        torch.set_num_threads(c["threads"])
    elif device.type == "cuda":
        torch.set_num_threads(2)  # many jobs share the machine's cores; the GPU does the work
    if device.type == "cuda":
        set_tf32(precision == "tf32")

    root = own["data"]
    tok = meta["tokenizer"]
    tok_path = os.path.join(root, tok["file"])
    with open(tok_path, encoding="utf-8") as f:
        tok_json = json.load(f)
    V, pad = tok["vocabSize"], tok["padId"]
    target = load_target(c["target"], device) if task == "glide" else None
    if target is not None:
        with open(target["tokenizer"], encoding="utf-8") as f:
            if json.load(f) != tok_json:
                raise UsageError(f"--target: {target['tokenizer']} is not the data's tokenizer; a draft uses its target's tokenizer")
    mc = model_config(kind, c, V, pad, target)
    model = build_model(kind, mc)
    if c["init"]:
        # Fine-tuning (`init`): the weights of a model directory of the same kind and shape.
        with open(os.path.join(c["init"], "tokenizer.json"), encoding="utf-8") as f:
            if json.load(f) != tok_json:
                raise UsageError(f"--init: {c['init']}/tokenizer.json is not the data's tokenizer (export the data with --tokenizer {c['init']}/tokenizer.json)")
        state, _ = ht.read_safetensors(os.path.join(c["init"], "model.safetensors"))
        model.load_state_dict({k: v.float() for k, v in state.items()})
    model.to(device).train()
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)

    if task == "translation":
        train_data = PairData(root, "train", meta["idDtype"], device)
        valid_all = PairData(root, "valid", meta["idDtype"], device)
        fit = min(c["maxLen"] - 1, c["maxTokens"] - 1)  # validPairsThatFit
        keep = [i for i, (s, t) in enumerate(zip(valid_all.src_len.tolist(), valid_all.tgt_len.tolist())) if s <= fit and t <= fit]
        if not keep:
            raise UsageError(f"no validation pair fits --max-len {c['maxLen']} / --max-tokens {c['maxTokens']}")
        obj = TranslationObjective(train_data, valid_all.subset(keep), c, tok, device)
        with open(os.path.join(root, "valid.ref.txt"), encoding="utf-8") as f:
            refs = f.read().split("\n")[:len(valid_all)]
        describe = f"{len(train_data)} training pairs, {len(keep)} validation pairs"
        if bleu_mode == "auto":
            try:
                import sacrebleu  # noqa: F401, PLC0415
            except ImportError:
                bleu_mode = "off"
    else:
        obj = LMObjective(read_ids(os.path.join(root, "train.ids"), meta["idDtype"]),
                          read_ids(os.path.join(root, "valid.ids"), meta["idDtype"]), c, device, target)
        describe = f"{obj.train_stream.numel()} training tokens in {obj.train.windows} sequences of {obj.T}; {obj.valid_stream.numel()} validation tokens"
        bleu_mode = "off"
    tokens_list = ht.tokenizer_tokens(tok_json)

    opt_kw = dict(lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"], weight_decay=c["weightDecay"])
    try:
        optimizer = torch.optim.AdamW(params, **opt_kw, **({"fused": True} if device.type == "cuda" else {}))
    except (TypeError, RuntimeError):
        optimizer = torch.optim.AdamW(params, **opt_kw)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if precision == "bf16" and device.type == "cuda" else None

    log = []
    elapsed = lambda: time.time() - t0  # noqa: E731

    def emit(entry, text=None):
        log.append(entry)
        print(text if text is not None else json.dumps(entry), flush=True)

    total = c["maxSteps"] if c["maxSteps"] > 0 else c["maxEpochs"] * obj.train.batches_in_epoch
    detail = (f"task {task}, model {kind}: {describe}, vocabulary {V}, {n_params} parameters, "
              f"torch {torch.__version__} on {device_name(device)}, {precision}")
    emit({"kind": "event", "step": 0, "event": "start", "seconds": elapsed(), "detail": detail}, f"training {out}: {detail}; {total} steps")

    def run(fn, *a):
        if autocast:
            with autocast():
                return fn(*a)
        return fn(*a)

    state = {"step": 0, "best": None, "lastValid": None, "lastValidStep": None, "bleuSentences": 0, "hyps": None}

    def evaluate():
        """Validates and records; gives up (returns False) when a stop signal comes meanwhile:
        the job is being stopped, and saving its weights matters more than a number."""
        model.eval()
        s_loss = s_nll = 0.0
        n = 0
        try:
            with torch.no_grad():
                for b in obj.valid:
                    if stop.signal:
                        return False
                    a, z = run(obj.valid_sums, model, b)
                    s_loss += float(a)
                    s_nll += float(z)
                    n += obj.tokens(b)
                bleu = None
                if bleu_mode != "off":
                    r = bleu_of(model, valid_all, refs, c, tokens_list, stop)
                    if r is None:
                        return False
                    bleu, hyps = r
                    state["hyps"], state["bleuSentences"] = hyps, len(hyps)
        finally:
            model.train()
        v = {"loss": s_loss / n, "nll": s_nll / n, "bleu": bleu}
        step = state["step"]
        state["lastValid"], state["lastValidStep"] = v, step
        emit({"kind": "valid", "step": step, "loss": v["loss"], "nll": v["nll"], "bleu": bleu, "bleuSentences": state["bleuSentences"] if bleu_mode != "off" else 0, "seconds": elapsed()},
             f"valid @ {step}: loss {v['loss']:.3f}, nll {v['nll']:.3f} (ppl {math.exp(min(v['nll'], 50)):.2f})" + ("" if bleu is None else f", BLEU {bleu:.2f} on {state['bleuSentences']} sentences"))
        metric = "bleu" if c["bestBy"] == "bleu" and bleu is not None else "loss"
        value = bleu if metric == "bleu" else v["nll"]
        best = state["best"]
        if best is None or best["metric"] != metric or (value > best["value"] if metric == "bleu" else value < best["value"]):
            state["best"] = {"metric": metric, "value": value, "step": step}
            if c["export"] == "best":
                state["bestWeights"] = {k: t.detach().clone() for k, t in model.state_dict().items()}
            emit({"kind": "event", "step": step, "event": "best", "detail": f"{metric} {value:.4f}"})
        return True

    def save(stopped_by, final):
        weights = "final"
        if final and c["export"] == "best" and state.get("bestWeights") is not None:
            model.load_state_dict(state["bestWeights"])
            weights = f"best (step {state['best']['step']})"
        training = {
            "steps": state["step"], "weights": weights, "best": state["best"], "lastValid": state["lastValid"], "lastValidStep": state["lastValidStep"],
            "config": {**c, "out": out},
            "trainer": f"PyTorch via the Hasten bridge ({TRAINER}, hasten_torch)",
            "device": device_name(device), "torch": torch.__version__, "precision": precision, "weightsDtype": dtype,
            "seconds": round(elapsed(), 1), "stoppedBy": stopped_by,
            "data": {"name": meta["name"], "trainDataSha256": meta["trainDataSha256"], "tokenizerSha256": tok["sha256"], "limit": meta.get("limit")},
        }
        if target is not None:
            training["targetSha256"] = target["sha256"]
        save_dir(kind, task, model, c, meta, tok_path, out, dtype, training, target)
        with open(os.path.join(out, "train-log.jsonl"), "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(e) + "\n" for e in log))
        if state["hyps"] is not None:
            with open(os.path.join(out, "valid-hyps.txt"), "w", encoding="utf-8") as f:
                f.write("".join(h + "\n" for h in state["hyps"]))

    iv = {"tokens": 0, "steps": 0, "t0": time.time()}
    loss_acc = torch.zeros((), device=device)
    norm_acc = torch.zeros((), device=device)
    stopped_by = "maxSteps"
    last_eval = -1
    while True:
        if c["maxSteps"] > 0 and state["step"] >= c["maxSteps"]:
            stopped_by = "maxSteps"
            break
        if c["maxEpochs"] > 0 and obj.train.epochs_done() >= c["maxEpochs"]:
            stopped_by = "maxEpochs"
            break
        if stop.signal:
            stopped_by = f"signal {stop.signal}"
            break
        if elapsed() >= time_limit:
            stopped_by = "timeLimit"
            break
        b = obj.next()
        epoch = obj.train.epoch + 1
        step = state["step"] + 1
        lr = inverse_sqrt_lr(step, c["lr"], c["warmup"])
        for g in optimizer.param_groups:
            g["lr"] = lr
        loss = run(obj.loss, model, b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ntok = obj.tokens(b)
        if c["clipNorm"] > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, c["clipNorm"])
            norm_acc += norm.detach()
        optimizer.step()
        state["step"] = step
        loss_acc += loss.detach() * ntok
        iv["tokens"] += ntok
        iv["steps"] += 1
        logged = step % c["logEvery"] == 0
        if logged:
            # One read-back per interval (not per step): the loss and norm sums of the interval.
            lsum, nsum = float(loss_acc), float(norm_acc)
            if not (math.isfinite(lsum) and math.isfinite(nsum)):
                emit({"kind": "event", "step": step, "event": "interrupted", "seconds": elapsed(), "detail": f"training diverged: loss {lsum / iv['tokens']}, gradient norm {nsum / iv['steps']}"})
                if state["lastValid"] is None:
                    raise RuntimeError(f"training diverged by step {step} (lower --lr or raise --warmup); nothing saved")
                raise RuntimeError(f"training diverged by step {step} (lower --lr or raise --warmup); {out} holds the weights of the last validation")
        if logged:
            tps = iv["tokens"] / max(time.time() - iv["t0"], 1e-9)  # wall time of the interval (read-back included)
            e = {"kind": "train", "step": step, "epoch": epoch, "loss": lsum / iv["tokens"], "lr": lr,
                 "gradNorm": nsum / iv["steps"] if c["clipNorm"] > 0 else None, "tokens": iv["tokens"], "tokensPerSec": tps, "seconds": elapsed()}
            emit(e, f"step {step}/{total} epoch {epoch}: loss {e['loss']:.4f}, lr {lr:.3g}"
                    + ("" if e["gradNorm"] is None else f", |g| {e['gradNorm']:.3f}") + f", {tps:,.0f} tok/s, {elapsed():.0f}s")
            loss_acc.zero_()
            norm_acc.zero_()
        if c["evalEvery"] > 0 and step % c["evalEvery"] == 0 and evaluate():
            last_eval = step
            if save_at_eval:
                save("running", False)
        if logged:
            iv = {"tokens": 0, "steps": 0, "t0": time.time()}  # after validation: its time is not training time

    # As Hasten's run: a final validation unless the run was interrupted (a signal: save at once).
    if last_eval != state["step"] and state["step"] > 0 and not stopped_by.startswith("signal"):
        evaluate()
    if state["step"] == 0:
        raise RuntimeError(f"stopped ({stopped_by}) before the first step; nothing saved")
    emit({"kind": "event", "step": state["step"], "event": "done", "seconds": elapsed(), "detail": f"stopped by {stopped_by}; model exported to {out} (PyTorch, {device_name(device)})"},
         f"done at step {state['step']} ({stopped_by}) in {elapsed():.0f}s: model in {out}")
    save(stopped_by, True)
    print(json.dumps({"summary": {"out": out, "kind": kind, "steps": state["step"], "stoppedBy": stopped_by, "seconds": round(elapsed(), 1),
                                  "lastValid": state["lastValid"], "best": state["best"], "parameters": n_params}}), flush=True)
    return 0


def save_dir(kind, task, model, c, meta, tok_path, out, dtype, training, target):
    """The model directory, through the bridge: hasten_torch for encoder-decoders, hasten_lm for
    lm/glide. `decoding` holds the task's defaults (exportInfo)."""
    if task == "translation":
        ec = meta["exportConfig"]
        cfg = {"task": "translation", "src": ec["src"], "tgt": ec["tgt"], "training": training,
               "decoding": {"maxLenA": c["maxLenA"], "maxLenB": c["maxLenB"], "beam": c["beam"], "lengthPenalty": c["lengthPenalty"]}}
        ht.save_model_dir(model, cfg, out, tokenizer=tok_path, dtype=dtype)
        return
    if task == "lm":
        decoding = {"maxNewTokens": c["maxNewTokens"], "temperature": c["temperature"], "topP": c["topP"]}
    else:  # decoding.targetSha256 comes from the target directory
        decoding = {"method": c["method"], "gamma": c["gamma"], "capeBins": c["capeBins"], "blockSize": c["blockSize"]}
    _hasten_lm().save_lm_dir(model, None, out, tokenizer=tok_path, kind=kind, task=task, decoding=decoding, training=training, dtype=dtype,
                             target=target["dir"] if target is not None else None)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except UsageError as e:
        print(f"train_torch: {e}", file=sys.stderr)
        sys.exit(2)
