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
  - batches: Hasten's Batcher and LMBatcher re-implemented bit for bit in hasten_data.py (mulberry32, the same
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
from hasten_data import Batcher, LMBatcher, PairData, read_ids, read_meta  # noqa: E402

TRAINER = "interop/pytorch/train_torch.py"


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Settings: Hasten's keys, defaults and specs from meta.json, overridden by flags

OWN_FLAGS = {"data", "out", "kind", "target", "device", "precision", "dtype", "time-limit", "bleu", "save-at-eval", "force", "help"}
# Hasten settings without a meaning here (backend, checkpointEvery) are accepted and recorded in
# the directory's training record, and change nothing; threads sets torch's CPU threads.


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
            near = sorted(kebab(k) for k in specs if k not in ("task", "model", "out") and kebab(k) not in OWN_FLAGS)
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
# Model kinds: "transformer" and "markov" from hasten_torch, "lm" and "glide" from hasten_lm

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


def run_options(own):
    """This script's own flags, checked: device, precision, weights dtype, time limit, BLEU, saving."""
    dev = own.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev not in ("cuda", "cpu") and not dev.startswith("cuda:"):
        raise UsageError(f"--device must be cuda or cpu, got {dev!r}")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA device")
    device = torch.device(dev)
    precision = own.get("precision") or ("tf32" if device.type == "cuda" else "fp32")
    if precision not in ("fp32", "tf32", "bf16"):
        raise UsageError(f"--precision must be fp32, tf32 or bf16, got {precision!r}")
    dtype = own.get("dtype") or "F16"
    if dtype not in ("F16", "BF16", "F32"):
        raise UsageError(f"--dtype must be F16, BF16 or F32, got {dtype!r}")
    try:
        time_limit = float(own["time-limit"]) if own.get("time-limit") else math.inf
    except ValueError:
        raise UsageError(f"--time-limit must be a number of seconds, got {own['time-limit']!r}") from None
    bleu = own.get("bleu") or "auto"
    if bleu not in ("auto", "on", "off"):
        raise UsageError(f"--bleu must be auto, on or off, got {bleu!r}")
    return {"device": device, "precision": precision, "dtype": dtype, "timeLimit": time_limit, "bleu": bleu,
            "saveAtEval": "no-save-at-eval" not in own}


class Run:
    """One training run (nn/train/run.ts): the model, AdamW and the task's objective; the loop with
    logging, validation and saving; the model directory at the end."""

    def __init__(self, meta, root, kind, c, out, o):
        self.t0 = time.time()
        self.meta, self.kind, self.c, self.out, self.o = meta, kind, c, out, o
        self.task = meta["tasks"][kind]
        self.device = device = o["device"]
        self.stop = Stop()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        torch.manual_seed(c["seed"])
        if c["threads"] > 0:
            torch.set_num_threads(c["threads"])
        elif device.type == "cuda":
            torch.set_num_threads(2)  # many jobs share the machine's cores; the GPU does the work
        if device.type == "cuda":
            set_tf32(o["precision"] == "tf32")

        # The vocabulary, the target (glide), the model.
        self.tok = tok = meta["tokenizer"]
        self.tok_path = os.path.join(root, tok["file"])
        with open(self.tok_path, encoding="utf-8") as f:
            tok_json = json.load(f)
        self.target = load_target(c["target"], device) if self.task == "glide" else None
        if self.target is not None:
            with open(self.target["tokenizer"], encoding="utf-8") as f:
                if json.load(f) != tok_json:
                    raise UsageError(f"--target: {self.target['tokenizer']} is not the data's tokenizer; a draft uses its target's tokenizer")
        self.model = model = build_model(kind, model_config(kind, c, tok["vocabSize"], tok["padId"], self.target))
        if c["init"]:
            # Fine-tuning (`init`): the weights of a model directory of the same kind and shape.
            with open(os.path.join(c["init"], "tokenizer.json"), encoding="utf-8") as f:
                if json.load(f) != tok_json:
                    raise UsageError(f"--init: {c['init']}/tokenizer.json is not the data's tokenizer (export the data with --tokenizer {c['init']}/tokenizer.json)")
            state, _ = ht.read_safetensors(os.path.join(c["init"], "model.safetensors"))
            model.load_state_dict({k: v.float() for k, v in state.items()})
        model.to(device).train()
        self.params = list(model.parameters())  # the draft's only, for glide: its target is frozen
        self.tokens = ht.tokenizer_tokens(tok_json)

        # The task's data and objective.
        self.bleu = o["bleu"]
        if self.task == "translation":
            train = PairData(root, "train", meta["idDtype"], device)
            self.valid_all = PairData(root, "valid", meta["idDtype"], device)
            fit = min(c["maxLen"] - 1, c["maxTokens"] - 1)  # validPairsThatFit
            keep = [i for i, (s, t) in enumerate(zip(self.valid_all.src_len.tolist(), self.valid_all.tgt_len.tolist())) if s <= fit and t <= fit]
            if not keep:
                raise UsageError(f"no validation pair fits --max-len {c['maxLen']} / --max-tokens {c['maxTokens']}")
            self.obj = TranslationObjective(train, self.valid_all.subset(keep), c, tok, device)
            with open(os.path.join(root, "valid.ref.txt"), encoding="utf-8") as f:
                self.refs = f.read().split("\n")[:len(self.valid_all)]
            describe = f"{len(train)} training pairs, {len(keep)} validation pairs"
            if self.bleu == "auto":
                try:
                    import sacrebleu  # noqa: F401, PLC0415
                except ImportError:
                    self.bleu = "off"
        else:
            self.obj = LMObjective(read_ids(os.path.join(root, "train.ids"), meta["idDtype"]),
                                   read_ids(os.path.join(root, "valid.ids"), meta["idDtype"]), c, device, self.target)
            describe = (f"{self.obj.train_stream.numel()} training tokens in {self.obj.train.windows} sequences of {self.obj.T}; "
                        f"{self.obj.valid_stream.numel()} validation tokens")
            self.bleu = "off"

        # AdamW over every parameter (Hasten decays them all); fused on CUDA where torch has it.
        opt = dict(lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"], weight_decay=c["weightDecay"])
        try:
            self.optimizer = torch.optim.AdamW(self.params, **opt, **({"fused": True} if device.type == "cuda" else {}))
        except (TypeError, RuntimeError):
            self.optimizer = torch.optim.AdamW(self.params, **opt)
        self.bf16 = o["precision"] == "bf16" and device.type == "cuda"

        self.log = []
        self.step = 0
        self.best = self.last_valid = self.last_valid_step = self.hyps = self.best_weights = None
        self.bleu_sentences = 0
        self.n_params = sum(p.numel() for p in self.params)
        self.total = c["maxSteps"] if c["maxSteps"] > 0 else c["maxEpochs"] * self.obj.train.batches_in_epoch
        detail = (f"task {self.task}, model {kind}: {describe}, vocabulary {tok['vocabSize']}, {self.n_params} parameters, "
                  f"torch {torch.__version__} on {device_name(device)}, {o['precision']}")
        self.emit({"kind": "event", "step": 0, "event": "start", "seconds": self.elapsed(), "detail": detail}, f"training {out}: {detail}; {self.total} steps")

    def elapsed(self):
        return time.time() - self.t0

    def emit(self, entry, text=None):
        """An entry of train-log.jsonl (Hasten's log.jsonl format), and a line on stdout."""
        self.log.append(entry)
        print(text if text is not None else json.dumps(entry), flush=True)

    def compute(self, fn, *a):
        if self.bf16:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return fn(*a)
        return fn(*a)

    def train(self):
        """The loop (run.ts): updates until maxSteps / maxEpochs / --time-limit / a signal. -> why it stopped."""
        c, obj, model, opt = self.c, self.obj, self.model, self.optimizer
        iv = {"tokens": 0, "steps": 0, "t0": time.time()}
        loss_acc = torch.zeros((), device=self.device)
        norm_acc = torch.zeros((), device=self.device)
        self.last_eval = -1
        while True:
            if c["maxSteps"] > 0 and self.step >= c["maxSteps"]:
                return "maxSteps"
            if c["maxEpochs"] > 0 and obj.train.epochs_done() >= c["maxEpochs"]:
                return "maxEpochs"
            if self.stop.signal:
                return f"signal {self.stop.signal}"
            if self.elapsed() >= self.o["timeLimit"]:
                return "timeLimit"
            b = obj.next()
            epoch = obj.train.epoch + 1
            step = self.step + 1
            lr = inverse_sqrt_lr(step, c["lr"], c["warmup"])
            for g in opt.param_groups:
                g["lr"] = lr
            loss = self.compute(obj.loss, model, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ntok = obj.tokens(b)
            if c["clipNorm"] > 0:
                norm_acc += torch.nn.utils.clip_grad_norm_(self.params, c["clipNorm"]).detach()
            opt.step()
            self.step = step
            loss_acc += loss.detach() * ntok
            iv["tokens"] += ntok
            iv["steps"] += 1
            logged = step % c["logEvery"] == 0
            if logged:
                # One read-back per interval, not per step: the interval's sums of loss and norm.
                lsum, nsum = float(loss_acc), float(norm_acc)
                if not (math.isfinite(lsum) and math.isfinite(nsum)):
                    self.emit({"kind": "event", "step": step, "event": "interrupted", "seconds": self.elapsed(),
                               "detail": f"training diverged: loss {lsum / iv['tokens']}, gradient norm {nsum / iv['steps']}"})
                    kept = "nothing saved" if self.last_valid is None else f"{self.out} holds the weights of the last validation"
                    raise RuntimeError(f"training diverged by step {step} (lower --lr or raise --warmup); {kept}")
                tps = iv["tokens"] / max(time.time() - iv["t0"], 1e-9)  # the interval's wall time, read-back included
                e = {"kind": "train", "step": step, "epoch": epoch, "loss": lsum / iv["tokens"], "lr": lr,
                     "gradNorm": nsum / iv["steps"] if c["clipNorm"] > 0 else None, "tokens": iv["tokens"], "tokensPerSec": tps, "seconds": self.elapsed()}
                self.emit(e, f"step {step}/{self.total} epoch {epoch}: loss {e['loss']:.4f}, lr {lr:.3g}"
                             + ("" if e["gradNorm"] is None else f", |g| {e['gradNorm']:.3f}") + f", {tps:,.0f} tok/s, {self.elapsed():.0f}s")
                loss_acc.zero_()
                norm_acc.zero_()
            if c["evalEvery"] > 0 and step % c["evalEvery"] == 0 and self.evaluate():
                self.last_eval = step
                if self.o["saveAtEval"]:
                    self.save("running", False)
            if logged:
                iv = {"tokens": 0, "steps": 0, "t0": time.time()}  # after validation: its time is not training time

    def evaluate(self):
        """Validates and records (trainer.ts validate, validExtra); gives up (returns False) when a
        stop signal comes meanwhile: the job is being stopped, and its weights matter more."""
        model, obj = self.model, self.obj
        model.eval()
        s_loss = s_nll = 0.0
        n = 0
        try:
            with torch.no_grad():
                for b in obj.valid:
                    if self.stop.signal:
                        return False
                    a, z = self.compute(obj.valid_sums, model, b)
                    s_loss += float(a)
                    s_nll += float(z)
                    n += obj.tokens(b)
                bleu = None
                if self.bleu != "off":
                    r = bleu_of(model, self.valid_all, self.refs, self.c, self.tokens, self.stop)
                    if r is None:
                        return False
                    bleu, self.hyps = r
                    self.bleu_sentences = len(self.hyps)
        finally:
            model.train()
        v = {"loss": s_loss / n, "nll": s_nll / n, "bleu": bleu}
        step = self.step
        self.last_valid, self.last_valid_step = v, step
        self.emit({"kind": "valid", "step": step, "loss": v["loss"], "nll": v["nll"], "bleu": bleu,
                   "bleuSentences": self.bleu_sentences if self.bleu != "off" else 0, "seconds": self.elapsed()},
                  f"valid @ {step}: loss {v['loss']:.3f}, nll {v['nll']:.3f} (ppl {math.exp(min(v['nll'], 50)):.2f})"
                  + ("" if bleu is None else f", BLEU {bleu:.2f} on {self.bleu_sentences} sentences"))
        metric = "bleu" if self.c["bestBy"] == "bleu" and bleu is not None else "loss"
        value = bleu if metric == "bleu" else v["nll"]
        best = self.best
        if best is None or best["metric"] != metric or (value > best["value"] if metric == "bleu" else value < best["value"]):
            self.best = {"metric": metric, "value": value, "step": step}
            if self.c["export"] == "best":
                self.best_weights = {k: t.detach().clone() for k, t in model.state_dict().items()}
            self.emit({"kind": "event", "step": step, "event": "best", "detail": f"{metric} {value:.4f}"})
        return True

    def save(self, stopped_by, final):
        """The model directory (its `training` record says how it was made), train-log.jsonl and
        the last validation translations."""
        c, o = self.c, self.o
        weights = "final"
        if final and c["export"] == "best" and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            weights = f"best (step {self.best['step']})"
        training = {
            "steps": self.step, "weights": weights, "best": self.best, "lastValid": self.last_valid, "lastValidStep": self.last_valid_step,
            "config": {**c, "out": self.out},
            "trainer": f"PyTorch via the Hasten bridge ({TRAINER}, hasten_torch)",
            "device": device_name(self.device), "torch": torch.__version__, "precision": o["precision"], "weightsDtype": o["dtype"],
            "seconds": round(self.elapsed(), 1), "stoppedBy": stopped_by,
            "data": {"name": self.meta["name"], "trainDataSha256": self.meta["trainDataSha256"], "tokenizerSha256": self.tok["sha256"], "limit": self.meta.get("limit")},
        }
        if self.target is not None:
            training["targetSha256"] = self.target["sha256"]
        save_dir(self.kind, self.task, self.model, c, self.meta, self.tok_path, self.out, o["dtype"], training, self.target)
        with open(os.path.join(self.out, "train-log.jsonl"), "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(e) + "\n" for e in self.log))
        if self.hyps is not None:
            with open(os.path.join(self.out, "valid-hyps.txt"), "w", encoding="utf-8") as f:
                f.write("".join(h + "\n" for h in self.hyps))

    def finish(self, stopped_by):
        # As Hasten's run: a final validation unless the run was interrupted (a signal: save at once).
        if self.step == 0:
            raise RuntimeError(f"stopped ({stopped_by}) before the first step; nothing saved")
        if self.last_eval != self.step and not stopped_by.startswith("signal"):
            self.evaluate()
        self.emit({"kind": "event", "step": self.step, "event": "done", "seconds": self.elapsed(),
                   "detail": f"stopped by {stopped_by}; model exported to {self.out} (PyTorch, {device_name(self.device)})"},
                  f"done at step {self.step} ({stopped_by}) in {self.elapsed():.0f}s: model in {self.out}")
        self.save(stopped_by, True)
        print(json.dumps({"summary": {"out": self.out, "kind": self.kind, "steps": self.step, "stoppedBy": stopped_by, "seconds": round(self.elapsed(), 1),
                                      "lastValid": self.last_valid, "best": self.best, "parameters": self.n_params}}), flush=True)


def main(argv):
    own, raw = parse_args(argv)
    if "help" in own:
        print(__doc__)
        return 0
    for k in ("data", "out", "kind"):
        if not own.get(k):
            raise UsageError(f"--{k} is required (see --help)")
    try:
        meta = read_meta(own["data"])
    except (OSError, ValueError) as e:
        raise UsageError(f"--data: {e}") from None
    kind = own["kind"]
    c = resolve_config(meta, kind, raw)
    if meta["tasks"][kind] == "glide":
        c["target"] = own.get("target") or c.get("target") or ""
        if not c["target"]:
            raise UsageError("--target must name the target LM's model directory (the draft reads its KV cache)")
    out = os.path.abspath(own["out"])
    if os.path.exists(out) and os.listdir(out):
        if "force" not in own:
            raise UsageError(f"--out {out} exists and is not empty (pass --force to replace it)")
        if not os.path.exists(os.path.join(out, "config.json")):
            raise UsageError(f"--out {out} is not a model directory; refusing to replace it even with --force")
    run = Run(meta, own["data"], kind, c, out, run_options(own))
    run.finish(run.train())
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
