// Non-autoregressive models and their decoders: the parameter count of every NAT kind in closed
// form; one pass = the argmax of a single decoder pass for the chosen length; the length beam picks
// the best average log-probability; mask-predict re-masks ⌊L(T−t)/T⌋ tokens per iteration and
// changes nothing else; CTC's collapse; the uniform copy map; no buffer leaks; and the nat task
// trains (xe), resumes exactly and exports a model that translate and evaluate read.
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { getBackend, noGrad, setBackend, setLeakBackstop, tensor, tidy } from "../../core/index.ts";
import { ctcCollapse, natDecode, translateLines } from "../../decoding/index.ts";
import { cmlmKind, copyIndex, ctcKind, loadModelDir, natVanillaKind, readLog, train, type NatConfig, type NonAutoregressiveModel } from "../../nn/index.ts";
import { TempCorpora, TINY } from "../nn/train-fixture.ts";

setBackend("cpu");
const V = 24;
function tiny(kind: typeof cmlmKind, seed: number, extra: Partial<NatConfig> = {}): NonAutoregressiveModel {
  const c = kind.fromOptions({ dModel: 16, heads: 2, ffn: 32, encLayers: 1, decLayers: 1, dropout: 0, attnDropout: 0, activation: "relu", positions: "sinusoidal", tieEmbeddings: true, maxLen: 12, upsample: 2 },
    { size: V, padId: 0, seed, maskId: 4 });
  return kind.build({ ...c, ...extra }) as NonAutoregressiveModel;
}
const randomSources = (seed: number, n: number) => Array.from({ length: n }, (_, i) => Array.from({ length: 1 + ((seed + i * 7) % 5) }, (_, j) => 5 + ((seed * 31 + i * 17 + j * 13) % (V - 5))));

// The decoder's log-probabilities [T, V] for one sentence, one candidate (no cache, no tricks).
function passLogProbs(m: NonAutoregressiveModel, src: number[], decIn: number[], fromSource: boolean): number[][] {
  return noGrad(() => tidy(() => {
    const s = tensor([src], { dtype: "int32" }), mask = s.eq(0);
    const lp = m.decodeParallel(tensor([decIn], { dtype: "int32" }), m.encode(s, mask), mask, undefined, fromSource).logSoftmax(-1);
    const flat = Array.from(lp.dataSync());
    return Array.from({ length: decIn.length }, (_, t) => flat.slice(t * V, (t + 1) * V));
  }));
}
const BANNED = new Set([0, 1, 2, 3]); // pad, bos, eos, <unk>; [MASK] (4) is banned too except as the ctc blank
const argmaxAllowed = (row: number[], allowBlank: boolean) => {
  let best = -1;
  for (let v = 0; v < row.length; v++) if (!BANNED.has(v) && (allowBlank || v !== 4) && (best < 0 || row[v] > row[best])) best = v;
  return best;
};

test("parameter counts in closed form for cmlm, nat and ctc", () => {
  for (const kind of [cmlmKind, natVanillaKind, ctcKind]) {
    const m = tiny(kind, 1);
    assert.is(kind.numParameters(m.config as NatConfig), m.numParameters(), kind.name);
    m.dispose();
  }
});

test("copyIndex: monotone, starts at 0, ends at the last source token, covers every source position when T ≥ S", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 60 }), (S, T) => {
    const m = Array.from(copyIndex(S, T));
    assert.is(m[0], 0);
    for (let i = 1; i < T; i++) assert.ok(m[i] >= m[i - 1] && m[i] < S);
    if (T >= S) assert.equal([...new Set(m)].length, S);
  }), { seed: 2, numRuns: 200 });
});

test("ctc collapse merges repeats, then drops blanks", () => {
  assert.equal(ctcCollapse([7, 7, 4, 7, 9, 9, 4, 4], 4), [7, 7, 9]);
  assert.equal(ctcCollapse([4, 4], 4), []);
  fc.assert(fc.property(fc.array(fc.integer({ min: 4, max: 8 }), { maxLength: 20 }), (ids) => {
    const out = ctcCollapse(ids, 4);
    assert.ok(!out.includes(4));
    assert.ok(out.length <= ids.length);
    assert.equal(ctcCollapse(out, 4), out.filter((x, i) => i === 0 || x !== out[i - 1]), "collapsing twice only merges new neighbours");
  }), { seed: 4, numRuns: 200 });
});

test("one pass (cmlm): each candidate is the argmax of a single pass; the best average log-probability wins", async () => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 1e6 }), async (seed) => {
    const m = tiny(cmlmKind, seed % 1000);
    const srcs = randomSources(seed, 3);
    const got = await natDecode(m, srcs, { decoder: "nat", lengthBeam: 2 });
    const lenLp = noGrad(() => tidy(() => {
      const s = tensor(srcs.map((x) => [...x, ...Array(5 - x.length).fill(0)]), { dtype: "int32" }), mask = s.eq(0);
      return Array.from(m.predictLength(m.encode(s, mask), mask).logSoftmax(-1).dataSync());
    }));
    srcs.forEach((src, b) => {
      const cands = Array.from({ length: 11 }, (_, k) => k + 1).sort((x, y) => lenLp[b * 12 + y] - lenLp[b * 12 + x] || x - y).slice(0, 2);
      let best = { avg: -Infinity, tokens: [] as number[] };
      for (const L of cands) {
        const lp = passLogProbs(m, src, Array(L).fill(4), false);
        const toks = lp.map((row) => argmaxAllowed(row, false));
        const avg = toks.reduce((s, t, i) => s + lp[i][t], 0) / L;
        if (avg > best.avg) best = { avg, tokens: toks };
      }
      assert.equal(got[b].tokens, best.tokens, `seed ${seed}, sentence ${b}`);
      assert.ok(Math.abs(got[b].avgLogProb - best.avg) < 1e-4);
    });
    m.dispose();
  }), { seed: 7, numRuns: 6 });
});

test("mask-predict: T = 1 is the one-pass decode; more iterations never shorten or lengthen a candidate", async () => {
  const m = tiny(cmlmKind, 3);
  const srcs = randomSources(11, 4);
  const one = await natDecode(m, srcs, { decoder: "nat", lengthBeam: 2 });
  assert.equal(await natDecode(m, srcs, { decoder: "mask-predict", iterations: 1, lengthBeam: 2 }), one);
  const ten = await natDecode(m, srcs, { decoder: "mask-predict", iterations: 10, lengthBeam: 1 });
  const single = await natDecode(m, srcs, { decoder: "nat", lengthBeam: 1 });
  ten.forEach((h, i) => assert.is(h.tokens.length, single[i].tokens.length));
  m.dispose();
});

test("nat (copied source) and ctc decode from the copied source; ctc output is the collapse of the argmax path", async () => {
  const nat = tiny(natVanillaKind, 5);
  assert.is((await natDecode(nat, randomSources(2, 3))).length, 3);
  nat.dispose();
  const ctc = tiny(ctcKind, 6);
  const srcs = randomSources(9, 3);
  const got = await natDecode(ctc, srcs);
  srcs.forEach((src, b) => {
    const T = Math.min(12, 2 * src.length);
    const map = copyIndex(src.length, T);
    const lp = passLogProbs(ctc, src, Array.from(map, (j) => src[j]), true);
    assert.equal(got[b].tokens, ctcCollapse(lp.map((row) => argmaxAllowed(row, true)), 4), `sentence ${b}`);
  });
  ctc.dispose();
});

test("bad requests are refused clearly; decoding leaks no buffer", async () => {
  setLeakBackstop(false);
  const m = tiny(cmlmKind, 8);
  const ctc = tiny(ctcKind, 8);
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    try {
      await p;
    } catch (e) {
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(String(re));
  };
  await rejects(natDecode(m, [[5]], { decoder: "ctc" }), /the ctc decoder needs a ctc model/);
  await rejects(natDecode(ctc, [[5]], { decoder: "nat" }), /a ctc model decodes with the ctc decoder/);
  await rejects(natDecode(m, [[5]], { decoder: "nat", iterations: 3 }), /the nat decoder is one pass/);
  await rejects(natDecode(m, [[5]], { lengthBeam: 0 }), /lengthBeam must be an integer in \[1, 64\]/);
  const before = getBackend().liveBuffers();
  await natDecode(m, randomSources(1, 5), { decoder: "mask-predict", iterations: 3 });
  await natDecode(ctc, randomSources(1, 5));
  assert.is(getBackend().liveBuffers(), before);
  m.dispose();
  ctc.dispose();
});

const temp = new TempCorpora();
test.after(() => temp.remove());

test("the nat task: cmlm with xe trains, resumes exactly, exports a model that translate reads", async () => {
  const data = temp.make();
  const base = { ...TINY, task: "nat", model: "cmlm", data, maxSteps: 6, evalEvery: 3, lengthLossWeight: 0.1 };
  const full = await train({ ...base, out: join(data, "full") });
  await train({ ...base, out: join(data, "split"), maxSteps: 3 });
  await train({ out: join(data, "split"), maxSteps: 6 }, { resume: true });
  const losses = (d: string) => readLog(join(d, "log.jsonl")).filter((e) => e.kind === "train").map((e) => (e.kind === "train" ? e.loss : 0));
  assert.equal(losses(join(data, "split")), losses(join(data, "full")));
  assert.is(full.config.model, "cmlm");
  const cfg = JSON.parse(readFileSync(join(data, "full", "model", "config.json"), "utf8"));
  assert.equal([cfg.kind, cfg.task, cfg.src, cfg.tgt, cfg.decoding.decoder], ["cmlm", "nat", "de", "en", "auto"]);
  const md = loadModelDir(join(data, "full", "model"));
  const { translations } = await translateLines(md as never, ["der hund läuft ."], {});
  assert.is(translations.length, 1);
  md.model.dispose();
});

test("every objective trains its models: oaxe, ngram-oaxe and axe on cmlm, xe on nat, ctc on ctc; bad pairings are refused", async () => {
  const data = temp.make();
  const cases: [string, string, Record<string, unknown>][] = [
    ["cmlm", "oaxe", { truncate: 0.01 }], ["cmlm", "ngram-oaxe", { ngram: 2 }], ["cmlm", "axe", { axeDelta: 0.5 }], ["nat", "xe", {}], ["ctc", "ctc", {}],
  ];
  for (const [model, loss, extra] of cases) {
    const r = await train({ ...TINY, task: "nat", model, loss, data, maxSteps: 3, evalEvery: 3, out: join(data, `${model}-${loss}`), ...extra });
    assert.ok(r.lastValid !== null && Number.isFinite(r.lastValid.loss) && r.lastValid.loss > 0, `${model}/${loss}: ${JSON.stringify(r.lastValid)}`);
    const md = loadModelDir(join(data, `${model}-${loss}`, "model"));
    assert.is(md.config.decoding.dropBlank, loss === "axe");
    assert.is((await translateLines(md as never, ["der hund läuft ."], { dropBlank: loss === "axe" })).translations.length, 1);
    md.model.dispose();
  }
  let err = "";
  await train({ ...TINY, task: "nat", model: "cmlm", loss: "ctc", data, out: join(data, "bad") }).catch((e) => (err = (e as Error).message));
  assert.match(err, /`loss` ctc needs `model` ctc/);
  await train({ ...TINY, task: "nat", model: "ctc", loss: "oaxe", data, out: join(data, "bad2") }).catch((e) => (err = (e as Error).message));
  assert.match(err, /a `model` ctc trains with `loss` ctc/);
});

test("glancing training (glance 0.5, cmlm + xe) trains and resumes exactly; other pairings are refused", async () => {
  const data = temp.make();
  const base = { ...TINY, task: "nat", model: "cmlm", glance: 0.5, data, maxSteps: 6, evalEvery: 0 };
  const full = await train({ ...base, out: join(data, "full") });
  await train({ ...base, out: join(data, "split"), maxSteps: 3 });
  await train({ out: join(data, "split"), maxSteps: 6 }, { resume: true });
  const losses = (d: string) => readLog(join(d, "log.jsonl")).filter((e) => e.kind === "train").map((e) => (e.kind === "train" ? e.loss : 0));
  assert.equal(losses(join(data, "split")), losses(join(data, "full")));
  assert.ok(losses(join(data, "full")).every(Number.isFinite));
  const plain = await train({ ...base, glance: 0, out: join(data, "plain") });
  assert.is(full.config.glance, 0.5);
  assert.not.equal(losses(join(data, "plain")), losses(join(data, "full")), "glancing changes what is masked");
  assert.is(plain.step, 6);
  for (const [model, loss] of [["cmlm", "oaxe"], ["nat", "xe"]]) {
    let err = "";
    await train({ ...base, model, loss, out: join(data, `bad-${model}-${loss}`) }).catch((e) => (err = (e as Error).message));
    assert.match(err, /`glance` \(glancing training\) needs `model` cmlm and `loss` xe/);
  }
});

test("init across kinds: a ctc model warm-starts from a cmlm one (its length head left behind); an lm is refused", async () => {
  const data = temp.make();
  const base = { ...TINY, task: "nat", data, maxSteps: 1, evalEvery: 0 };
  await train({ ...base, model: "cmlm", out: join(data, "cmlm") });
  const messages: string[] = [];
  await train({ ...base, model: "ctc", loss: "ctc", init: join(data, "cmlm", "model"), lr: 1e-12, warmup: 0, dropout: 0, out: join(data, "ctc") }, {
    onEvent: (e) => e.type === "message" && messages.push(e.text),
  });
  assert.ok(messages.some((t) => /init from a cmlm model: left behind lengthHead\.weight, lengthHead\.bias/.test(t)), messages.join(" | "));
  const a = loadModelDir(join(data, "cmlm", "model")), b = loadModelDir(join(data, "ctc", "model"));
  const own = new Map(a.model.namedParameters());
  assert.ok(b.model.namedParameters().length > 0);
  for (const [n, q] of b.model.namedParameters()) {
    const x = own.get(n)!.dataSync(), y = q.dataSync();
    for (let i = 0; i < x.length; i++) if (Math.abs(x[i] - y[i]) > 1e-3 * Math.abs(x[i]) + 1e-6) assert.unreachable(`${n}[${i}]: ${x[i]} vs ${y[i]}`);
  }
  a.model.dispose();
  b.model.dispose();
  let err = "";
  await train({ ...TINY, task: "translation", model: "transformer", data, maxSteps: 1, evalEvery: 0, init: join(data, "cmlm", "model"), out: join(data, "bad-init") }).catch((e) => (err = (e as Error).message));
  assert.match(err, /`init`: .* holds a cmlm model \(non-autoregressive\), this run trains transformer \(encoder-decoder\)/);
});

test.run();
