// Module: dotted names, train/eval, state dicts, safetensors round trip, strict loading.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { getBackend, Generator, randn, saveSafetensors, tensor, tidy, type Tensor } from "../../core/index.ts";
import { Dropout, LayerNorm, Linear, Module, ModuleList, Transformer, transformerConfig } from "../../nn/index.ts";

class Block extends Module {
  readonly attn: Linear;
  readonly norm: LayerNorm;
  readonly drop: Dropout;
  constructor(g: Generator) {
    super();
    this.attn = this.registerModule("attn", new Linear(3, 3, { generator: g }));
    this.norm = this.registerModule("norm", new LayerNorm(3));
    this.drop = this.registerModule("drop", new Dropout(0.5, g));
  }
}

class Net extends Module {
  readonly scale: Tensor;
  readonly blocks: ModuleList<Block>;
  readonly head: Linear;
  constructor(seed = 1, headOut = 2) {
    super();
    const g = new Generator(seed);
    this.scale = this.registerParameter("scale", randn([3], { generator: g }));
    this.blocks = this.registerModule("blocks", new ModuleList([new Block(g), new Block(g)]));
    this.head = this.registerModule("head", new Linear(3, headOut, { bias: false, generator: g }));
  }
  forward(x: Tensor): Tensor {
    let h = x.mul(this.scale);
    for (const b of this.blocks) h = b.norm.forward(b.attn.forward(h)).add(h);
    return this.head.forward(h);
  }
}

const scratch = () => mkdtempSync(join(tmpdir(), "hasten-nn-"));
const values = (t: Tensor) => Array.from(t.dataSync());

test("namedParameters: dotted names in registration order", () => {
  const net = new Net();
  assert.equal(net.namedParameters().map(([n]) => n), [
    "scale",
    "blocks.0.attn.weight", "blocks.0.attn.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
    "blocks.1.attn.weight", "blocks.1.attn.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
    "head.weight",
  ]);
  assert.is(net.parameters().length, 10);
  assert.is(net.numParameters(), 3 + 2 * (9 + 3 + 3 + 3) + 6);
  assert.ok(net.parameters().every((p) => p.requiresGrad));
  net.dispose();
});

test("tied parameters are listed once; a tied Transformer has one embedding", () => {
  const t = new Transformer(transformerConfig({ vocab: 11, dModel: 8, heads: 2, ffn: 16, encLayers: 1, decLayers: 1 }));
  const names = t.namedParameters().map(([n]) => n);
  assert.is(names.filter((n) => n.includes("mbed")).length, 1);
  assert.ok(names.includes("embed.weight"));
  assert.is(t.srcEmbed, t.tgtEmbed);
  assert.ok(!names.some((n) => n.startsWith("outProj")));
  const u = new Transformer(transformerConfig({ srcVocab: 11, tgtVocab: 13, dModel: 8, heads: 2, ffn: 16, encLayers: 1, decLayers: 1, tieOutput: false }));
  const un = u.namedParameters().map(([n]) => n);
  assert.ok(un.includes("srcEmbed.weight") && un.includes("tgtEmbed.weight") && un.includes("outProj.weight"));
  assert.throws(() => transformerConfig({ srcVocab: 11, tgtVocab: 13, tieEmbeddings: true }), /joint vocabulary/);
  t.dispose();
  u.dispose();
});

test("train() / eval() reach every submodule", () => {
  const net = new Net();
  assert.ok([...net.namedModules()].every(([, m]) => m.training));
  net.eval();
  assert.ok([...net.namedModules()].every(([, m]) => !m.training));
  assert.is(net.blocks.get(1).drop.training, false);
  net.train();
  assert.is(net.blocks.get(1).drop.training, true);
  // Dropout is the identity in eval mode.
  const x = randn([4, 3], { generator: new Generator(3) });
  net.blocks.get(0).drop.eval();
  assert.equal(values(net.blocks.get(0).drop.forward(x)), values(x));
  net.dispose();
});

test("registration rejects bad and duplicate names", () => {
  class Bad extends Module {
    constructor(name: string, twice = false) {
      super();
      this.registerParameter(name, randn([2]));
      if (twice) this.registerModule(name, new LayerNorm(2));
    }
  }
  assert.throws(() => new Bad("a.b"), /invalid name "a\.b"/);
  assert.throws(() => new Bad("w", true), /"w" is already registered/);
  assert.throws(() => new ModuleList().get(0), /index 0 out of range for length 0/);
});

test("stateDict round trip through a safetensors file gives the same model", async () => {
  const a = new Net(1), b = new Net(2);
  const x = randn([5, 3], { generator: new Generator(9) });
  a.eval();
  b.eval();
  assert.not.equal(values(a.forward(x)), values(b.forward(x)));
  const path = join(scratch(), "net.safetensors");
  await a.save(path);
  const heldBefore = b.head.weight;
  const res = b.load(path);
  assert.equal(res, { missingKeys: [], unexpectedKeys: [] });
  assert.is(b.head.weight, heldBefore, "parameter objects stay the same");
  for (const [n, p] of a.namedParameters()) assert.equal(values(b.stateDict()[n]), values(p), n);
  assert.equal(values(b.forward(x)), values(a.forward(x)));
  a.dispose();
  b.dispose();
});

test("strict loading names missing, unexpected and mismatched keys and changes nothing", async () => {
  const net = new Net(1);
  const before = net.parameters().map(values);
  const dict = { ...new Net(2).stateDict() };
  delete dict["blocks.1.norm.bias"];
  dict["extra.weight"] = randn([2]);
  dict["head.weight"] = randn([5, 3]);
  try {
    net.loadStateDict(dict);
    assert.unreachable("should throw");
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, /missing keys: blocks\.1\.norm\.bias/);
    assert.match(msg, /unexpected keys: extra\.weight/);
    assert.match(msg, /head\.weight: expected float32\[2,3\], got float32\[5,3\]/);
  }
  assert.equal(net.parameters().map(values), before, "a failed load leaves parameters unchanged");

  // strict: false tolerates missing/unexpected names but never a wrong shape.
  assert.throws(() => net.loadStateDict(dict, { strict: false }), /head\.weight: expected/);
  dict["head.weight"] = randn([2, 3]);
  const r = net.loadStateDict(dict, { strict: false });
  assert.equal(r, { missingKeys: ["blocks.1.norm.bias"], unexpectedKeys: ["extra.weight"] });
  assert.equal(values(net.head.weight), values(dict["head.weight"]));

  // From a file: the error names the file too.
  const path = join(scratch(), "wrong.safetensors");
  await saveSafetensors(path, { scale: tensor([1, 2, 3]) });
  assert.throws(() => net.load(path), (e: Error) => e.message.startsWith(path) && /missing keys: blocks\.0\.attn\.weight/.test(e.message));
  net.dispose();
});

test("dispose frees every parameter buffer", () => {
  const live = getBackend().liveBuffers();
  const net = tidy(() => new Net(3, 4));
  assert.ok(getBackend().liveBuffers() > live, "parameters survive tidy()");
  net.dispose();
  assert.is(getBackend().liveBuffers(), live);
});

test.run();
