"""hasten_data: Hasten's training data on the PyTorch side: the folders interop/pytorch/
export-data.ts writes, and Hasten's batchers, bit for bit.

    from hasten_data import read_meta, PairData, Batcher, LMBatcher, read_ids
    meta = read_meta(".device-data/multi30k-de-en")
    train = PairData(".device-data/multi30k-de-en", "train", meta["idDtype"], torch.device("cuda"))
    batcher = Batcher(train.src_len.tolist(), train.tgt_len.tolist(), max_tokens=4096, seed=1)
    src, tgt_in, tgt_out, n_tokens = train.batch(batcher.next(), pad=0, bos=1, eos=2)

Batcher and LMBatcher plan an epoch exactly as nn/data/batcher.ts and lm-batcher.ts do (the same
mulberry32 stream, the same Fisher-Yates shuffles, the same stable sort and token-budget cuts), so
with the same seed a PyTorch run sees Hasten's batches in Hasten's order; the spec
(spec/interop/pytorch-train.spec.ts) compares them element for element.
"""
from __future__ import annotations

import json
import os

import torch

DEVICE_DATA_FORMAT = "hasten-device-data"
M32 = 0xFFFFFFFF


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
        raise FileNotFoundError(f"{path} is missing (export the data with interop/pytorch/export-data.ts)")
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != DEVICE_DATA_FORMAT or meta.get("version") != 1:
        raise ValueError(f"{path} is not a {DEVICE_DATA_FORMAT} version 1 folder")
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
