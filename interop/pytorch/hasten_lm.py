"""hasten_lm: Hasten's decoder-only model kinds, "lm" and "glide", as plain torch.nn modules.

The companion of hasten_torch.py (the translation Transformer), built from its pieces: the same
attention, feed-forward block, positions, safetensors I/O and tokenizer checks. Needs what
hasten_torch needs (Python 3.11, torch >= 1.13); runs on any device the model is moved to.

    from hasten_lm import load_lm_dir, save_lm_dir, lm_loss, glide_loss
    lm, cfg = load_lm_dir("runs/lm/model")                 # kind "lm": eval mode, float32
    logits = lm(tokens)                                    # [B, T] -> [B, T, V], as Hasten's forward
    loss = lm_loss(lm.train(), windows)                    # windows [B, T + 1]: nn/tasks/lm.ts
    draft, dcfg = load_lm_dir("runs/glide/model")          # kind "glide": a GliDe draft for lm
    loss = glide_loss(draft.train(), lm, windows, block_size=dcfg["decoding"]["blockSize"])
    save_lm_dir(draft, dcfg, "runs/glide-ft", target="runs/lm/model")

What Hasten computes, and these modules with it (nn/models/lm.ts, glide.ts; nn/tasks/lm.ts, glide.ts):

- kind "lm", CausalLM: x = Dropout(sqrt(D) * E[ids] + P[offset ...]); per layer, pre-LN,
  h = x + Dropout(SelfAttn(LN(x))) causal, then h + Dropout(FFN(LN(h))); logits = LN(h) @ W^T with
  W = embed.weight (tieEmbeddings) or outProj.weight (no bias). `window` w: position p sees only
  positions (p - w, p]. Positions start at 0; sinusoidal positions are hasten_torch's table.
  Weights: embed.weight, positions.weight (learned only), layers.{i}.{selfNorm, selfAttn.{q,k,v,o},
  ffnNorm, ffn.{fc1,fc2}}.{weight,bias}, norm.{weight,bias}, outProj.weight (untied only).
- kind "glide", GlideDraft (Du et al. 2024): the same embedding and output, and per layer
      h = x + Dropout(SelfAttn(LN(x)))           causal, the draft's own heads
      h = h + Dropout(Glimpse(h; K_l, V_l))       no LayerNorm before it
      h = h + Dropout(FFN(LN(h)))
  where K_l, V_l [B, Ht, L, Dh] are the self-attention keys and values of the frozen target LM's
  layer l = targetLayers - layers + i (a one-layer draft reads the target's last layer). The
  glimpse learns only layers.{i}.glimpse.q [Ht*Dh, D] and .o [D, Ht*Dh] (with biases); it has no
  attention dropout. A token at absolute position p sees the target positions
  j < min(L, B * floor(p / B)) (B = block_size: 1 while drafting, the glide task's blockSize, 5 by
  default, in training). Rows that see nothing have their glimpse output zeroed BEFORE the output
  projection, so they get glimpse.o.bias; when no row of the pass sees anything (T <= B in
  training, a prompt of bos alone) the glimpse is skipped altogether. That is Hasten's arithmetic
  (nn/layers/glimpse-attention.ts), kept here bit for bit.
- Losses (the tasks' loss(), what the trainer differentiates): a batch is windows of T + 1
  tokens of the stream "bos p1 eos bos p2 eos ..."; input = w[:, :T], target = w[:, 1:];
  loss = F.cross_entropy(logits, target, label_smoothing=labelSmoothing) averaged over all B*T
  tokens (the stream has no padding; Hasten's ignore index is -100, as torch's). The glide task
  runs the target over the same input in eval mode without gradient, and its labels are the
  data's next tokens, not the target's predictions.
- Model directories, version 2: config.json {format: "hasten-model-dir", version: 2, kind,
  config, task, decoding, training?}, tokenizer.json, model.safetensors. The lm config is
  {vocab, dModel, heads, ffn, layers, dropout, attnDropout, activation, maxLen, positions,
  tieEmbeddings, window (null: none), seed}; the glide config replaces window with targetLayers,
  targetHeads, targetHeadDim. A glide directory names its target by content, not by path:
  decoding.targetSha256 is the sha256 of the target directory's model.safetensors (hasten
  generate warns when the target it is given differs), and the draft's tokenizer is the target's.

Training at scale: both are ordinary nn.Modules (DDP/FSDP as in hasten_torch's docstring). In the
glide task the target is frozen: give the optimizer the draft's parameters only.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid

import torch
import torch.nn.functional as F
from torch import nn

try:  # as part of a package (interop.pytorch), or with this folder on sys.path
    from . import hasten_torch as ht
except ImportError:
    import hasten_torch as ht

__all__ = [
    "CausalLM", "GlideDraft", "LMCache", "GlimpseAttention", "lm_config", "glide_config", "build_lm_model",
    "LM_MODEL_BUILDERS", "target_kv", "glimpse_mask", "glide_train_logits", "glide_loss", "lm_loss",
    "load_lm_dir", "save_lm_dir", "file_sha256", "LM_DECODING_DEFAULTS", "GLIDE_DECODING_DEFAULTS",
]

# Limits of nn/models/transformer.ts (LIMITS), which both kinds check against.
_LIMITS = {"vocab": 1 << 24, "dModel": 1 << 16, "ffn": 1 << 20, "layers": 1024, "maxLen": 1 << 20, "heads": 1024}
_MAX_PARAMETERS = 2 ** 31

# The tasks' decoding defaults a model directory records (nn/tasks/lm.ts, glide.ts exportInfo).
LM_DECODING_DEFAULTS = {"maxNewTokens": 100, "temperature": 0.8, "topP": 0.95}
GLIDE_DECODING_DEFAULTS = {"method": "glide-cape", "gamma": 4, "capeBins": "8,8,8,6,6,6,4,4,2,2", "blockSize": 5}

# ---------------------------------------------------------------------------------------------
# Configs (lmConfig / GlideConfig and their checks)

LM_FIELDS = ("vocab", "dModel", "heads", "ffn", "layers", "dropout", "attnDropout", "activation", "maxLen",
             "positions", "tieEmbeddings", "window", "seed")
GLIDE_FIELDS = ("vocab", "dModel", "heads", "ffn", "layers", "dropout", "attnDropout", "activation", "maxLen",
                "positions", "tieEmbeddings", "targetLayers", "targetHeads", "targetHeadDim", "seed")
_LM_DEFAULTS = {"dModel": 256, "heads": 4, "ffn": 1024, "layers": 2, "dropout": 0.1, "attnDropout": 0.0, "activation": "gelu",
                "maxLen": 512, "positions": "learned", "tieEmbeddings": True, "window": None, "seed": 0}
_GLIDE_DEFAULTS = {"dModel": 256, "heads": 4, "ffn": 1024, "layers": 1, "dropout": 0.1, "attnDropout": 0.0, "activation": "gelu",
                   "positions": "learned", "tieEmbeddings": True, "seed": 0}


def lm_config(**kw):
    """A complete kind-"lm" config: lmConfig()'s defaults overridden by kw (vocab is required)."""
    c = {**_LM_DEFAULTS, **kw}
    _check_lm_config(c, "lm_config")
    return c


def glide_config(target, **kw):
    """A complete kind-"glide" config for a target LM: target is its lm config (a dict, or a CausalLM).
    vocab, maxLen and targetLayers/Heads/HeadDim come from the target (as the glide kind's
    fromOptions takes them); kw overrides the other fields (defaults: one layer, d = 256)."""
    t = target.config if isinstance(target, nn.Module) else target
    _check_lm_config(t, "glide_config: target")
    c = {**_GLIDE_DEFAULTS, "vocab": t["vocab"], "maxLen": t["maxLen"],
         "targetLayers": t["layers"], "targetHeads": t["heads"], "targetHeadDim": t["dModel"] // t["heads"], **kw}
    _check_glide_config(c, "glide_config")
    return c


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fields(c, fields, where):
    if not isinstance(c, dict):
        raise ValueError(f"{where}: expected a config object, got {c!r}")
    missing = [k for k in fields if k not in c]
    extra = [k for k in c if k not in fields]
    if missing or extra:
        raise ValueError(f"{where}: " + "; ".join(x for x in (
            f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(extra)}" if extra else "") if x))


def _check_common(c, where, ints):
    for k, lo, hi in ints:
        if not _is_int(c[k]) or not lo <= c[k] <= hi:
            raise ValueError(f"{where}: {k} must be an integer in [{lo}, {hi}], got {c[k]!r}")
    if c["dModel"] % c["heads"]:
        raise ValueError(f"{where}: dModel {c['dModel']} must be divisible by heads {c['heads']}")
    for k in ("dropout", "attnDropout"):
        if not (isinstance(c[k], (int, float)) and not isinstance(c[k], bool) and 0 <= c[k] < 1):
            raise ValueError(f"{where}: {k} must be a number in [0, 1), got {c[k]!r}")
    if c["activation"] not in ("relu", "gelu"):
        raise ValueError(f'{where}: activation must be "relu" or "gelu", got {c["activation"]!r}')
    if c["positions"] not in ("sinusoidal", "learned"):
        raise ValueError(f'{where}: positions must be "sinusoidal" or "learned", got {c["positions"]!r}')
    if not isinstance(c["tieEmbeddings"], bool):
        raise ValueError(f"{where}: tieEmbeddings must be true or false, got {c['tieEmbeddings']!r}")
    if not (_is_int(c["seed"]) or isinstance(c["seed"], str)):
        raise ValueError(f"{where}: seed must be a number or a string, got {c['seed']!r}")


def _check_lm_config(c, where):
    if isinstance(c, dict) and "window" not in c:  # JSON has no undefined: a config may leave it out
        c = {**c, "window": None}
    _check_fields(c, LM_FIELDS, where)
    L = _LIMITS
    _check_common(c, where, [("vocab", 1, L["vocab"]), ("dModel", 1, L["dModel"]), ("heads", 1, L["heads"]), ("ffn", 1, L["ffn"]),
                             ("maxLen", 1, L["maxLen"]), ("layers", 0, L["layers"])])
    if c["window"] is not None and (not _is_int(c["window"]) or c["window"] < 1):
        raise ValueError(f"{where}: window must be a positive integer or null, got {c['window']!r}")
    _check_size(_lm_parameters(c), where)
    return c


def _check_glide_config(c, where):
    _check_fields(c, GLIDE_FIELDS, where)
    L = _LIMITS
    _check_common(c, where, [("vocab", 1, L["vocab"]), ("dModel", 1, L["dModel"]), ("heads", 1, L["heads"]), ("ffn", 1, L["ffn"]),
                             ("maxLen", 2, L["maxLen"]), ("layers", 1, L["layers"]), ("targetLayers", 1, L["layers"]),
                             ("targetHeads", 1, L["heads"]), ("targetHeadDim", 1, L["dModel"])])
    if c["layers"] > c["targetLayers"]:
        raise ValueError(f"{where}: layers {c['layers']} must be at most targetLayers {c['targetLayers']} (draft layer i reads target layer targetLayers - layers + i)")
    _check_size(_glide_parameters(c), where)
    return c


def _check_size(n, where):
    if n > _MAX_PARAMETERS:
        raise ValueError(f"{where}: the config implies {n:.2e} parameters, more than the limit of {_MAX_PARAMETERS}")


def _block_parameters(d, ffn):  # one pre-LN self-attention + FFN layer: attention, FFN, two LayerNorms
    return 4 * (d * d + d) + (2 * d * ffn + ffn + d) + 4 * d


def _lm_parameters(c):
    d = c["dModel"]
    return (c["vocab"] * d + (c["maxLen"] * d if c["positions"] == "learned" else 0) + c["layers"] * _block_parameters(d, c["ffn"])
            + 2 * d + (0 if c["tieEmbeddings"] else c["vocab"] * d))


def _glide_parameters(c):
    d, w = c["dModel"], c["targetHeads"] * c["targetHeadDim"]
    glimpse = d * w + w + w * d + d
    return (c["vocab"] * d + (c["maxLen"] * d if c["positions"] == "learned" else 0) + c["layers"] * (_block_parameters(d, c["ffn"]) + glimpse)
            + 2 * d + (0 if c["tieEmbeddings"] else c["vocab"] * d))


# ---------------------------------------------------------------------------------------------
# Layers

class LMCache:
    """A causal model's incremental state: one hasten_torch.KVCache per layer (k, v: [B, H, T, Dh])."""

    def __init__(self, layers):
        self.self = [ht.KVCache() for _ in range(layers)]

    @property
    def length(self):
        return self.self[0].length if self.self else 0

    def select(self, index):
        """Row i continues old row index[i]."""
        for c in self.self:
            c.select(index)

    def truncate(self, length):
        """Keeps the first `length` positions (speculative decoding rolls rejected tokens back)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"LMCache.truncate: length must be in [0, {self.length}], got {length}")
        for c in self.self:
            if c.k is not None:
                c.k, c.v = (c.k[:, :, :length], c.v[:, :, :length]) if length else (None, None)


def _causal_bias(tq, tk, offset, window, device):
    """[Tq, Tk] additive float32 bias: query at absolute position p = offset + i sees keys j <= p
    (and j > p - window with a window); hidden keys get MASKED (nn/layers/attention.ts causalBias)."""
    p = torch.arange(tq, device=device).unsqueeze(1) + offset
    j = torch.arange(tk, device=device).unsqueeze(0)
    hidden = j > p
    if window is not None:
        hidden = hidden | (j <= p - window)
    return torch.zeros(tq, tk, device=device).masked_fill(hidden, ht.MASKED)


class CausalSelfAttention(ht.MultiHeadAttention):
    """hasten_torch's attention (same q, k, v, o weights) as causal self-attention with Hasten's
    optional window, which the encoder-decoder never needed."""

    def forward(self, x, cache=None, window=None, key_padding_mask=None):
        b, tq, d = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))  # [B, H, T, Dh]
        offset = 0
        if cache is not None:
            offset = cache.length
            k, v = cache.append(k, v)
        tk = k.shape[2]
        bias = None
        if not (tq == 1 and offset == tk - 1 and (window is None or window >= tk)):  # a last query alone sees all
            bias = _causal_bias(tq, tk, offset, window, x.device)
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (b, tk):
                raise ValueError(f"CausalSelfAttention: key_padding_mask must be [B, Tk] = [{b}, {tk}], got {list(key_padding_mask.shape)}")
            pad = key_padding_mask.ne(0).float().mul(ht.MASKED).view(b, 1, 1, tk)
            bias = pad if bias is None else pad + bias
        scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-1, -2)  # [B, H, Tq, Tk]
        if bias is not None:
            scores = scores + bias
        out = self.attnDrop(scores.softmax(-1)) @ v  # [B, H, Tq, Dh]
        return self.o(out.transpose(1, 2).reshape(b, tq, d))


class LMLayer(nn.Module):
    """nn/layers/decoder-layer.ts with cross: false."""

    def __init__(self, c):
        super().__init__()
        d = c["dModel"]
        self.selfNorm = nn.LayerNorm(d, eps=ht.LN_EPS)
        self.selfAttn = CausalSelfAttention(d, c["heads"], c["attnDropout"])
        self.ffnNorm = nn.LayerNorm(d, eps=ht.LN_EPS)
        self.ffn = ht.FeedForward(d, c["ffn"], c["activation"], c["dropout"])
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x, cache=None, window=None, pad=None):
        h = x + self.drop(self.selfAttn(self.selfNorm(x), cache=cache, window=window, key_padding_mask=pad))
        return h + self.drop(self.ffn(self.ffnNorm(h)))


class _TokenIO(nn.Module):
    """The input and output sides both kinds share (nn/layers/token-io.ts): embed, positions,
    norm, optional outProj and the embedding dropout, under Hasten's names."""

    def _init_io(self, c):
        d = c["dModel"]
        self.embed = ht._embedding(c["vocab"], d)
        self.positions = ht.LearnedPositions(c["maxLen"], d) if c["positions"] == "learned" else ht.SinusoidalPositions(c["maxLen"], d)
        self.norm = nn.LayerNorm(d, eps=ht.LN_EPS)
        if not c["tieEmbeddings"]:
            self.outProj = ht._linear(d, c["vocab"], bias=False)
        self.drop = nn.Dropout(c["dropout"])
        self.scale = math.sqrt(d)

    def _embed(self, ids, offset):  # Dropout(sqrt(D) * E[ids] + P[offset ...]): [B, T, D]
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{type(self).__name__}: expected [B, T] integer token ids, got {ids.dtype}{list(ids.shape)}")
        return self.drop(self.embed(ids) * self.scale + self.positions(ids.shape[1], offset))

    def _project(self, h):  # LN(h) @ W^T: [B, T, V]
        h = self.norm(h)
        return self.outProj(h) if hasattr(self, "outProj") else F.linear(h, self.embed.weight)


class CausalLM(_TokenIO):
    """kind "lm" (nn/models/lm.ts TransformerLM); config: an lm config dict (lm_config())."""

    kind = "lm"

    def __init__(self, config):
        super().__init__()
        self.config = c = dict(_check_lm_config(config, "CausalLM"))
        self._init_io(c)
        self.layers = nn.ModuleList(LMLayer(c) for _ in range(c["layers"]))

    def forward(self, ids, cache=None, pad_mask=None, output="logits"):
        """ids [B, T] -> logits [B, T, V]. With a cache (an LMCache from create_cache(), for
        inference) ids are the next positions, the first at position cache.length, and the keys
        and values are appended to it. pad_mask [B, cached + T], True at padding: needed only for
        left padding. output="cache" fills the cache and returns an empty [B, T, 0] tensor (a
        GliDe target: only its keys and values are wanted)."""
        if output not in ("logits", "cache"):
            raise ValueError(f'CausalLM: output must be "logits" or "cache", got {output!r}')
        if cache is not None and len(cache.self) != len(self.layers):
            raise ValueError(f"CausalLM: the cache has {len(cache.self)} layers, the model {len(self.layers)}")
        x = self._embed(ids, cache.length if cache is not None else 0)  # [B, T, D]
        for i, layer in enumerate(self.layers):
            x = layer(x, cache.self[i] if cache is not None else None, self.config["window"], pad_mask)
        if output == "cache":
            return x[..., :0]
        return self._project(x)

    def create_cache(self):
        return LMCache(self.config["layers"])


class GlimpseAttention(nn.Module):
    """nn/layers/glimpse-attention.ts: attention to the target's cached keys and values with
    learned query and output projections only (D -> Ht*Dh -> D)."""

    def __init__(self, d, heads, head_dim):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q = ht._linear(d, heads * head_dim)
        self.o = ht._linear(heads * head_dim, d)

    def forward(self, x, keys, values, bias=None, rows=None):
        """x [B, T, D], keys/values [B, Ht, L, Dh], bias [T, L] additive, rows [T, 1] (0: the row
        sees nothing; its attention output is zeroed before o) -> [B, T, D]."""
        b, t, _ = x.shape
        want = (b, self.heads, keys.shape[2], self.head_dim)
        if keys.dim() != 4 or tuple(keys.shape) != want or tuple(values.shape) != want:
            raise ValueError(f"GlimpseAttention: expected the target's keys and values as {list(want[:2]) + ['L', want[3]]}, got {list(keys.shape)} and {list(values.shape)}")
        q = self.q(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B, Ht, T, Dh]
        scores = (q * (1.0 / math.sqrt(self.head_dim))) @ keys.transpose(-1, -2)  # [B, Ht, T, L]
        if bias is not None:
            scores = scores + bias
        merged = (scores.softmax(-1) @ values).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        if rows is not None:
            merged = merged * rows
        return self.o(merged)


def glimpse_mask(offset, t, length, block_size, device=None):
    """The glimpse mask of t tokens from absolute position `offset` over `length` target positions
    (nn/models/glide.ts glimpseMask): token p sees j < min(length, B * floor(p / B)).
    -> None when no token sees anything (the glimpse is skipped), {} when every token sees all,
    else {"bias": [t, length] float32, "rows": [t, 1] float32 or None (when every row sees some)}.
    A row that sees nothing gets bias 0 instead of Hasten's MASKED: its output is multiplied by 0
    either way, and a finite softmax keeps it NaN-free under reduced-precision autocast."""
    limits = [min(length, block_size * ((offset + i) // block_size)) for i in range(t)]
    if not any(lim > 0 for lim in limits):
        return None
    if all(lim == length for lim in limits):
        return {}
    lim = torch.tensor(limits, device=device).unsqueeze(1)  # [t, 1]
    j = torch.arange(length, device=device).unsqueeze(0)  # [1, L]
    bias = torch.zeros(t, length, device=device).masked_fill((j >= lim) & (lim > 0), ht.MASKED)
    rows = lim.gt(0).float() if any(x == 0 for x in limits) else None
    return {"bias": bias, "rows": rows}


class GlideLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dModel"]
        self.selfNorm = nn.LayerNorm(d, eps=ht.LN_EPS)
        self.selfAttn = CausalSelfAttention(d, c["heads"], c["attnDropout"])
        self.glimpse = GlimpseAttention(d, c["targetHeads"], c["targetHeadDim"])
        self.ffnNorm = nn.LayerNorm(d, eps=ht.LN_EPS)
        self.ffn = ht.FeedForward(d, c["ffn"], c["activation"], c["dropout"])
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x, cache=None, kv=None):
        h = x + self.drop(self.selfAttn(self.selfNorm(x), cache=cache))
        if kv is not None:
            h = h + self.drop(self.glimpse(h, kv["keys"], kv["values"], kv.get("bias"), kv.get("rows")))
        return h + self.drop(self.ffn(self.ffnNorm(h)))


class GlideDraft(_TokenIO):
    """kind "glide" (nn/models/glide.ts GlideDraft); config: a glide config dict (glide_config())."""

    kind = "glide"

    def __init__(self, config):
        super().__init__()
        self.config = c = dict(_check_glide_config(config, "GlideDraft"))
        self._init_io(c)
        self.layers = nn.ModuleList(GlideLayer(c) for _ in range(c["layers"]))

    def forward(self, ids, glimpse, block_size=1, cache=None):
        """ids [B, T] -> logits [B, T, V]. glimpse: the target's LMCache (positions [0, L), as
        target_kv() fills it). A token at absolute position p sees the target positions
        j < min(L, block_size * floor(p / block_size)); block_size 1 (the default) is drafting,
        the glide task's blockSize is training (glide_train_logits). cache: the draft's own
        LMCache for incremental drafting (inference only)."""
        c = self.config
        if not hasattr(glimpse, "self") or len(glimpse.self) != c["targetLayers"]:
            got = f"a cache of {len(glimpse.self)} layers" if hasattr(glimpse, "self") else type(glimpse).__name__
            raise ValueError(f"GlideDraft: the glimpse must be the KV cache of the target LM it was trained with ({c['targetLayers']} layers), got {got}")
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"GlideDraft: block_size must be an integer >= 1, got {block_size!r}")
        offset = cache.length if cache is not None else 0
        x = self._embed(ids, offset)  # [B, T, D]
        mask = glimpse_mask(offset, ids.shape[1], glimpse.length, block_size, x.device)
        first = c["targetLayers"] - c["layers"]
        for i, layer in enumerate(self.layers):
            t = glimpse.self[first + i]
            kv = None if mask is None else {"keys": t.k, "values": t.v, **mask}
            x = layer(x, cache.self[i] if cache is not None else None, kv)
        return self._project(x)

    def create_cache(self):
        return LMCache(self.config["layers"])


LM_MODEL_BUILDERS = {"lm": CausalLM, "glide": GlideDraft}


def build_lm_model(kind, config):
    """A fresh model of kind "lm" or "glide" from its config dict (checked as Hasten checks it)."""
    if kind not in LM_MODEL_BUILDERS:
        raise ValueError(f"build_lm_model: unknown kind {kind!r} (hasten_lm builds {', '.join(LM_MODEL_BUILDERS)})")
    return LM_MODEL_BUILDERS[kind](config)


# ---------------------------------------------------------------------------------------------
# The tasks' training computations (nn/tasks/lm.ts, nn/tasks/glide.ts)

def _unwrap(m):  # DDP/FSDP (.module) and torch.compile (._orig_mod) wrappers
    while True:
        inner = getattr(m, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(m, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return m
        m = inner


def _split_windows(tokens, targets, who):
    if targets is None:
        if tokens.dim() != 2 or tokens.shape[1] < 2:
            raise ValueError(f"{who}: expected windows [B, T + 1] of token ids (T >= 1), got {list(tokens.shape)}")
        return tokens[:, :-1], tokens[:, 1:]
    if tokens.shape != targets.shape:
        raise ValueError(f"{who}: input {list(tokens.shape)} and targets {list(targets.shape)} must have one shape [B, T]")
    return tokens, targets


def _cross_entropy(logits, targets, label_smoothing, ignore_index, reduction):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1).long(),
                           ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)


def lm_loss(model, tokens, targets=None, label_smoothing=0.0, ignore_index=-100, reduction="mean"):
    """The lm task's loss of one batch: model a CausalLM (or a DDP/FSDP wrapper of one);
    tokens [B, T + 1] windows of the token stream (input tokens[:, :-1], targets tokens[:, 1:]),
    or tokens [B, T] input with targets [B, T]. -> F.cross_entropy(logits, targets,
    label_smoothing) averaged over the targets that are not ignore_index (Hasten's default -100:
    every target counts). reduction "sum" gives what validation sums. Dropout follows the model's
    mode: call model.train() to train as Hasten's trainer does."""
    inp, tgt = _split_windows(tokens, targets, "lm_loss")
    return _cross_entropy(model(inp), tgt, label_smoothing, ignore_index, reduction)


def target_kv(target, tokens):
    """Runs the frozen target LM over tokens [B, T] in eval mode without gradient and returns its
    LMCache: per layer k, v [B, H, T, Dh] (step 1 of the glide task). The target's mode is restored."""
    t = _unwrap(target)
    if not isinstance(t, CausalLM):
        raise TypeError(f"target_kv: the target must be a hasten_lm.CausalLM (kind lm), got {type(t).__name__}")
    was = t.training
    t.eval()
    try:
        with torch.no_grad():
            cache = t.create_cache()
            t(tokens, cache=cache, output="cache")
    finally:
        t.train(was)
    return cache


def _check_pair(draft, target, who):
    d, t = _unwrap(draft), _unwrap(target)
    if not isinstance(d, GlideDraft):
        raise TypeError(f"{who}: the draft must be a hasten_lm.GlideDraft, got {type(d).__name__}")
    dc, tc = d.config, t.config
    want = (dc["targetLayers"], dc["targetHeads"], dc["targetHeadDim"], dc["vocab"])
    got = (tc["layers"], tc["heads"], tc["dModel"] // tc["heads"], tc["vocab"])
    if want != got:
        raise ValueError(f"{who}: the draft reads a target of {want[0]} layers x {want[1]} heads of width {want[2]} over {want[3]} tokens; "
                         f"this target has {got[0]} layers x {got[1]} heads of width {got[2]} over {got[3]} tokens")


def glide_train_logits(draft, target, tokens, block_size=5):
    """The glide task's forward pass: draft a GlideDraft (or a wrapper of one), target its frozen
    CausalLM, tokens [B, T] int64 input, block_size the task's blockSize (default 5, the task's).
    The target runs over tokens (target_kv: eval, no_grad), then the draft over the same tokens
    glimpsing those keys and values through the block mask. -> logits [B, T, V], differentiable in
    the draft's parameters only."""
    _check_pair(draft, target, "glide_train_logits")
    if tokens.shape[1] > _unwrap(target).config["maxLen"]:
        raise ValueError(f"glide_train_logits: {tokens.shape[1]} tokens exceed the target's context of {_unwrap(target).config['maxLen']} positions")
    return draft(tokens, target_kv(target, tokens), block_size=block_size)


def glide_loss(draft, target, tokens, targets=None, block_size=5, label_smoothing=0.0, ignore_index=-100, reduction="mean"):
    """The glide task's loss of one batch: tokens [B, T + 1] windows (or [B, T] input with
    targets [B, T], as for lm_loss); cross-entropy of glide_train_logits(draft, target, input,
    block_size) against the data's next tokens (not the target's predictions), with
    label_smoothing, averaged over the targets (reduction "sum" for validation sums)."""
    inp, tgt = _split_windows(tokens, targets, "glide_loss")
    return _cross_entropy(glide_train_logits(draft, target, inp, block_size), tgt, label_smoothing, ignore_index, reduction)


# ---------------------------------------------------------------------------------------------
# Model directories (nn/models/model-dir.ts, version 2)

_CHECKS = {"lm": _check_lm_config, "glide": _check_glide_config}


def file_sha256(path):
    """sha256 (hex) of a file's bytes; of a directory's model.safetensors when given a model directory."""
    if os.path.isdir(path):
        path = os.path.join(path, ht.MODEL_DIR_FILES["weights"])
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_dir_config(root, where):
    path = os.path.join(root, ht.MODEL_DIR_FILES["config"])
    if not os.path.exists(path):
        raise FileNotFoundError(f"{where}: {path} is missing (a model directory holds {', '.join(ht.MODEL_DIR_FILES.values())})")
    raw = ht._load_json(path, where)
    where = f"{where}: {path}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format") != ht.MODEL_DIR_FORMAT:
        raise ValueError(f'{where}: expected format "{ht.MODEL_DIR_FORMAT}", got {raw.get("format")!r}')
    if raw.get("version") != 2:
        raise ValueError(f"{where}: version {raw.get('version')!r}: hasten_lm reads version-2 directories (kinds lm and glide)")
    kind = raw.get("kind")
    if kind not in _CHECKS:
        hint = " (use hasten_torch.load_model_dir)" if kind == "transformer" else ""
        raise ValueError(f"{where}: model kind {kind!r} is not one hasten_lm loads (lm, glide){hint}")
    _check_body(raw, where)
    return raw, _CHECKS[kind](raw.get("config"), f"{where}: config")


def _check_body(c, where):
    known = {"format", "version", "kind", "config", "task", "src", "tgt", "decoding", "training"}
    extra = sorted(set(c) - known)
    if extra:
        raise ValueError(f"{where}: unknown field(s) {', '.join(extra)}")
    if not isinstance(c.get("task"), str) or not c["task"]:
        raise ValueError(f"{where}: task must be a non-empty string, got {c.get('task')!r}")
    d = c.get("decoding")
    if not isinstance(d, dict):
        raise ValueError(f"{where}: decoding must be an object of settings, got {d!r}")
    for k, v in d.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{where}: decoding.{k} must be a finite number >= 0, got {v!r}")
        if not isinstance(v, (int, float, str, bool)):
            raise ValueError(f"{where}: decoding.{k} must be a number, a string or a boolean, got {v!r}")
    if ("src" in c) != ("tgt" in c):
        raise ValueError(f"{where}: src and tgt go together")
    if "training" in c and not isinstance(c["training"], dict):
        raise ValueError(f"{where}: training must be an object, got {c['training']!r}")


def load_lm_dir(path, device="cpu"):
    """Loads a Hasten model directory of kind "lm" or "glide" -> (model in eval mode, config).
    config: {kind, task, decoding, training?, tokenizer (the parsed tokenizer.json), version};
    the kind's config is model.config. Weights of any float dtype load as float32. A glide draft
    loads alone; load its target (another lm directory) to run it, and see decoding.targetSha256
    (file_sha256(target_dir) of the target it was trained against)."""
    root = os.path.abspath(path)
    if not os.path.exists(root):
        raise FileNotFoundError(f"load_lm_dir: no model directory at {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"load_lm_dir: {root} is a file, expected a model directory ({', '.join(ht.MODEL_DIR_FILES.values())})")
    raw, mc = _read_dir_config(root, "load_lm_dir")
    files = {k: os.path.join(root, n) for k, n in ht.MODEL_DIR_FILES.items()}
    for f in files.values():
        if not os.path.exists(f):
            raise FileNotFoundError(f"load_lm_dir: {f} is missing (a model directory holds {', '.join(ht.MODEL_DIR_FILES.values())})")
    tok = ht._read_tokenizer(files["tokenizer"], "load_lm_dir")
    if tok["vocabSize"] != mc["vocab"]:
        raise ValueError(f"load_lm_dir: {root}: the tokenizer has {tok['vocabSize']} tokens but the model expects a vocabulary of {mc['vocab']}")
    model = build_lm_model(raw["kind"], mc)
    state, _ = ht.read_safetensors(files["weights"])
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k}: expected {list(own[k].shape)}, got {list(state[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        problems = [f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(unexpected)}" if unexpected else "", "; ".join(shapes)]
        raise ValueError(f"load_lm_dir: {files['weights']} does not match the config: " + ". ".join(p for p in problems if p))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    config = {k: raw[k] for k in ("kind", "task", "src", "tgt", "decoding", "training") if k in raw}
    config["tokenizer"] = tok
    config["version"] = 2
    return model.to(device).eval(), config


def save_lm_dir(model, config, path, tokenizer=None, kind=None, task=None, decoding=None, training=None, dtype="F32", target=None):
    """Writes a Hasten model directory (version 2) of a CausalLM (kind "lm") or GlideDraft (kind
    "glide") that Hasten's loadModelDir loads: config.json, tokenizer.json, model.safetensors
    (dtype "F32", "F16" or "BF16").
    config: what load_lm_dir returned ({kind, task, decoding, training?, tokenizer}), or None;
    the keyword arguments override its fields. kind: from the model's class; task: the kind's
    own task ("lm", "glide"); decoding: settings that update config["decoding"], or without one
    the task's defaults (LM_DECODING_DEFAULTS, GLIDE_DECODING_DEFAULTS); training: provenance.
    tokenizer: a tokenizer.json path, a model directory or the parsed JSON (default:
    config["tokenizer"], for glide the target's).
    target (glide only): the target LM's model directory. Its weights' sha256 becomes
    decoding.targetSha256 (Hasten's reference to the target), its shape is checked against the
    draft's targetLayers/Heads/HeadDim and its tokenizer must be the draft's. Without it, a glide
    save needs decoding.targetSha256 already (a draft loaded and saved again).
    Written into a hidden sibling folder, then renamed into place; an existing folder is replaced
    only when it is a model directory (or empty), and files there that are not ours are kept."""
    config = dict(config or {})
    m = _unwrap(model)
    if not isinstance(m, (CausalLM, GlideDraft)):
        raise TypeError(f"save_lm_dir: expected a hasten_lm.CausalLM or GlideDraft, got {type(m).__name__}")
    kind = kind or config.get("kind") or m.kind
    if kind != m.kind:
        raise ValueError(f"save_lm_dir: kind {kind!r} does not fit a {type(m).__name__} (kind {m.kind!r})")
    mc = dict(_CHECKS[kind](dict(m.config), "save_lm_dir"))
    task = task or config.get("task") or kind
    defaults = GLIDE_DECODING_DEFAULTS if kind == "glide" else LM_DECODING_DEFAULTS
    dec = {**(config["decoding"] if isinstance(config.get("decoding"), dict) else defaults), **(decoding or {})}
    tok = tokenizer if tokenizer is not None else config.get("tokenizer")
    if target is not None:
        if kind != "glide":
            raise ValueError("save_lm_dir: target= names a glide draft's target LM; this is an lm")
        traw, tcfg = _read_dir_config(os.path.abspath(target), "save_lm_dir: target")
        if traw["kind"] != "lm":
            raise ValueError(f"save_lm_dir: target {target} holds a {traw['kind']} model; a glide draft's target is kind lm")
        want = (mc["targetLayers"], mc["targetHeads"], mc["targetHeadDim"], mc["vocab"])
        got = (tcfg["layers"], tcfg["heads"], tcfg["dModel"] // tcfg["heads"], tcfg["vocab"])
        if want != got:
            raise ValueError(f"save_lm_dir: the draft reads a target of {want[0]} layers x {want[1]} heads of width {want[2]} over {want[3]} tokens; "
                             f"the target {target} has {got[0]} x {got[1]} of width {got[2]} over {got[3]} tokens")
        target_tok = ht._read_tokenizer(target, "save_lm_dir: target")
        if tok is None:
            tok = target_tok
        elif ht._read_tokenizer(tok, "save_lm_dir") != target_tok:
            raise ValueError(f"save_lm_dir: the tokenizer differs from the target's ({target}); a glide draft uses its target's tokenizer")
        dec["targetSha256"] = file_sha256(target)
    elif kind == "glide" and not isinstance(dec.get("targetSha256"), str):
        raise ValueError("save_lm_dir: a glide draft names its target: pass target= (the target LM's model directory), or decoding with targetSha256")
    if tok is None:
        raise ValueError("save_lm_dir: no tokenizer: pass tokenizer= (a tokenizer.json path, a model directory or its parsed JSON)")
    tok = ht._read_tokenizer(tok, "save_lm_dir")
    if tok["vocabSize"] != mc["vocab"]:
        raise ValueError(f"save_lm_dir: the tokenizer has {tok['vocabSize']} tokens but the model's vocabulary is {mc['vocab']}")
    head = {"format": ht.MODEL_DIR_FORMAT, "version": 2, "kind": kind, "config": mc, "task": task}
    for k in ("src", "tgt"):
        if k in config:
            head[k] = config[k]
    head["decoding"] = dec
    training = training if training is not None else config.get("training")
    if training is not None:
        head["training"] = training
    _check_body(head, "save_lm_dir")
    state = {k: v.detach().float().cpu() for k, v in m.state_dict().items()}
    _write_dir(os.path.abspath(path), state, {"format": ht.MODEL_DIR_FORMAT, "kind": kind}, tok, head, dtype)


def _write_dir(target, state, metadata, tok, head, dtype):
    # hasten_torch.save_model_dir's atomic write (hidden sibling, renames), for any state dict.
    old = None
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise FileExistsError(f"save_lm_dir: {target} exists and is not a directory")
        old = os.listdir(target)
        if old and ht.MODEL_DIR_FILES["config"] not in old:
            raise FileExistsError(f"save_lm_dir: refusing to replace {target}: it is not empty and holds no config.json, so it is not a model directory")
    parent, base = os.path.dirname(target), os.path.basename(target)
    os.makedirs(parent, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp = os.path.join(parent, f".{base}.tmp-{tag}")
    os.mkdir(tmp)
    try:
        ht.write_safetensors(os.path.join(tmp, ht.MODEL_DIR_FILES["weights"]), state, metadata, dtype=dtype)
        for key, obj in (("tokenizer", tok), ("config", head)):
            with open(os.path.join(tmp, ht.MODEL_DIR_FILES[key]), "w", encoding="utf-8") as f:
                f.write(json.dumps(obj, ensure_ascii=False, indent=2 if key == "config" else None) + ("\n" if key == "config" else ""))
                f.flush()
                os.fsync(f.fileno())
        for name in old or []:  # keep what is not ours (READMEs, evaluation notes)
            if name not in ht.MODEL_DIR_FILES.values():
                src = os.path.join(target, name)
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(tmp, name))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is None:
        os.rename(tmp, target)
    else:
        aside = os.path.join(parent, f".{base}.old-{tag}")
        os.rename(target, aside)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
