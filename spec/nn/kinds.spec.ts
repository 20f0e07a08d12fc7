// Model kinds: the closed-form parameter count equals the built model's, for any valid config;
// stored configs are checked strictly and with bounds; the registry names what it knows.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { getModelKind, lmKind, modelKinds, registerModelKind, transformerKind } from "../../nn/index.ts";

const FC = { seed: 17, numRuns: 25 };

test("registry: the shipped kinds, unknown kinds named, no double registration", () => {
  assert.equal(modelKinds(), ["transformer", "lm", "markov", "cmlm", "nat", "ctc", "glide"]);
  assert.is(getModelKind("transformer").family, "encoder-decoder");
  assert.is(getModelKind("lm").family, "causal-lm");
  assert.is(getModelKind("markov").family, "encoder-decoder");
  assert.is(getModelKind("cmlm").family, "non-autoregressive");
  assert.is(getModelKind("glide").family, "glide-draft");
  assert.throws(() => getModelKind("rnn"), /unknown model kind "rnn"; registered kinds: transformer, lm, markov, cmlm, nat, ctc, glide/);
  assert.throws(() => registerModelKind(lmKind), /a model kind "lm" is already registered/);
});

test("transformer: numParameters(config) = the built model's count, for any small config", () => {
  fc.assert(fc.property(
    fc.record({ heads: fc.integer({ min: 1, max: 3 }), perHead: fc.constantFrom(2, 4), ffn: fc.integer({ min: 1, max: 24 }), enc: fc.integer({ min: 0, max: 2 }),
      dec: fc.integer({ min: 0, max: 2 }), vocab: fc.integer({ min: 5, max: 40 }), tie: fc.boolean(), tieOut: fc.boolean(), learned: fc.boolean(), maxLen: fc.integer({ min: 2, max: 20 }) }),
    (r) => {
      const c = transformerKind.check({
        srcVocab: r.vocab, tgtVocab: r.tie ? r.vocab : r.vocab + 3, dModel: r.heads * r.perHead, heads: r.heads, ffn: r.ffn, encLayers: r.enc, decLayers: r.dec,
        dropout: 0, attnDropout: 0, activation: "relu", maxLen: r.maxLen, positions: r.learned ? "learned" : "sinusoidal",
        tieEmbeddings: r.tie, tieOutput: r.tieOut, padId: 0, seed: 1,
      });
      const m = transformerKind.build(c);
      try {
        assert.is(transformerKind.numParameters(c), m.numParameters(), JSON.stringify(r));
      } finally {
        m.dispose();
      }
    }), FC);
});

test("lm: numParameters(config) = the built model's count, for any small config", () => {
  fc.assert(fc.property(
    fc.record({ heads: fc.integer({ min: 1, max: 3 }), perHead: fc.constantFrom(2, 4), ffn: fc.integer({ min: 1, max: 24 }), layers: fc.integer({ min: 0, max: 3 }),
      vocab: fc.integer({ min: 5, max: 40 }), tie: fc.boolean(), learned: fc.boolean(), maxLen: fc.integer({ min: 2, max: 20 }) }),
    (r) => {
      const c = lmKind.check({
        vocab: r.vocab, dModel: r.heads * r.perHead, heads: r.heads, ffn: r.ffn, layers: r.layers, dropout: 0, attnDropout: 0, activation: "gelu",
        maxLen: r.maxLen, positions: r.learned ? "learned" : "sinusoidal", tieEmbeddings: r.tie, window: null, seed: 0,
      });
      const m = lmKind.build(c);
      try {
        assert.is(lmKind.numParameters(c), m.numParameters(), JSON.stringify(r));
      } finally {
        m.dispose();
      }
    }), FC);
});

test("stored configs: unknown and missing fields, bounds and types are refused with the field named", () => {
  const ok = { srcVocab: 10, tgtVocab: 10, dModel: 8, heads: 2, ffn: 16, encLayers: 1, decLayers: 1, dropout: 0, attnDropout: 0, activation: "relu", maxLen: 16, positions: "sinusoidal", tieEmbeddings: true, tieOutput: true, padId: 0, seed: 1 };
  assert.equal(transformerKind.check(ok), ok);
  assert.throws(() => transformerKind.check({ ...ok, extra: 1 }), /unknown extra/);
  assert.throws(() => transformerKind.check({ ...ok, heads: undefined }), /heads must be an integer in \[1, 1024\]/);
  assert.throws(() => transformerKind.check({ ...ok, decLayers: 100000 }), /decLayers must be an integer in \[0, 1024\], got 100000/);
  assert.throws(() => transformerKind.check({ ...ok, ffn: 1 << 21 }), /ffn must be an integer in \[1, 1048576\]/);
  assert.throws(() => transformerKind.check({ ...ok, activation: "tanh" }), /activation must be relu or gelu, got tanh/);
  assert.throws(() => transformerKind.check({ ...ok, dropout: 1 }), /dropout must be a number in \[0, 1\), got 1/);
  assert.throws(() => transformerKind.check({ ...ok, padId: 10 }), /padId must be an id in \[0, 10\), got 10/);
  // Within every per-field bound, but 2³¹ parameters or more in total.
  assert.throws(() => transformerKind.check({ ...ok, dModel: 65536, heads: 1, ffn: 1 << 20, encLayers: 1024 }), /implies .* parameters, more than the limit/);
  assert.throws(() => transformerKind.check(null), /expected a config object, got null/);
  const lm = { vocab: 10, dModel: 8, heads: 2, ffn: 16, layers: 1, dropout: 0, attnDropout: 0, activation: "gelu", maxLen: 16, positions: "learned", tieEmbeddings: true, seed: 0 };
  assert.is(lmKind.check(lm).window, undefined, "a missing window means none");
  assert.is(lmKind.check({ ...lm, window: null }).window, undefined);
  assert.is(lmKind.check({ ...lm, window: 4 }).window, 4);
  assert.throws(() => lmKind.check({ ...lm, window: 0 }), /window must be a positive integer, got 0/);
});

test("fromOptions: a kind builds its config from the training settings and the tokenizer", () => {
  const o = { dModel: 8, heads: 2, ffn: 16, encLayers: 1, decLayers: 2, dropout: 0.1, attnDropout: 0, activation: "gelu", positions: "sinusoidal", tieEmbeddings: true, maxLen: 32 };
  const c = transformerKind.fromOptions(o, { size: 300, padId: 0, seed: 5 });
  assert.equal([c.srcVocab, c.tgtVocab, c.decLayers, c.activation, c.seed], [300, 300, 2, "gelu", 5]);
  const l = lmKind.fromOptions({ ...o, layers: 3, window: 0 }, { size: 300, padId: 0, seed: 5 });
  assert.equal([l.vocab, l.layers, l.window], [300, 3, undefined]);
});

test.run();
