"""hasten_torch: Hasten's translation models as plain torch.nn.Modules.

Load a Hasten model directory into PyTorch, run it, train it (one GPU or many), and write a model
directory Hasten loads again. Needs Python 3.11 and torch >= 1.13, nothing else: safetensors files
are read and written here with struct/json (F32, F16, BF16; F64 and the integer dtypes are read
too). Hasten itself never depends on PyTorch; this file is the bridge, used from Python.

    from hasten_torch import load_model_dir, save_model_dir, greedy_decode, beam_search
    model, cfg = load_model_dir("models/ar-de-en")       # eval mode, float32, CPU
    logits = model(src, tgt_in)                          # [B, T, V], as Hasten's forward
    hyps = greedy_decode(model, [[812, 95, 7], ...])     # list of (tokens, score)
    save_model_dir(model, cfg, "runs/finetuned")         # config.json + tokenizer.json + model.safetensors
    model = build_model("markov", markov_config(vocab=8000, order=4))   # a fresh model of a kind

Model kinds (a directory's "kind"; MODEL_BUILDERS): "transformer" (Transformer) and "markov"
(MarkovTransformer, nn/models/markov.ts: the decoder's self-attention sees only the last k =
config["order"] target positions; variant "strict" takes each decoder layer's self-attention keys
and values from the embedded decoder input x0, so nothing older than k leaks through depth,
"window" from the layer's input, a plain sliding window). Both share parameters and their names.

Conventions a PyTorch user must keep (they are Hasten's; break one and the weights still load but
the model computes something else):

- Token ids come from the model's tokenizer.json (Hasten's BPE; this file only decodes ids to
  text: decode_ids). Specials: pad = 0, bos = 1, eos = 2, unk = 3, mask = 4.
- Sources carry no bos and no eos: src = x1 ... xn, right-padded with pad. The decoder input is
  tgt_in = bos y1 ... ym and the training target tgt_out = y1 ... ym eos (right-padded; use
  ignore_index=pad in the loss). Hasten's loss is F.cross_entropy(logits.view(-1, V),
  tgt_out.view(-1), ignore_index=0, label_smoothing=0.1), the mean over non-pad targets.
- Positions start at 0 for every sequence (source and target alike), also with right padding.
- Sinusoidal positions are interleaved, not concatenated: PE[p, 2i] = sin(p / 10000^(2i/D)) and
  PE[p, 2i+1] = cos(p / 10000^(2i/D)). The table is not a parameter and not in the weights file.
  Learned positions ("positions": "learned") are the parameter positions.weight [maxLen, D].
- Embeddings are scaled by sqrt(D) before the positions are added: x = sqrt(D) * E[ids] + PE.
- Pre-LN layers, x <- x + Dropout(Sublayer(LayerNorm(x))), and one final LayerNorm after each
  stack (encoder.norm, decoder.norm). LayerNorm eps = 1e-5. FFN activation "relu" or "gelu"
  (exact erf GELU, F.gelu's default). Attention scales q by 1/sqrt(Dh) and has biases on q, k, v, o.
- Weights are named as Hasten's stateDict(): embed.weight (tied source/target/output embedding) or
  srcEmbed.weight / tgtEmbed.weight (+ outProj.weight when the output is untied too);
  encoder.layers.{i}.{attnNorm,attn.{q,k,v,o},ffnNorm,ffn.{fc1,fc2}}, encoder.norm;
  decoder.layers.{i}.{selfNorm,selfAttn.*,crossNorm,crossAttn.*,ffnNorm,ffn.*}, decoder.norm.
  Linear weights are [out, in], as nn.Linear stores them: no transposing either way.
- Padding masks are bool/0-1 tensors [B, S], True (nonzero) AT PADDING, the reverse of an
  "attention mask" of ones at real tokens. Masked keys get an additive bias of -1e9, not -inf.
  Causal masking lets position p see positions <= p. Right padding needs no target mask (the
  causal mask already hides later padding from real positions).
- Greedy and beam search (greedy_decode, beam_search, decode_corpus) follow decoding/*.ts:
  pad and bos are never emitted, output length is at most min(maxLen - 1, floor(maxLenA * n +
  maxLenB)) tokens for an n-token source (eos then forced; a MarkovTransformer with sinusoidal
  positions has no maxLen limit: model.max_decode_len), scores are float64 sums of float32
  log-probabilities, and beam search uses fairseq's rules with score / (len + 1)^lengthPenalty.
  Like Hasten's decoders, both also ban the tokenizer's unk (3) and mask (4) by default
  (banned=None); pass banned=() to allow them.

Training at scale, then back to Hasten: the model is an ordinary nn.Module, so
    model = torch.nn.parallel.DistributedDataParallel(model.cuda(rank), device_ids=[rank])
(or torch.distributed.fsdp.FullyShardedDataParallel) works unchanged; Hasten's recipe is AdamW
(betas 0.9/0.98, eps 1e-9, weight decay 1e-4), inverse-sqrt warm-up, label smoothing 0.1, dropout
0.1, gradient clipping at 1. To bring the weights back, gather a full state dict on one rank
(DDP: model.module; FSDP: a FULL_STATE_DICT state_dict_type with rank0_only=True), load it into a
plain Transformer on the CPU and call save_model_dir on that rank only. Parameters are saved in
float32 by default; dtype="F16" or "BF16" halves the file (Hasten reads all three).
A loaded model is in eval mode: call model.train() before training (dropout on).

Command line (ids in, ids out; a quick way to check a directory):
    python3 hasten_torch.py info DIR
    python3 hasten_torch.py translate-ids DIR [--beam K] < ids.jsonl    # one JSON id list per line
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import shutil
import struct
import sys
import uuid

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Transformer", "transformer_config", "MarkovTransformer", "markov_config", "build_model", "MODEL_BUILDERS",
    "load_model_dir", "save_model_dir", "read_safetensors",
    "write_safetensors", "greedy_decode", "beam_search", "decode_corpus", "decode_ids", "tokenizer_tokens", "pad_mask",
    "MODEL_DIR_FORMAT", "MASKED",
]

MODEL_DIR_FORMAT = "hasten-model-dir"
MODEL_DIR_FILES = {"config": "config.json", "tokenizer": "tokenizer.json", "weights": "model.safetensors"}
MASKED = -1e9  # the additive attention bias of a hidden key (nn/layers/attention.ts)
LN_EPS = 1e-5  # nn/layers/layer-norm.ts
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<mask>"]
PAD, BOS, EOS, UNK, MASK = range(5)

# ---------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
# data_offsets}, "__metadata__": {str: str}}, then the tensors' bytes back to back.

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 << 20


def _check_little_endian(who):
    # safetensors is little-endian; tensors are copied byte for byte to and from host memory.
    if sys.byteorder != "little":
        raise RuntimeError(f"{who}: this bridge supports little-endian hosts only")


def read_safetensors(path):
    """Reads a whole safetensors file: ({name: tensor}, metadata). Refuses truncated or inconsistent files."""
    _check_little_endian("read_safetensors")
    with open(path, "rb") as f:
        buf = bytearray(f.read())  # writable, so torch.frombuffer needs no copy of the whole file
    where = f"read_safetensors: {path}"
    if len(buf) < 8:
        raise ValueError(f"{where}: file is {len(buf)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack_from("<Q", buf, 0)
    if n > _MAX_HEADER or 8 + n > len(buf):
        raise ValueError(f"{where}: header length {n} exceeds the file size {len(buf)} (truncated, or not safetensors)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{where}: header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: header must be a JSON object, got {type(header).__name__}")
    start, size = 8 + n, len(buf) - 8 - n
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{where}: __metadata__ must be an object of strings")
    spans = []
    for name, e in header.items():
        if not isinstance(e, dict) or e.get("dtype") not in _DTYPES:
            raise ValueError(f"{where}: tensor '{name}': unknown dtype {e.get('dtype') if isinstance(e, dict) else e!r} (supported: {', '.join(_DTYPES)})")
        shape, off = e.get("shape"), e.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"{where}: tensor '{name}': shape must be a list of non-negative integers, got {shape!r}")
        if not (isinstance(off, list) and len(off) == 2 and all(isinstance(x, int) for x in off) and 0 <= off[0] <= off[1]):
            raise ValueError(f"{where}: tensor '{name}': data_offsets must be two integers 0 <= begin <= end, got {off!r}")
        dtype = _DTYPES[e["dtype"]]
        want = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if off[1] - off[0] != want:
            raise ValueError(f"{where}: tensor '{name}': shape {shape} of {e['dtype']} needs {want} bytes, data_offsets hold {off[1] - off[0]}")
        if off[1] > size:
            raise ValueError(f"{where}: tensor '{name}' ends at {off[1]}, past the {size}-byte data buffer (file truncated?)")
        spans.append((off[0], off[1], name, dtype, shape))
    # The tensors must tile the data buffer exactly (as Hasten checks): no gaps, no overlaps.
    spans.sort()
    cursor = 0
    for begin, end, name, _, _ in spans:
        if begin != cursor:
            raise ValueError(f"{where}: tensor '{name}' begins at {begin}, expected {cursor} (gap or overlap in the data buffer)")
        cursor = end
    if cursor != size:
        raise ValueError(f"{where}: the data buffer has {size} bytes but the tensors cover {cursor}")
    tensors = {}
    for begin, end, name, dtype, shape in spans:
        if end == begin:
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        count = (end - begin) // torch.empty((), dtype=dtype).element_size()
        # clone(): own the memory (and its alignment) instead of a view into the file buffer.
        tensors[name] = torch.frombuffer(buf, dtype=dtype, count=count, offset=start + begin).reshape(shape).clone()
    return tensors, metadata


def _raw_bytes(t):
    t = t.detach().to("cpu").contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b""


def write_safetensors(path, tensors, metadata=None, dtype=None):
    """Writes {name: tensor} atomically (temporary file, fsync, rename). dtype "F32", "F16" or "BF16"
    converts every floating tensor (round to nearest even, as Hasten does); None keeps each dtype."""
    _check_little_endian("write_safetensors")
    if dtype is not None and dtype not in ("F32", "F16", "BF16"):
        raise ValueError(f'write_safetensors: dtype must be "F32", "F16" or "BF16", got {dtype!r}')
    header, blobs, offset = {}, [], 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("write_safetensors: metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    for name in sorted(tensors):
        t = tensors[name]
        if not name or name == "__metadata__":
            raise ValueError(f"write_safetensors: invalid tensor name {name!r}")
        if dtype is not None and t.is_floating_point():
            t = t.to(_DTYPES[dtype])
        if t.dtype not in _DTYPE_NAMES:
            raise ValueError(f"write_safetensors: tensor '{name}' has dtype {t.dtype}, which safetensors cannot hold")
        data = _raw_bytes(t)
        header[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)  # pad the header with spaces so the data starts 8-byte aligned
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(js)))
            f.write(js)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# The model (nn/models/transformer.ts and nn/layers/*.ts, module for module, name for name)

# Hasten's TransformerConfig and its defaults (transformerConfig()); a model directory stores all fields.
CONFIG_DEFAULTS = {
    "srcVocab": 0, "tgtVocab": 0, "dModel": 512, "heads": 8, "ffn": 2048, "encLayers": 6, "decLayers": 6,
    "dropout": 0.1, "attnDropout": 0.0, "activation": "relu", "maxLen": 256, "positions": "sinusoidal",
    "tieEmbeddings": True, "tieOutput": True, "padId": 0, "seed": 0,
}


def transformer_config(**kw):
    """A complete TransformerConfig: Hasten's defaults overridden by kw (vocab=V sets both vocabularies)."""
    vocab = kw.pop("vocab", None)
    unknown = sorted(set(kw) - set(CONFIG_DEFAULTS))
    if unknown:
        raise ValueError(f"transformer_config: unknown field(s) {', '.join(unknown)} (known: {', '.join(CONFIG_DEFAULTS)})")
    c = {**CONFIG_DEFAULTS, "tieEmbeddings": vocab is not None}
    if vocab is not None:
        c["srcVocab"] = c["tgtVocab"] = vocab
    c.update(kw)
    _check_config(c, "transformer_config")
    return c


def _check_config(c, where, fields=CONFIG_DEFAULTS):
    """Checks a TransformerConfig (every field of `fields`, no other; a kind that extends the
    Transformer's config passes its own fields and checks the extra ones itself)."""
    if not isinstance(c, dict):
        raise ValueError(f"{where}: model config must be an object, got {c!r}")
    missing = [k for k in fields if k not in c]
    extra = [k for k in c if k not in fields]
    if missing or extra:
        raise ValueError(f"{where}: model config: " + "; ".join(x for x in (
            f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(extra)}" if extra else "") if x))
    for k in ("srcVocab", "tgtVocab", "dModel", "heads", "ffn", "maxLen"):
        if not isinstance(c[k], int) or isinstance(c[k], bool) or c[k] <= 0:
            raise ValueError(f"{where}: {k} must be a positive integer, got {c[k]!r}")
    for k in ("encLayers", "decLayers"):
        if not isinstance(c[k], int) or isinstance(c[k], bool) or c[k] < 0:
            raise ValueError(f"{where}: {k} must be a non-negative integer, got {c[k]!r}")
    if c["dModel"] % c["heads"]:
        raise ValueError(f"{where}: dModel {c['dModel']} must be divisible by heads {c['heads']}")
    if c["activation"] not in ("relu", "gelu"):
        raise ValueError(f'{where}: activation must be "relu" or "gelu", got {c["activation"]!r}')
    if c["positions"] not in ("sinusoidal", "learned"):
        raise ValueError(f'{where}: positions must be "sinusoidal" or "learned", got {c["positions"]!r}')
    for k in ("dropout", "attnDropout"):
        if not (isinstance(c[k], (int, float)) and 0 <= c[k] < 1):
            raise ValueError(f"{where}: {k} must be in [0, 1), got {c[k]!r}")
    if c["tieEmbeddings"] and c["srcVocab"] != c["tgtVocab"]:
        raise ValueError(f"{where}: tieEmbeddings needs a joint vocabulary, got srcVocab {c['srcVocab']} and tgtVocab {c['tgtVocab']}")
    if not isinstance(c["padId"], int) or not 0 <= c["padId"] < min(c["srcVocab"], c["tgtVocab"]):
        raise ValueError(f"{where}: padId must be an id of both vocabularies, got {c['padId']!r}")


def pad_mask(ids, pad_id):
    """[B, S] ids -> [B, S] bool, True at padding (Hasten's padMask)."""
    return ids.eq(pad_id)


def sinusoid_table(max_len, dim, offset=0):
    """Hasten's interleaved table: PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(same), rows
    p = offset ... offset + max_len - 1. Angles in float64 with the math module (as JavaScript
    computes them), rounded to float32."""
    rows = []
    for p in range(offset, offset + max_len):
        row = [0.0] * dim
        for i in range(0, dim, 2):
            angle = p / math.pow(10000, i / dim)
            row[i] = math.sin(angle)
            if i + 1 < dim:  # odd D: the last dim has a sin and no cos
                row[i + 1] = math.cos(angle)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64).float()


class SinusoidalPositions(nn.Module):
    bounded = False  # the formula has no end: rows past the table are computed on demand (positions.ts)

    def __init__(self, max_len, dim):
        super().__init__()
        # persistent=False: not in state_dict(), exactly as Hasten's table is not a parameter.
        self.register_buffer("table", sinusoid_table(max_len, dim), persistent=False)

    def forward(self, length, offset=0):
        _check_range(length, offset, math.inf)
        if offset + length <= self.table.shape[0]:
            return self.table[offset:offset + length]
        # Past maxLen (a Markov decoder has no position limit): the same float32 values the table would hold.
        return sinusoid_table(length, self.table.shape[1], offset).to(self.table.device)


class LearnedPositions(nn.Module):
    bounded = True

    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, dim).normal_(0, dim ** -0.5))

    def forward(self, length, offset=0):
        _check_range(length, offset, self.weight.shape[0])
        return self.weight[offset:offset + length]


def _check_range(length, offset, max_len):
    if offset < 0 or offset + length > max_len:
        raise ValueError(f"positions [{offset}, {offset + length}) exceed maxLen {max_len}")


def _linear(d_in, d_out, bias=True):
    # Hasten's init: Xavier-uniform weights, zero biases (nn/layers/linear.ts); only matters for
    # training from scratch in torch — loaded weights replace it.
    lin = nn.Linear(d_in, d_out, bias=bias)
    nn.init.xavier_uniform_(lin.weight)
    if bias:
        nn.init.zeros_(lin.bias)
    return lin


def _embedding(n, d):
    e = nn.Embedding(n, d)  # no padding_idx: Hasten trains the pad row like any other
    nn.init.normal_(e.weight, 0, d ** -0.5)
    return e


class KVCache:
    """One attention layer's keys and values so far, k, v: [B, H, T, Dh]."""

    def __init__(self):
        self.k = self.v = None

    @property
    def length(self):
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k, v):
        if self.k is not None:
            k, v = torch.cat([self.k, k], 2), torch.cat([self.v, v], 2)
        self.k, self.v = k, v
        return k, v

    def select(self, index):
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class DecoderCache:
    """Per decoder layer: a self-attention cache that grows, and a cross-attention cache of the memory."""

    def __init__(self, layers):
        self.self = [KVCache() for _ in range(layers)]
        self.cross = [KVCache() for _ in range(layers)]

    @property
    def length(self):
        return self.self[0].length if self.self else 0

    def select(self, index):
        """Row i continues old row index[i] (drop finished rows; beam search: follow parents)."""
        for c in self.self + self.cross:
            c.select(index)


class MultiHeadAttention(nn.Module):
    def __init__(self, d, heads, attn_dropout=0.0):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q, self.k, self.v, self.o = (_linear(d, d) for _ in range(4))
        self.attnDrop = nn.Dropout(attn_dropout)

    def _split(self, x):  # [B, T, D] -> [B, H, T, Dh]
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, memory=None, key_padding_mask=None, causal=False, cache=None):
        b, tq, d = x.shape
        q = self._split(self.q(x))
        offset = 0
        if memory is not None:
            if cache is not None and cache.length > 0:
                k, v = cache.k, cache.v  # the memory's keys/values, projected on the first step
            else:
                k, v = self._split(self.k(memory)), self._split(self.v(memory))
                if cache is not None:
                    cache.append(k, v)
        else:
            k, v = self._split(self.k(x)), self._split(self.v(x))
            if cache is not None:
                offset = cache.length
                k, v = cache.append(k, v)
        tk = k.shape[2]
        bias = None
        if causal and not (tq == 1 and offset == tk - 1):  # one query at the end sees every key
            i = torch.arange(tq, device=x.device).unsqueeze(1) + offset
            j = torch.arange(tk, device=x.device).unsqueeze(0)
            bias = torch.zeros(tq, tk, device=x.device).masked_fill(j > i, MASKED)  # [Tq, Tk]
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (b, tk):
                raise ValueError(f"MultiHeadAttention: key_padding_mask must be [B, Tk] = [{b}, {tk}], got {list(key_padding_mask.shape)}")
            pad = key_padding_mask.ne(0).to(x.dtype).mul(MASKED).view(b, 1, 1, tk)  # [B, 1, 1, Tk]
            bias = pad if bias is None else pad + bias
        return self.o(self.attend(q, k, v, bias).transpose(1, 2).reshape(b, tq, d))

    def attend(self, q, k, v, bias=None):
        """q [B, H, Tq, Dh], k, v [B, H, Tk, Dh], bias broadcastable to [B, H, Tq, Tk] -> [B, H, Tq, Dh]
        (scaledDotProductAttention, with dropout on the weights in training mode)."""
        # Same order of operations as Hasten: scale q (not the scores), add the bias, softmax.
        scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-1, -2)  # [B, H, Tq, Tk]
        if bias is not None:
            scores = scores + bias
        return self.attnDrop(scores.softmax(-1)) @ v  # [B, H, Tq, Dh]


class FeedForward(nn.Module):
    def __init__(self, d, ffn, activation="relu", dropout=0.0):
        super().__init__()
        self.fc1, self.fc2 = _linear(d, ffn), _linear(ffn, d)
        self.activation = activation
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(self.drop(F.gelu(h) if self.activation == "gelu" else F.relu(h)))


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dModel"]
        self.attnNorm = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = MultiHeadAttention(d, c["heads"], c["attnDropout"])
        self.ffnNorm = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn = FeedForward(d, c["ffn"], c["activation"], c["dropout"])
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x, pad=None):
        h = x + self.drop(self.attn(self.attnNorm(x), key_padding_mask=pad))
        return h + self.drop(self.ffn(self.ffnNorm(h)))


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["dModel"]
        self.selfNorm = nn.LayerNorm(d, eps=LN_EPS)
        self.selfAttn = MultiHeadAttention(d, c["heads"], c["attnDropout"])
        self.crossNorm = nn.LayerNorm(d, eps=LN_EPS)
        self.crossAttn = MultiHeadAttention(d, c["heads"], c["attnDropout"])
        self.ffnNorm = nn.LayerNorm(d, eps=LN_EPS)
        self.ffn = FeedForward(d, c["ffn"], c["activation"], c["dropout"])
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x, memory, memory_pad=None, self_pad=None, self_cache=None, cross_cache=None):
        h = x + self.drop(self.selfAttn(self.selfNorm(x), key_padding_mask=self_pad, causal=True, cache=self_cache))
        h = h + self.drop(self.crossAttn(self.crossNorm(h), memory=memory, key_padding_mask=memory_pad, cache=cross_cache))
        return h + self.drop(self.ffn(self.ffnNorm(h)))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c["encLayers"]))
        self.norm = nn.LayerNorm(c["dModel"], eps=LN_EPS)

    def forward(self, x, pad=None):
        for layer in self.layers:
            x = layer(x, pad)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["decLayers"]))
        self.norm = nn.LayerNorm(c["dModel"], eps=LN_EPS)

    def forward(self, x, memory, memory_pad=None, self_pad=None, cache=None):
        for i, layer in enumerate(self.layers):
            x = layer(x, memory, memory_pad, self_pad,
                      cache.self[i] if cache else None, cache.cross[i] if cache else None)
        return self.norm(x)


class Transformer(nn.Module):
    """The encoder-decoder of nn/models/transformer.ts; config is a TransformerConfig dict."""

    kind = "transformer"  # the model directory's kind (nn/models/registry.ts)

    @staticmethod
    def check_config(c, where):
        _check_config(c, where)

    def __init__(self, config):
        super().__init__()
        self.check_config(config, type(self).__name__)
        self.config = c = dict(config)
        d = c["dModel"]
        # Attribute names are Hasten's parameter names, so state_dict() keys match model.safetensors.
        if c["tieEmbeddings"]:
            self.embed = _embedding(c["srcVocab"], d)
        else:
            self.srcEmbed = _embedding(c["srcVocab"], d)
            self.tgtEmbed = _embedding(c["tgtVocab"], d)
        self.positions = LearnedPositions(c["maxLen"], d) if c["positions"] == "learned" else SinusoidalPositions(c["maxLen"], d)
        self.encoder = Encoder(c)
        self.decoder = self._make_decoder(c)
        if not c["tieEmbeddings"] and not c["tieOutput"]:
            self.outProj = _linear(d, c["tgtVocab"], bias=False)
        self.drop = nn.Dropout(c["dropout"])
        self.scale = math.sqrt(d)

    def _make_decoder(self, c):
        return Decoder(c)

    @property
    def max_decode_len(self):
        """Positions a decoded target may take, bos included (decoding caps outputs at this - 1)."""
        return self.config["maxLen"]

    @property
    def src_embed(self):
        return self.embed if self.config["tieEmbeddings"] else self.srcEmbed

    @property
    def tgt_embed(self):
        return self.embed if self.config["tieEmbeddings"] else self.tgtEmbed

    def _embed(self, e, ids, offset):
        # sqrt(D) * E[ids] + PE[offset ...]: [B, T, D]
        return self.drop(e(ids) * self.scale + self.positions(ids.shape[1], offset))

    def encode(self, src, src_pad_mask=None):
        """src [B, S] (no bos/eos, right-padded) -> memory [B, S, D]."""
        if src_pad_mask is None:
            src_pad_mask = pad_mask(src, self.config["padId"])
        return self.encoder(self._embed(self.src_embed, src, 0), src_pad_mask)

    def project(self, h):
        if hasattr(self, "outProj"):
            return self.outProj(h)
        return F.linear(h, self.tgt_embed.weight)  # h @ E^T: the tied output projection

    def decode(self, tgt_in, memory, memory_pad_mask=None, cache=None, tgt_pad_mask=None):
        """tgt_in [B, T] -> logits [B, T, V]. With a cache, tgt_in holds only the new positions."""
        x = self._embed(self.tgt_embed, tgt_in, cache.length if cache else 0)
        return self.project(self.decoder(x, memory, memory_pad_mask, tgt_pad_mask, cache))

    def forward(self, src, tgt_in, src_pad_mask=None, tgt_pad_mask=None):
        """Teacher-forced pass: src [B, S], tgt_in [B, T] (bos y1 ...) -> logits [B, T, V]."""
        if src_pad_mask is None:
            src_pad_mask = pad_mask(src, self.config["padId"])
        return self.decode(tgt_in, self.encode(src, src_pad_mask), src_pad_mask, None, tgt_pad_mask)

    def create_cache(self):
        return DecoderCache(self.config["decLayers"])

    def decode_step(self, last_tokens, memory, memory_pad_mask, cache):
        """last_tokens [N] -> logits [N, V] of the next position; appends to the cache."""
        return self.decode(last_tokens.view(-1, 1), memory, memory_pad_mask, cache)[:, 0]


# ---------------------------------------------------------------------------------------------
# The Markov Transformer (nn/models/markov.ts): the Transformer whose decoder self-attention sees
# only the last k = order target positions, query i -> keys j with 0 <= i - j <= k - 1 (the band
# mask; decoder input i holds y_{i-1}, so position i predicts y_i from y_{i-k} ... y_{i-1} and the
# whole source). Two variants:
#   "strict" (default): at every decoder layer the self-attention keys and values come from the
#     layer's selfNorm applied to x0, the embedded decoder input (after its dropout), while the
#     queries come from the layer's own input h; so nothing older than k leaks through depth.
#   "window": plain sliding-window attention, keys/values from h (receptive field L(k-1)+1).
# Same parameters and names as the Transformer: the strict variant reuses selfNorm for x0.

MARKOV_DEFAULTS = {"order": 4, "variant": "strict"}
MARKOV_FIELDS = {**CONFIG_DEFAULTS, **MARKOV_DEFAULTS}
MAX_ORDER = 1 << 20  # LIMITS.maxLen in nn/models/transformer.ts


def markov_config(**kw):
    """A complete MarkovConfig: transformer_config(**kw) plus order (default 4) and variant
    ("strict", default, or "window")."""
    extra = {k: kw.pop(k) for k in MARKOV_DEFAULTS if k in kw}
    c = {**transformer_config(**kw), **MARKOV_DEFAULTS, **extra}
    _check_markov_config(c, "markov_config")
    return c


def _check_markov_config(c, where):
    _check_config(c, where, MARKOV_FIELDS)
    k = c["order"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_ORDER:
        raise ValueError(f"{where}: order must be an integer in [1, {MAX_ORDER}], got {k!r}")
    if c["variant"] not in ("strict", "window"):
        raise ValueError(f'{where}: variant must be "strict" or "window", got {c["variant"]!r}')


def markov_bias(query_pos, key_pos, order, device=None):
    """[Tq, Tk] additive bias: 0 where 0 <= query_pos[a] - key_pos[b] <= order - 1, MASKED elsewhere
    (markovBias). Positions are 1-D long tensors (or lists)."""
    q = torch.as_tensor(query_pos, device=device).view(-1, 1)
    k = torch.as_tensor(key_pos, device=device).view(1, -1)
    d = q - k
    visible = (d >= 0) & (d <= order - 1)
    return torch.zeros(visible.shape, device=device).masked_fill(~visible, MASKED)


class WindowKVCache(KVCache):
    """A self-attention cache that keeps the keys/values of the last `keep` positions only (a
    Markov layer needs k - 1 of them besides the new one). append returns the kept ones followed
    by the new ones; `kept` says how many were kept before the call."""

    def __init__(self, keep):
        super().__init__()
        self.keep = keep

    def append(self, k, v):
        k, v = super().append(k, v)
        n = k.shape[2]
        self.k, self.v = self.k[:, :, max(0, n - self.keep):], self.v[:, :, max(0, n - self.keep):]
        return k, v


class MarkovCache(DecoderCache):
    """Incremental decoding state of a MarkovTransformer: per layer the last order - 1 keys/values
    (constant size, as Hasten's RingKVCache) and the memory's keys/values; `length` counts the
    positions decoded so far (the position of the next token)."""

    def __init__(self, layers, order):
        self.self = [WindowKVCache(order - 1) for _ in range(layers)]
        self.cross = [KVCache() for _ in range(layers)]
        self.order = order
        self.position = 0

    @property
    def length(self):
        return self.position


def _markov_layer(layer, h, kv_input, bias, memory, memory_pad, self_cache, cross_cache):
    """One pre-LN DecoderLayer with the Markov self-attention (markovLayer): queries from h, keys
    and values from kv_input (x0: strict, h: window). h [B, T, D] -> [B, T, D]."""
    a = layer.selfAttn
    b, t, d = h.shape
    hn = layer.selfNorm(h)
    kvn = hn if kv_input is h else layer.selfNorm(kv_input)
    q, k, v = a._split(a.q(hn)), a._split(a.k(kvn)), a._split(a.v(kvn))  # [B, H, T, Dh]
    if self_cache is not None:
        k, v = self_cache.append(k, v)  # [B, H, kept + T, Dh]
    x = h + layer.drop(a.o(a.attend(q, k, v, bias).transpose(1, 2).reshape(b, t, d)))
    x = x + layer.drop(layer.crossAttn(layer.crossNorm(x), memory=memory, key_padding_mask=memory_pad, cache=cross_cache))
    return x + layer.drop(layer.ffn(layer.ffnNorm(x)))


class MarkovDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["decLayers"]))
        self.norm = nn.LayerNorm(c["dModel"], eps=LN_EPS)

    def forward(self, x0, memory, memory_pad, bias, strict, cache=None):
        """x0 [B, T, D] (embedded decoder input), bias broadcastable to [B, H, T, Tk] -> [B, T, D]."""
        h = x0
        for i, layer in enumerate(self.layers):
            h = _markov_layer(layer, h, x0 if strict else h, bias, memory, memory_pad,
                              cache.self[i] if cache else None, cache.cross[i] if cache else None)
        return self.norm(h)


class MarkovTransformer(Transformer):
    """The Markov autoregressive Transformer of nn/models/markov.ts; config is a MarkovConfig dict
    (a TransformerConfig plus order and variant). Same weights and names as the Transformer."""

    kind = "markov"

    @staticmethod
    def check_config(c, where):
        _check_markov_config(c, where)

    def _make_decoder(self, c):
        return MarkovDecoder(c)

    @property
    def max_decode_len(self):
        # Sinusoidal positions have no end and the decoding state does not grow: no length limit.
        return self.config["maxLen"] if self.positions.bounded else math.inf

    def decode(self, tgt_in, memory, memory_pad_mask=None, cache=None, tgt_pad_mask=None):
        """tgt_in [B, T] -> logits [B, T, V]. With a cache (inference), tgt_in holds the next
        positions, the first at cache.length. tgt_pad_mask [B, T] (parallel pass only) matters only
        for left padding."""
        b, t = tgt_in.shape
        order = self.config["order"]
        if cache is not None and tgt_pad_mask is not None:
            raise ValueError("MarkovTransformer.decode: a target padding mask is for the parallel pass; incremental decoding takes none")
        offset = cache.length if cache is not None else 0
        x0 = self._embed(self.tgt_embed, tgt_in, offset)  # [B, T, D]
        kept = min(offset, order - 1)  # keys the cache holds before this step
        dev = tgt_in.device
        q_pos = torch.arange(offset, offset + t, device=dev)
        k_pos = torch.arange(offset - kept, offset + t, device=dev)
        # One query sees every key: the cache holds only its window (kept <= order - 1) and itself.
        bias = None if t == 1 else markov_bias(q_pos, k_pos, order, dev)  # [T, Tk]
        if tgt_pad_mask is not None:
            if tuple(tgt_pad_mask.shape) != (b, t):
                raise ValueError(f"MarkovTransformer.decode: tgt_pad_mask must be [B, T] = [{b}, {t}], got {list(tgt_pad_mask.shape)}")
            pad = tgt_pad_mask.ne(0).to(x0.dtype).mul(MASKED).view(b, 1, 1, t)
            bias = pad if bias is None else pad + bias  # [B, 1, T, T]
        h = self.decoder(x0, memory, memory_pad_mask, bias, self.config["variant"] == "strict", cache)
        if cache is not None:
            cache.position += t
        return self.project(h)  # [B, T, V]

    def create_cache(self):
        return MarkovCache(self.config["decLayers"], self.config["order"])


# The model kinds this bridge builds: a model directory's "kind" -> a class taking that kind's
# config (Hasten's field names) with a static check_config(config, where). Another kind is one
# more entry here (or MODEL_BUILDERS[name] = cls from another module).
MODEL_BUILDERS = {
    "transformer": Transformer,
    "markov": MarkovTransformer,
}


def build_model(kind, config):
    """A fresh model of a Hasten model kind ("transformer", "markov") from its config dict (the
    model directory's "config" object), with initial weights; in training mode, as nn.Module starts."""
    if kind not in MODEL_BUILDERS:
        raise ValueError(f"build_model: model kind {kind!r} is not supported by hasten_torch (supported: {', '.join(MODEL_BUILDERS)})")
    return MODEL_BUILDERS[kind](config)


# ---------------------------------------------------------------------------------------------
# Decoding (decoding/common.ts, greedy.ts, beam.ts, corpus.ts)

def _prepare(model, sources, max_len_a, max_len_b, bos, eos, pad, banned, who):
    if banned is None:  # Hasten's default: the tokenizer's <unk> and <mask>, where the vocabulary has them
        banned = tuple(t for t in (UNK, MASK) if t < model.config["tgtVocab"])
    c = model.config
    pad = c["padId"] if pad is None else pad
    if not (max_len_a >= 0 and max_len_b >= 0 and math.isfinite(max_len_a) and math.isfinite(max_len_b)):
        raise ValueError(f"{who}: max_len_a and max_len_b must be finite numbers >= 0, got {max_len_a}, {max_len_b}")
    for k, v in (("bos", bos), ("eos", eos), ("pad", pad)):
        if not 0 <= v < c["tgtVocab"]:
            raise ValueError(f"{who}: {k} must be an id in [0, {c['tgtVocab']}), got {v}")
    if eos in (bos, pad):
        raise ValueError(f"{who}: eos {eos} must differ from bos {bos} and pad {pad}")
    ban = torch.zeros(c["tgtVocab"], dtype=torch.bool)
    ban[pad] = ban[bos] = True
    for t in banned:
        if t == eos:
            raise ValueError(f"{who}: eos ({eos}) cannot be banned: hypotheses could never end")
        if not 0 <= t < c["tgtVocab"]:
            raise ValueError(f"{who}: banned id {t} is outside the vocabulary [0, {c['tgtVocab']})")
        ban[t] = True
    rows = [list(s) for s in sources]
    width = max([1] + [len(r) for r in rows])
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    for b, r in enumerate(rows):
        if len(r) > c["maxLen"]:
            raise ValueError(f"{who}: source {b} has {len(r)} tokens but the model's maxLen is {c['maxLen']}")
        if any(not 0 <= x < c["srcVocab"] for x in r):
            raise ValueError(f"{who}: source {b} holds an id outside [0, {c['srcVocab']})")
        ids[b, :len(r)] = torch.tensor(r, dtype=torch.long)
    # Longest output (eos excluded): floor(a*n + b), at most maxLen - 1 (bos takes position 0).
    # A model may declare more positions than maxLen (a Markov decoder with sinusoidal positions: any).
    decode_len = getattr(model, "max_decode_len", c["maxLen"])
    max_out = [max(0, min(decode_len - 1, math.floor(max_len_a * len(r) + max_len_b))) for r in rows]
    return ids, max_out, ban, pad


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def greedy_decode(model, sources, max_len_a=1.5, max_len_b=10, bos=BOS, eos=EOS, pad=None, banned=None):
    """Batched greedy decoding with a KV cache. sources: lists of ids. Returns [(tokens, score)]:
    tokens without bos/eos, score = sum of log p over the tokens and the final eos."""
    ids, max_out, ban, pad = _prepare(model, sources, max_len_a, max_len_b, bos, eos, pad, banned, "greedy_decode")
    if not len(max_out):
        return []
    was_training = model.training
    model.eval()
    try:
        dev = _device(model)
        ids, ban_bias = ids.to(dev), torch.zeros(ban.shape, device=dev).masked_fill(ban.to(dev), float("-inf"))
        mask = pad_mask(ids, pad)
        memory = model.encode(ids, mask)
        cache = model.create_cache()
        tokens = [[] for _ in max_out]
        scores = [0.0] * len(max_out)
        sentence = list(range(len(max_out)))  # the sentence each row decodes
        last = torch.full((len(max_out),), bos, dtype=torch.long, device=dev)
        t = 0
        while sentence:
            lp = model.decode_step(last, memory, mask, cache).log_softmax(-1)  # [N, V]
            choice = (lp + ban_bias).argmax(-1)
            chosen = lp.gather(1, choice.unsqueeze(1)).squeeze(1).tolist()
            eos_lp = lp[:, eos].tolist()
            choice = choice.tolist()
            keep, nxt = [], []
            for r, s in enumerate(sentence):
                if t >= max_out[s]:
                    scores[s] += eos_lp[r]  # length limit: eos is forced
                elif choice[r] == eos:
                    scores[s] += chosen[r]
                else:
                    scores[s] += chosen[r]
                    tokens[s].append(choice[r])
                    keep.append(r)
                    nxt.append(choice[r])
            if not keep:
                break
            if len(keep) < len(sentence):
                idx = torch.tensor(keep, device=dev)
                cache.select(idx)
                memory, mask = memory.index_select(0, idx), mask.index_select(0, idx)
            sentence = [sentence[r] for r in keep]
            last = torch.tensor(nxt, dtype=torch.long, device=dev)
            t += 1
        return [(tokens[s], scores[s]) for s in range(len(max_out))]
    finally:
        model.train(was_training)


def _top_candidates(lp, base, allowed, m):
    """The m best (row, token, score) by base[row] + lp[row, token] over allowed tokens, best
    first; ties keep scan order (lower row, then lower token), as decoding/beam.ts ranks them."""
    x = (lp.index_select(1, allowed).double() + base.unsqueeze(1)).reshape(-1)
    m = min(m, x.numel())
    kth = torch.topk(x, m).values[-1]
    idx = (x >= kth).nonzero().squeeze(1)  # ascending flat index = scan order
    order = torch.sort(x[idx], descending=True, stable=True).indices[:m]
    idx = idx[order]
    n = allowed.numel()
    return (idx // n).tolist(), allowed[idx % n].tolist(), x[idx].tolist()


@torch.no_grad()
def beam_search(model, sources, beam=5, length_penalty=1.0, n_best=1, max_len_a=1.5, max_len_b=10,
                bos=BOS, eos=EOS, pad=None, banned=None):
    """Batched beam search as decoding/beam.ts. Returns, per sentence, up to n_best
    (tokens, score, norm_score) best first (n_best=1: one tuple per sentence)."""
    if not (isinstance(beam, int) and beam >= 1):
        raise ValueError(f"beam_search: beam must be an integer >= 1, got {beam}")
    if not (length_penalty >= 0 and math.isfinite(length_penalty)):
        raise ValueError(f"beam_search: length_penalty must be a finite number >= 0, got {length_penalty}")
    if not 1 <= n_best <= beam:
        raise ValueError(f"beam_search: n_best must be in [1, beam = {beam}], got {n_best}")
    ids, max_out, ban, pad = _prepare(model, sources, max_len_a, max_len_b, bos, eos, pad, banned, "beam_search")
    if not len(max_out):
        return []
    K, alpha = beam, length_penalty
    norm = (lambda s, n: s) if alpha == 0 else (lambda s, n: s / math.pow(n, alpha))
    finished = [[] for _ in max_out]
    best = [-math.inf] * len(max_out)

    def finish(s, toks, score):
        h = (toks, score, norm(score, len(toks) + 1))
        finished[s].append(h)
        best[s] = max(best[s], h[2])

    was_training = model.training
    model.eval()
    try:
        dev = _device(model)
        ids = ids.to(dev)
        allowed = (~ban).nonzero().squeeze(1).to(dev)
        mask = pad_mask(ids, pad)
        memory = model.encode(ids, mask)
        cache = model.create_cache()
        live = [(s, [], 0.0) for s in range(len(max_out))]  # (sentence, tokens, score)
        t = 0
        while live:
            last = torch.tensor([bos if t == 0 else h[1][-1] for h in live], dtype=torch.long, device=dev)
            lp = model.decode_step(last, memory, mask, cache).log_softmax(-1)  # [N, V]
            nxt, parents = [], []
            r0 = 0
            while r0 < len(live):
                s = live[r0][0]
                r1 = r0 + 1
                while r1 < len(live) and live[r1][0] == s:
                    r1 += 1
                if t >= max_out[s]:
                    eos_lp = lp[r0:r1, eos].tolist()
                    for r in range(r0, r1):
                        finish(s, live[r][1], live[r][2] + eos_lp[r - r0])
                else:
                    start = len(nxt)
                    base = torch.tensor([h[2] for h in live[r0:r1]], dtype=torch.float64, device=dev)
                    rows, toks, scs = _top_candidates(lp[r0:r1], base, allowed, 2 * K)
                    for i, (r, v, score) in enumerate(zip(rows, toks, scs)):
                        if len(nxt) - start >= K:
                            break
                        if v == eos:
                            if i < K:
                                finish(s, live[r0 + r][1], score)
                        else:
                            nxt.append((s, live[r0 + r][1] + [v], score))
                            parents.append(r0 + r)
                    # A live score s can at best end as s / (maxOut + 1)^alpha (log-probs are <= 0).
                    bound = math.pow(max_out[s] + 1, alpha)
                    best_live = max((h[2] / bound for h in nxt[start:]), default=-math.inf)
                    if len(finished[s]) >= K or len(nxt) == start or best[s] >= best_live:
                        del nxt[start:], parents[start:]
                r0 = r1
            if not nxt:
                break
            idx = torch.tensor(parents, device=dev)
            cache.select(idx)
            memory, mask = memory.index_select(0, idx), mask.index_select(0, idx)
            live = nxt
            t += 1
    finally:
        model.train(was_training)
    out = []
    for s, hs in enumerate(finished):
        if not hs:
            raise RuntimeError(f"beam_search: sentence {s} finished no hypothesis (non-finite log-probabilities?)")
        ranked = sorted(hs, key=lambda h: -h[2])  # stable: equal scores keep their finishing order
        out.append(ranked[0] if n_best == 1 else ranked[:n_best])
    return out


def decode_corpus(model, sources, batch_size=32, beam=1, **opts):
    """Sorts the sources by length (stable), decodes batch by batch and returns one result per
    source in input order, as decoding/corpus.ts; empty sources give ([], 0.0) undecoded.
    beam=1: greedy (tokens, score); beam>1: beam search (tokens, score, norm_score)."""
    out = [([], 0.0) if beam <= 1 else ([], 0.0, 0.0) for _ in sources]
    order = sorted((i for i in range(len(sources)) if len(sources[i])), key=lambda i: len(sources[i]))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        batch = [sources[j] for j in idx]
        hyps = greedy_decode(model, batch, **opts) if beam <= 1 else beam_search(model, batch, beam=beam, **opts)
        for j, h in zip(idx, hyps):
            out[j] = h
    return out


# ---------------------------------------------------------------------------------------------
# Tokenizer file (nn/tokenizer/bpe.ts): ids 0-4 specials, 5-260 bytes, then the alphabet, then
# one id per distinct merge result.

def tokenizer_tokens(tok):
    """The token string of every id of a parsed tokenizer.json (what decode_ids looks ids up in)."""
    tokens = SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + list(tok["alphabet"])
    seen = set(tokens)
    for a, b in tok["merges"]:
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
    return tokens


def _read_tokenizer(tok, where):
    if isinstance(tok, (str, os.PathLike)):
        p = os.path.join(tok, MODEL_DIR_FILES["tokenizer"]) if os.path.isdir(tok) else tok
        if not os.path.exists(p):
            raise FileNotFoundError(f"{where}: no tokenizer file at {p}")
        with open(p, encoding="utf-8") as f:
            try:
                tok = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: {p} is not valid JSON: {e}") from None
    if not isinstance(tok, dict) or tok.get("format") != "hasten-bpe" or tok.get("version") != 1:
        raise ValueError(f'{where}: expected a Hasten tokenizer ({{"format": "hasten-bpe", "version": 1, ...}})')
    if tok.get("specials") != SPECIALS or not isinstance(tok.get("vocabSize"), int):
        raise ValueError(f"{where}: tokenizer must have specials {SPECIALS} and an integer vocabSize")
    return tok


def decode_ids(tok, ids):
    """Token ids -> text, as BpeTokenizer.decode: specials dropped, byte runs decoded as UTF-8
    (invalid bytes become U+FFFD), word markers to spaces, the first space dropped.
    tok: the parsed tokenizer.json, or tokenizer_tokens(tok) to skip rebuilding the list per call."""
    tokens = tok if isinstance(tok, list) else tokenizer_tokens(tok)
    out, run = [], bytearray()
    for i in ids:
        if not 0 <= i < len(tokens):
            raise ValueError(f"decode_ids: id {i} is outside the vocabulary [0, {len(tokens)})")
        if 5 <= i < 261:
            run.append(i - 5)
            continue
        if run:
            out.append(run.decode("utf-8", errors="replace"))
            run = bytearray()
        if i >= 5:
            out.append(tokens[i].replace("\u2581", " "))
    if run:
        out.append(run.decode("utf-8", errors="replace"))
    s = "".join(out)
    return s[1:] if s.startswith(" ") else s


# ---------------------------------------------------------------------------------------------
# Model directories (nn/models/model-dir.ts):
#   version 1: {format, version: 1, task, src, tgt, model: TransformerConfig, decoding, training?}
#   version 2: {format, version: 2, kind, config, task, src, tgt, decoding, training?}, kind one of
#              MODEL_BUILDERS ("transformer": TransformerConfig; "markov": MarkovConfig)

def _load_json(path, where):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: {path} is not valid JSON: {e}") from None


def _check_dir_config(c, where):
    if c.get("task") != "translation":
        raise ValueError(f'{where}: task must be "translation", got {c.get("task")!r}')
    for k in ("src", "tgt"):
        if not isinstance(c.get(k), str) or not c[k]:
            raise ValueError(f'{where}: {k} must be a language code such as "de", got {c.get(k)!r}')
    d = c.get("decoding")
    if not isinstance(d, dict):
        raise ValueError(f"{where}: decoding must be an object {{maxLenA, maxLenB, beam, lengthPenalty}}, got {d!r}")
    for k in ("maxLenA", "maxLenB", "lengthPenalty"):
        if not isinstance(d.get(k), (int, float)) or isinstance(d.get(k), bool) or not (math.isfinite(d[k]) and d[k] >= 0):
            raise ValueError(f"{where}: decoding.{k} must be a finite number >= 0, got {d.get(k)!r}")
    if not isinstance(d.get("beam"), int) or d["beam"] < 1:
        raise ValueError(f"{where}: decoding.beam must be an integer >= 1, got {d.get('beam')!r}")
    if "training" in c and not isinstance(c["training"], dict):
        raise ValueError(f"{where}: training must be an object, got {c['training']!r}")


def _check_agreement(mc, tok, where):
    n = tok["vocabSize"]
    if mc["srcVocab"] != n or mc["tgtVocab"] != n:
        raise ValueError(f"{where}: the tokenizer has {n} tokens but the model expects srcVocab {mc['srcVocab']} and tgtVocab {mc['tgtVocab']}")
    if mc["padId"] != PAD:
        raise ValueError(f"{where}: the model's padId is {mc['padId']} but the tokenizer's is {PAD}")


def load_model_dir(path, device="cpu"):
    """Loads a Hasten model directory (version 1 or 2) -> (model in eval mode, config).
    The model is built by MODEL_BUILDERS[kind] (kind "transformer": Transformer, "markov":
    MarkovTransformer); its config (Hasten's names) is model.config, its kind model.kind.
    config: {task, src, tgt, decoding, training?, tokenizer (the parsed tokenizer.json), version, kind}.
    Weights of any float dtype load as float32."""
    root = os.path.abspath(path)
    where = f"load_model_dir: {root}"
    if not os.path.exists(root):
        raise FileNotFoundError(f"load_model_dir: no model directory at {root}")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"load_model_dir: {root} is a file, expected a model directory ({', '.join(MODEL_DIR_FILES.values())})")
    files = {}
    for key, name in MODEL_DIR_FILES.items():
        files[key] = os.path.join(root, name)
        if not os.path.exists(files[key]):
            raise FileNotFoundError(f"load_model_dir: {files[key]} is missing (a model directory holds {', '.join(MODEL_DIR_FILES.values())})")
    raw = _load_json(files["config"], "load_model_dir")
    where = f"load_model_dir: {files['config']}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("format") != MODEL_DIR_FORMAT:
        raise ValueError(f'{where}: expected format "{MODEL_DIR_FORMAT}", got {raw.get("format")!r}')
    version = raw.get("version")
    if version == 1:
        kind, mc = "transformer", raw.get("model")
    elif version == 2:
        kind, mc = raw.get("kind"), raw.get("config")
        if kind not in MODEL_BUILDERS:
            raise ValueError(f"{where}: model kind {kind!r} is not supported by hasten_torch (supported: {', '.join(MODEL_BUILDERS)})")
    else:
        raise ValueError(f"{where}: unknown version {version!r} (hasten_torch reads versions 1 and 2)")
    if not isinstance(mc, dict):
        raise ValueError(f"{where}: {'model' if version == 1 else 'config'} must be a {kind} config object, got {mc!r}")
    MODEL_BUILDERS[kind].check_config(mc, where)
    _check_dir_config(raw, where)
    tok = _read_tokenizer(files["tokenizer"], "load_model_dir")
    _check_agreement(mc, tok, where)
    model = build_model(kind, mc)
    state, _ = read_safetensors(files["weights"])
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: expected {list(own[k].shape)}, got {list(state[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        problems = [f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(unexpected)}" if unexpected else "", "; ".join(shapes)]
        raise ValueError(f"load_model_dir: {files['weights']} does not match the config: " + ". ".join(p for p in problems if p))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    config = {k: raw[k] for k in ("task", "src", "tgt", "decoding", "training") if k in raw}
    config["tokenizer"] = tok
    config["version"] = version
    config["kind"] = kind
    return model.to(device).eval(), config


def save_model_dir(model, config, path, tokenizer=None, version=2, dtype="F32", kind=None, decoding=None, training=None):
    """Writes a Hasten model directory: config.json (version 2, or 1 for Hasten releases before the
    model-kinds restructuring; Transformers only), tokenizer.json and model.safetensors (dtype
    "F32", "F16" or "BF16"). config: {task, src, tgt, decoding, training?} as load_model_dir
    returns it; the model's own config comes from model.config and its kind from model.kind
    (kind=, when given, must agree). decoding= and training= (dicts) replace config's.
    tokenizer: a tokenizer.json path, a model directory or the parsed JSON (default:
    config["tokenizer"]). Written into a hidden sibling folder, then renamed into place; an
    existing folder is replaced only when it is a model directory (or empty)."""
    target = os.path.abspath(path)
    if version not in (1, 2):
        raise ValueError(f"save_model_dir: version must be 1 or 2, got {version!r}")
    own = getattr(model, "kind", None)
    if own not in MODEL_BUILDERS or not isinstance(model, MODEL_BUILDERS[own]):
        raise TypeError(f"save_model_dir: expected a hasten_torch model ({', '.join(c.__name__ for c in MODEL_BUILDERS.values())}), got {type(model).__name__} (unwrap DDP/FSDP first: model.module)")
    if kind is not None and kind != own:
        raise ValueError(f"save_model_dir: kind {kind!r} given, but the model is a {type(model).__name__} (kind {own!r})")
    kind = own
    if version == 1 and kind != "transformer":
        raise ValueError(f"save_model_dir: version 1 directories hold Transformers only; save a {kind!r} model as version 2")
    mc = dict(model.config)
    MODEL_BUILDERS[kind].check_config(mc, "save_model_dir")
    config = dict(config or {})
    if decoding is not None:
        config["decoding"] = decoding
    if training is not None:
        config["training"] = training
    body = {k: config[k] for k in ("task", "src", "tgt", "decoding", "training") if k in config}
    _check_dir_config(body, "save_model_dir")
    tok = tokenizer if tokenizer is not None else config.get("tokenizer")
    if tok is None:
        raise ValueError("save_model_dir: no tokenizer: pass tokenizer= (a tokenizer.json path, a model directory or its parsed JSON)")
    tok = _read_tokenizer(tok, "save_model_dir")
    _check_agreement(mc, tok, "save_model_dir")
    head = {"format": MODEL_DIR_FORMAT, "version": version}
    head.update({"task": body["task"], "src": body["src"], "tgt": body["tgt"], "model": mc} if version == 1 else
                {"kind": kind, "config": mc, "task": body["task"], "src": body["src"], "tgt": body["tgt"]})
    head["decoding"] = body["decoding"]
    if "training" in body:
        head["training"] = body["training"]
    old = None
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise FileExistsError(f"save_model_dir: {target} exists and is not a directory")
        old = os.listdir(target)
        if old and MODEL_DIR_FILES["config"] not in old:
            raise FileExistsError(f"save_model_dir: refusing to replace {target}: it is not empty and holds no config.json, so it is not a model directory")
    parent, base = os.path.dirname(target), os.path.basename(target)
    os.makedirs(parent, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp = os.path.join(parent, f".{base}.tmp-{tag}")
    os.mkdir(tmp)
    try:
        state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        write_safetensors(os.path.join(tmp, MODEL_DIR_FILES["weights"]), state,
                          {"format": MODEL_DIR_FORMAT, "kind": kind, "src": body["src"], "tgt": body["tgt"]}, dtype=dtype)
        for key, obj in (("tokenizer", tok), ("config", head)):
            with open(os.path.join(tmp, MODEL_DIR_FILES[key]), "w", encoding="utf-8") as f:
                f.write(json.dumps(obj, ensure_ascii=False, indent=2 if key == "config" else None) + ("\n" if key == "config" else ""))
                f.flush()
                os.fsync(f.fileno())
        for name in old or []:  # keep what is not ours (READMEs, evaluation notes)
            if name not in MODEL_DIR_FILES.values():
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


# ---------------------------------------------------------------------------------------------

def _main(argv):
    if len(argv) < 2 or argv[0] not in ("info", "translate-ids"):
        raise SystemExit("usage: hasten_torch.py info DIR | translate-ids DIR [--beam K] < ids.jsonl")
    model, cfg = load_model_dir(argv[1])
    if argv[0] == "info":
        n = sum(p.numel() for p in model.parameters())
        print(json.dumps({"version": cfg["version"], "kind": cfg["kind"], "task": cfg["task"], "src": cfg["src"], "tgt": cfg["tgt"],
                          "parameters": n, "config": model.config, "decoding": cfg["decoding"]}, indent=2))
        return
    beam = int(argv[argv.index("--beam") + 1]) if "--beam" in argv else 1
    d = cfg["decoding"]
    sources = [json.loads(line) for line in sys.stdin if line.strip()]
    hyps = decode_corpus(model, sources, beam=beam, max_len_a=d["maxLenA"], max_len_b=d["maxLenB"],
                         banned=(UNK, MASK), **({"length_penalty": d["lengthPenalty"]} if beam > 1 else {}))
    for h in hyps:
        print(json.dumps(h[0]))


if __name__ == "__main__":
    try:
        _main(sys.argv[1:])
    except (OSError, ValueError) as e:  # bad input: the message says what, no traceback
        raise SystemExit(f"hasten_torch: {e}") from None
