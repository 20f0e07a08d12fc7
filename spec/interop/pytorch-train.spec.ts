// Training in PyTorch with Hasten's recipe (interop/pytorch/export-data.ts + train_torch.py):
//   - the export: ids decode back to the corpus text, a learned vocabulary equals the one
//     `hasten train` learns, and an LM stream holds bos p eos for every training paragraph;
//   - train_torch.py's batchers give Hasten's batches, element for element and in order
//     (translation and LM), and its fresh models are initialised with Hasten's distributions;
//   - a few CPU steps on a tiny Transformer: the loss falls, the model directory loads in Hasten,
//     Hasten's validation loss of it equals the one recorded, torch's logits equal Hasten's, and the
//     validation translations written by torch equal Hasten's greedy translations;
//   - SIGTERM stops a run cleanly with its weights saved; a setting fixed by the export is refused;
//   - device-train.sh expands @job references and gives each job the time left.
// Without a Python that imports torch every test is a counted skip, with the reason printed.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { noGrad, tensor, tidy } from "../../core/index.ts";
import { translateLines } from "../../decoding/index.ts";
import { exportData } from "../../interop/pytorch/export-data.ts";
import { findTorchPython } from "../../interop/pytorch/python.ts";
import {
  BpeTokenizer, checkConfig, getTask, loadModelDir, readLog, readText, Transformer, transformerConfig,
  type Batch, type LMBatch, type ModelDir, type TrainConfig,
} from "../../nn/index.ts";
import { skipTest } from "../helpers/skip.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const TRAIN_PY = fileURLToPath(new URL("../../interop/pytorch/train_torch.py", import.meta.url));
const DEVICE_SH = fileURLToPath(new URL("../../interop/pytorch/device-train.sh", import.meta.url));
const REPO = fileURLToPath(new URL("../..", import.meta.url));

// Captions written for this test; the training set also pairs them up two by two.
const PAIRS: [string, string][] = [
  ["Zwei Hunde spielen im Schnee.", "Two dogs are playing in the snow."],
  ["Ein Mann fährt mit dem Fahrrad eine Straße entlang.", "A man rides a bicycle down a street."],
  ["Eine Frau in einem roten Kleid singt auf einer Bühne.", "A woman in a red dress sings on a stage."],
  ["Kinder spielen Fußball auf einem grünen Feld.", "Children play soccer on a green field."],
  ["Ein kleines Mädchen isst ein Eis.", "A little girl is eating an ice cream."],
  ["Drei Männer arbeiten an einem Gebäude.", "Three men are working on a building."],
  ["Ein Junge springt in einen See.", "A boy jumps into a lake."],
  ["Eine Gruppe von Menschen wartet an einer Bushaltestelle.", "A group of people wait at a bus stop."],
  ["Ein schwarzer Hund rennt über den Strand.", "A black dog runs across the beach."],
  ["Zwei Frauen sitzen auf einer Bank und lachen.", "Two women sit on a bench and laugh."],
  ["Ein Koch bereitet in einer Küche Essen zu.", "A cook prepares food in a kitchen."],
  ["Ein Mann mit einem Hut spielt Gitarre.", "A man with a hat plays guitar."],
];
const TRAIN = [...PAIRS, ...PAIRS.map(([d, e], i) => [`${d} ${PAIRS[(i + 5) % PAIRS.length][0]}`, `${e} ${PAIRS[(i + 5) % PAIRS.length][1]}`] as [string, string])];
const VALID: [string, string][] = [
  ["Ein Hund spielt im Schnee.", "A dog plays in the snow."],
  ["Zwei Männer sitzen auf einer Bank.", "Two men sit on a bench."],
  ["Eine Frau spielt Gitarre auf der Straße.", "A woman plays guitar on the street."],
  ["Kinder springen in einen See.", "Children jump into a lake."],
];
// Model and run settings of the tiny runs (Hasten keys); the torch flags are these in kebab case.
const RUN = { dModel: 32, heads: 2, ffn: 64, encLayers: 1, decLayers: 1, maxLen: 128, maxTokens: 160, seed: 3, lr: 3e-3, warmup: 4 };
const flags = (o: Record<string, unknown>) => Object.entries(o).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(v)]);
const TOL = 1e-4;

const py = findTorchPython();
const NAMES = ["export: ids decode to the text; the learned vocabulary is Hasten's", "batches equal Hasten's (translation, lm)", "init distributions equal Hasten's",
  "a tiny transformer trains on CPU; Hasten loads it and agrees", "SIGTERM and --time-limit save; export settings are fixed", "device-train.sh: jobs, @references, time limits",
  "markov kind (hasten_torch.build_model)", "lm kind (hasten_lm)", "glide kind (hasten_lm)"];

if ("skip" in py) {
  const t = suite("pytorch training");
  for (const name of NAMES) skipTest(t, `pytorch training: ${name}`, py.skip);
  t.run();
} else {
  const root = mkdtempSync(join(tmpdir(), "hasten-torch-train-"));
  const corpus = join(root, "corpus");
  mkdirSync(corpus);
  for (const [split, pairs] of [["train", TRAIN], ["valid", VALID]] as const) {
    writeFileSync(join(corpus, `${split}.de`), pairs.map((p) => p[0] + "\n").join(""));
    writeFileSync(join(corpus, `${split}.en`), pairs.map((p) => p[1] + "\n").join(""));
  }
  const text = join(root, "text");
  mkdirSync(text);
  const para = (i: number) => `${PAIRS[i % PAIRS.length][1]}\n${PAIRS[(i * 5 + 1) % PAIRS.length][1]}`; // hard-wrapped: two lines a paragraph
  writeFileSync(join(text, "a.txt"), Array.from({ length: 30 }, (_, i) => para(i)).join("\n\n") + "\n");
  writeFileSync(join(text, "b.txt"), Array.from({ length: 20 }, (_, i) => para(i + 7)).join("\n\n") + "\n");
  writeFileSync(join(text, "held-out.txt"), "Never read.\n");

  // ---- the exports ----
  const pairData = exportData({ task: "translation", settings: { data: corpus, vocabSize: 400 }, out: join(root, "pairs") });
  const lmData = exportData({ task: "lm", settings: { data: text, exclude: "held-out.txt", vocabSize: 320, validFraction: 0.2 }, out: join(root, "lm") });
  const tok = BpeTokenizer.load(join(pairData.out, "tokenizer.json"));
  const lmTok = BpeTokenizer.load(join(lmData.out, "tokenizer.json"));
  const config = (meta: Record<string, any>, kind: string, o: Record<string, unknown>): TrainConfig =>
    checkConfig({ ...meta.defaults[kind], ...(kind === "glide" ? { target: "x" } : {}), ...o, out: "(spec)" });
  const cPairs = config(pairData.meta, "transformer", RUN);
  const cLm = config(lmData.meta, "lm", { seqLen: 8, maxTokens: 40, seed: 5 });
  const hastenPairs = getTask("translation").readData(cPairs);
  const pPairs = hastenPairs.prepare(tok, cPairs);
  const pLm = getTask("lm").readData(cLm).prepare(lmTok, cLm);
  const BATCHES = 2 * pPairs.train.batchesInEpoch + 1; // into the third epoch: per-epoch reshuffles too
  const LM_BATCHES = pLm.train.batchesInEpoch + 2;
  const hastenBatches = Array.from({ length: BATCHES }, () => pPairs.train.next() as Batch);
  const hastenLm = Array.from({ length: LM_BATCHES }, () => pLm.train.next() as LMBatch);

  // ---- the PyTorch side: one driver process, then the training runs ----
  const driver = (ops: Record<string, unknown>[]) => {
    const req = join(root, `req-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(req, JSON.stringify({ ops }));
    const r = spawnSync(py.python, [join(HERE, "pytorch_train_driver.py"), req], { encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`pytorch_train_driver.py failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stderr}`);
    return (JSON.parse(r.stdout.trim().split("\n").pop()!).results as Record<string, any>[]).map((x, i) => {
      if (x.error) throw new Error(`pytorch_train_driver: op ${i} (${(ops[i] as { op: string }).op}) failed: ${x.error}\n${x.trace}`);
      return x;
    });
  };
  const tinyConfig = transformerConfig({ vocab: tok.vocabSize, dModel: 64, heads: 4, ffn: 256, encLayers: 2, decLayers: 2, seed: 9 });
  const [torchPairs, torchLm, initStats, has] = driver([
    { op: "pair_batches", data: pairData.out, maxTokens: cPairs.maxTokens, seed: cPairs.seed, count: BATCHES },
    { op: "lm_batches", data: lmData.out, maxTokens: cLm.maxTokens, seed: cLm.seed, seqLen: cLm.seqLen, count: LM_BATCHES },
    { op: "init_stats", kind: "transformer", config: tinyConfig, seed: 9 },
    { op: "has" },
  ]);

  const trainRun = (out: string, extra: string[], kind = "transformer", data = pairData.out) =>
    spawnSync(py.python, [TRAIN_PY, "--data", data, "--out", out, "--kind", kind, "--device", "cpu", ...extra], { encoding: "utf8", timeout: 300_000 });
  const out = join(root, "run");
  const run = trainRun(out, [...flags({ ...RUN, maxSteps: 24, evalEvery: 12, logEvery: 4, validBleuLimit: 3 }), "--dtype", "F32", "--bleu", "on", "--threads", "1"]);
  const refused = trainRun(join(root, "refused"), ["--vocab-size", "500", "--max-steps", "1"]);

  // SIGTERM in the middle of a long run: it validates, saves and exits 0.
  const termOut = join(root, "term");
  const term = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(py.python, [TRAIN_PY, "--data", pairData.out, "--out", termOut, "--kind", "transformer", "--device", "cpu",
      ...flags({ ...RUN, maxSteps: 100000, evalEvery: 0, logEvery: 2 }), "--threads", "1"]);
    let stdout = "", stderr = "", sent = false;
    child.stdout.on("data", (d) => {
      stdout += d;
      if (!sent && /^step 4\//m.test(stdout)) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });

  // The other kinds, where this checkout's bridge has them: a few steps, then Hasten's validation
  // loss of the saved directory against the one torch recorded.
  const validOf = (dir: string, task: string, c: TrainConfig) => {
    const m = loadModelDir(dir);
    try {
      const p = getTask(task).readData(c).prepare(m.tokenizer, c);
      let loss = 0, nll = 0, n = 0;
      for (const b of p.valid) {
        const v = noGrad(() => tidy(() => p.validSums(m.model, b).dataSync()));
        [loss, nll, n] = [loss + v[0], nll + v[1], n + p.tokens(b)];
      }
      return { hasten: { loss: loss / n, nll: nll / n }, torch: (m.config.training as { lastValid: { loss: number; nll: number } }).lastValid, kind: m.config.kind };
    } finally {
      m.model.dispose();
    }
  };
  const otherKinds: Record<string, { skip: string } | { status: number | null; stderr: string; valid?: ReturnType<typeof validOf> }> = {};
  const MARKOV = { ...RUN, order: 2, variant: "strict" };
  const LM = { dModel: 32, heads: 2, ffn: 64, layers: 2, maxLen: 16, seqLen: 8, maxTokens: 40, lr: 3e-3, warmup: 4, seed: 5 };
  // The draft glimpses the lm trained just before (its target); the lm flags are Hasten's keys.
  const GLIDE = { dModel: 32, heads: 2, ffn: 64, layers: 1, seqLen: 8, maxTokens: 40, lr: 3e-3, warmup: 4, seed: 6, target: join(root, "kind-lm") };
  const noLm = "interop/pytorch/hasten_lm.py is absent (the lm kinds are not merged)";
  for (const [kind, ok, why, data, settings] of [
    ["markov", has.build_model, "hasten_torch has no build_model (the markov kind is not merged)", pairData, MARKOV],
    ["lm", has.hasten_lm, noLm, lmData, LM],
    ["glide", has.hasten_lm, noLm, lmData, GLIDE],
  ] as const) {
    if (!ok) {
      otherKinds[kind] = { skip: why };
      continue;
    }
    const dir = join(root, `kind-${kind}`);
    const r = trainRun(dir, [...flags({ ...settings, maxSteps: 8, evalEvery: 8, logEvery: 4 }), "--dtype", "F32", "--bleu", "off", "--threads", "1"], kind, data.out);
    otherKinds[kind] = { status: r.status, stderr: r.stderr, valid: r.status === 0 ? validOf(dir, (data.meta.tasks as Record<string, string>)[kind], config(data.meta, kind, settings)) : undefined };
  }

  // --time-limit: the run stops itself, validates and saves.
  const limitOut = join(root, "limit");
  const limited = trainRun(limitOut, [...flags({ ...RUN, maxSteps: 100000, evalEvery: 0, logEvery: 2 }), "--time-limit", "3", "--threads", "1"]);

  // Hasten's views of the torch-trained directory.
  let trained: ModelDir<Transformer> | undefined, hastenValid: { loss: number; nll: number } | undefined, hastenHyps: string[] = [];
  let torchLogits: Float32Array | undefined, torchTexts: string[] = [], logitsOf: number[] | undefined;
  const validSrc = VALID.map(([de]) => tok.encode(de)), validTgt = VALID.map(([, en]) => [tok.bosId, ...tok.encode(en)]);
  const padded = (rows: number[][]) => {
    const w = Math.max(...rows.map((r) => r.length));
    return tensor(rows.map((r) => [...r, ...new Array(w - r.length).fill(0)]), { dtype: "int32" });
  };
  if (run.status === 0) {
    trained = loadModelDir(out) as ModelDir<Transformer>;
    const pOwn = hastenPairs.prepare(trained.tokenizer, cPairs);
    let loss = 0, nll = 0, n = 0;
    for (const b of pOwn.valid) {
      const v = noGrad(() => tidy(() => pOwn.validSums(trained!.model, b).dataSync()));
      [loss, nll, n] = [loss + v[0], nll + v[1], n + pOwn.tokens(b)];
    }
    hastenValid = { loss: loss / n, nll: nll / n };
    const d = trained.config.decoding as { maxLenA: number; maxLenB: number };
    hastenHyps = (await translateLines(trained, VALID.slice(0, 3).map(([de]) => de), { beam: 1, maxLenA: d.maxLenA, maxLenB: d.maxLenB })).translations;
    const logitsFile = join(root, "torch-logits.f32");
    const r = spawnSync(py.python, [join(HERE, "pytorch_driver.py"), writeReq(root, [
      { op: "logits", dir: out, src: validSrc, tgt: validTgt, out: logitsFile },
      { op: "decode_ids", dir: out, ids: readPairs(pairData.out, "valid", "src") },
    ])], { encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
    if (r.status === 0) {
      const [lg, dec] = JSON.parse(r.stdout.trim().split("\n").pop()!).results;
      if (!lg.error) {
        const b = readFileSync(logitsFile);
        torchLogits = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
        logitsOf = lg.shape;
      }
      torchTexts = dec.texts ?? [];
    }
  }

  // device-train.sh, dry run: parsing, @references, time limits (no torch work).
  const jobsFile = join(root, "jobs.txt");
  writeFileSync(jobsFile, `# a comment\nfirst: --data ${pairData.out} --kind transformer --max-steps 5\nsecond: --data ${lmData.out} --kind glide --target @first  # needs first\n`);
  const dry = spawnSync("bash", [DEVICE_SH, "--jobs", jobsFile, "--deadline", "300", "--margin", "50", "--work", join(root, "work"), "--dry-run"],
    { encoding: "utf8", cwd: REPO, env: { ...process.env, OUT: join(root, "device-out") }, timeout: 60_000 });
  const badJobs = spawnSync("bash", [DEVICE_SH, "--work", join(root, "work2"), "--dry-run", `x: --data ${pairData.out} --target @nobody`],
    { encoding: "utf8", cwd: REPO, env: { ...process.env, OUT: join(root, "device-out2") }, timeout: 60_000 });

  const t = suite("pytorch training");
  t.after(() => {
    trained?.model.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  t(`export: ids decode to the text; the learned vocabulary is Hasten's (torch ${py.torch})`, () => {
    const learned = BpeTokenizer.train(hastenPairs.tokenizerLines(), { vocabSize: 400 });
    assert.is(JSON.stringify(tok.toJSON()), JSON.stringify(learned.toJSON()), "the export learns the vocabulary `hasten train` learns");
    for (const [split, pairs] of [["train", TRAIN], ["valid", VALID]] as const) {
      for (const [i, side] of [[0, "src"], [1, "tgt"]] as const) {
        assert.equal(readPairs(pairData.out, split, side).map((ids) => tok.decode(ids)), pairs.map((p) => p[i]), `${split}.${side}`);
      }
    }
    assert.equal(torchTexts, VALID.map(([de]) => de), "the bridge's decode_ids reads the exported ids as the same text");
    assert.is(readFileSync(join(pairData.out, "valid.ref.txt"), "utf8"), VALID.map(([, en]) => en + "\n").join(""));
    // LM: the stream is bos p eos for every training paragraph, in order; the held-out file is absent.
    const { train } = readText(cLm);
    const stream = torchLm.stream as number[];
    const paras: string[] = [];
    for (let i = 0; i < stream.length; ) {
      assert.is(stream[i], lmTok.bosId, `bos at ${i}`);
      const end = stream.indexOf(lmTok.eosId, i);
      paras.push(lmTok.decode(stream.slice(i + 1, end)));
      i = end + 1;
    }
    assert.equal(paras, train);
    assert.ok(!paras.some((p) => p.includes("Never read")), "the excluded file is not exported");
  });

  t("batches equal Hasten's (translation, lm)", () => {
    assert.is(torchPairs.batchesInEpoch, pPairs.train.batchesInEpoch, "batches per epoch");
    hastenBatches.forEach((h, i) => {
      const p = torchPairs.batches[i];
      const where = `translation batch ${i} (epoch ${h.epoch})`;
      assert.equal(p.srcShape, h.srcShape, `${where}: source shape`);
      assert.equal(p.tgtShape, h.tgtShape, `${where}: target shape`);
      assert.equal(p.src, Array.from(h.src), `${where}: src`);
      assert.equal(p.tgtIn, Array.from(h.tgtIn), `${where}: tgtIn`);
      assert.equal(p.tgtOut, Array.from(h.tgtOut), `${where}: tgtOut`);
      assert.is(p.numTokens, h.numTokens, `${where}: tokens`);
      assert.is(p.epoch, h.epoch, `${where}: epoch`);
    });
    hastenLm.forEach((h, i) => {
      const p = torchLm.batches[i];
      assert.equal(p.shape, h.shape, `lm batch ${i}: shape`);
      assert.equal(p.input, Array.from(h.input), `lm batch ${i}: input`);
      assert.equal(p.target, Array.from(h.target), `lm batch ${i}: target`);
    });
  });

  t("init distributions equal Hasten's", () => {
    const m = new Transformer(tinyConfig);
    try {
      const own = Object.fromEntries(m.namedParameters().map(([k, p]) => [k, Array.from(p.dataSync())]));
      const torch = initStats.stats as Record<string, [number, number, number]>;
      assert.equal(Object.keys(torch).sort(), Object.keys(own).sort(), "parameter names");
      for (const [k, [mean, std, n]] of Object.entries(torch)) {
        const v = own[k];
        assert.is(n, v.length, `${k}: size`);
        const hm = v.reduce((s, x) => s + x, 0) / n;
        const hs = Math.sqrt(v.reduce((s, x) => s + (x - hm) ** 2, 0) / Math.max(1, n - 1));
        if (hs === 0) {
          assert.is(std, 0, `${k}: constant in Hasten (${hm}), so in torch`);
          assert.ok(Math.abs(mean - hm) < 1e-7, `${k}: constant ${hm} in Hasten, mean ${mean} in torch`);
        } else {
          // Sample standard deviations of n draws agree within a few 1/√(2n) relative errors.
          const tol = 5 / Math.sqrt(2 * n) + 0.01;
          assert.ok(Math.abs(std / hs - 1) < tol, `${k}: std ${std} in torch vs ${hs} in Hasten (tolerance ${tol.toFixed(3)})`);
          assert.ok(Math.abs(mean - hm) < 5 * hs / Math.sqrt(n), `${k}: mean ${mean} in torch vs ${hm} in Hasten`);
        }
      }
    } finally {
      m.dispose();
    }
  });

  t("a tiny transformer trains on CPU; Hasten loads it and agrees", () => {
    assert.is(run.status, 0, `train_torch.py failed:\n${run.stderr}\n${run.stdout.slice(-2000)}`);
    const c = trained!.config;
    assert.is(c.kind, "transformer");
    const tr = c.training as Record<string, any>;
    assert.match(tr.trainer, /PyTorch/);
    assert.is(tr.device, "cpu");
    assert.is(tr.steps, 24);
    assert.is(tr.stoppedBy, "maxSteps");
    assert.is(tr.config.lr, RUN.lr);
    assert.is(tr.config.maxTokens, RUN.maxTokens);
    assert.is(tr.config.weightDecay, 1e-4, "the translation task's default, from Hasten's table");
    // The training loss falls (log in Hasten's log.jsonl format, read by Hasten's reader).
    const log = readLog(join(out, "train-log.jsonl"));
    const trainLoss = log.filter((e) => e.kind === "train").map((e) => (e as { loss: number }).loss);
    assert.is(trainLoss.length, 6);
    assert.ok(trainLoss[5] < trainLoss[0] - 0.3, `training loss ${trainLoss.map((x) => x.toFixed(3)).join(" → ")}`);
    const valid = log.filter((e) => e.kind === "valid") as { step: number; loss: number; nll: number }[];
    assert.equal(valid.map((v) => v.step), [12, 24]);
    assert.ok(valid[1].nll < Math.log(tok.vocabSize) - 0.5, `valid nll ${valid[1].nll} vs uniform ${Math.log(tok.vocabSize)}`);
    // Hasten's validation of the saved model is torch's.
    const last = tr.lastValid as { loss: number; nll: number };
    assert.ok(Math.abs(hastenValid!.loss - last.loss) <= TOL * last.loss, `valid loss: Hasten ${hastenValid!.loss}, torch ${last.loss}`);
    assert.ok(Math.abs(hastenValid!.nll - last.nll) <= TOL * last.nll, `valid nll: Hasten ${hastenValid!.nll}, torch ${last.nll}`);
    // Logits of the saved model: torch's equal Hasten's.
    assert.ok(torchLogits, "torch computed logits of the saved directory");
    const mine = noGrad(() => tidy(() => trained!.model.forward(padded(validSrc), padded(validTgt)).dataSync()));
    assert.equal(logitsOf, [VALID.length, Math.max(...validTgt.map((r) => r.length)), tok.vocabSize]);
    let d = 0;
    for (let i = 0; i < mine.length; i++) d = Math.max(d, Math.abs(mine[i] - torchLogits![i]));
    assert.ok(d <= TOL, `largest logit difference ${d}`);
    // The validation translations torch wrote are Hasten's greedy translations.
    const hyps = readFileSync(join(out, "valid-hyps.txt"), "utf8").split("\n").slice(0, -1);
    assert.equal(hyps, hastenHyps);
  });

  t("SIGTERM and --time-limit save; export settings are fixed", () => {
    type Rec = { stoppedBy: string; steps: number; lastValid: { loss: number } | null; lastValidStep: number | null };
    const training = (dir: string) => {
      const m = loadModelDir(dir);
      m.model.dispose();
      return m.config.training as Rec;
    };
    assert.is(term.code, 0, `SIGTERM run: ${term.stderr}`);
    const tr = training(termOut);
    assert.is(tr.stoppedBy, "signal SIGTERM");
    assert.ok(tr.steps >= 4, `steps ${tr.steps}`);
    assert.is(tr.lastValid, null, "an interrupted run saves at once, unvalidated (as Hasten's)");
    assert.is(limited.status, 0, `--time-limit run: ${limited.stderr}`);
    const lim = training(limitOut);
    assert.is(lim.stoppedBy, "timeLimit");
    assert.ok(lim.steps >= 1 && lim.lastValidStep === lim.steps && Number.isFinite(lim.lastValid!.loss), `validated at the end: ${JSON.stringify(lim)}`);
    assert.is(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /--vocab-size: the data was exported with vocab-size 400; export again to change it/);
  });

  t("device-train.sh: jobs, @references, time limits", () => {
    assert.is(dry.status, 0, dry.stderr + dry.stdout);
    const work = join(root, "work");
    const logOf = (job: string) => readFileSync(join(root, "device-out", "logs", `${job}.log`), "utf8");
    assert.match(logOf("first"), new RegExp(`job first: \\S+ interop/pytorch/train_torch.py --out ${work}/models/first --force --data ${pairData.out} --kind transformer --max-steps 5 --time-limit 2[0-5]\\d\\n`));
    assert.match(logOf("second"), new RegExp(`job second: .* --kind glide --target ${work}/models/first --time-limit \\d+\\n`));
    assert.match(dry.stdout, /smoke: 2 job\(s\): first second/);
    assert.match(dry.stdout, /train: 2 job\(s\): first second/);
    // The smoke phase: 2 steps, a validation and a save per job, BLEU only where there is translation.
    assert.match(logOf("smoke-first"), new RegExp(`--out ${work}/smoke/models/first .*--max-steps 5 --max-steps 2 --eval-every 2 --log-every 1 --time-limit 90 --valid-bleu-limit 16\\n`));
    assert.match(logOf("smoke-second"), new RegExp(`--target ${work}/smoke/models/first --max-steps 2 --eval-every 2 --log-every 1 --time-limit 90\\n`));
    assert.is(badJobs.status, 2);
    assert.match(badJobs.stderr, /job x refers to @nobody, which is not a job/);
  });
  for (const kind of ["markov", "lm", "glide"]) {
    const k = otherKinds[kind];
    const name = `${kind} kind (${kind === "markov" ? "hasten_torch.build_model" : "hasten_lm"})`;
    if ("skip" in k) {
      skipTest(t, `pytorch training: ${name}`, k.skip);
      continue;
    }
    t(`${name}: trains in torch; Hasten loads it with the recorded validation loss`, () => {
      assert.is(k.status, 0, `train_torch.py --kind ${kind} failed:\n${k.stderr}`);
      const v = k.valid!;
      assert.is(v.kind, kind);
      assert.ok(Math.abs(v.hasten.loss - v.torch.loss) <= TOL * v.torch.loss, `valid loss: Hasten ${v.hasten.loss}, torch ${v.torch.loss}`);
      assert.ok(Math.abs(v.hasten.nll - v.torch.nll) <= TOL * v.torch.nll, `valid nll: Hasten ${v.hasten.nll}, torch ${v.torch.nll}`);
    });
  }
  t.run();
}

function writeReq(root: string, ops: Record<string, unknown>[]): string {
  const p = join(root, `req-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(p, JSON.stringify({ ops }));
  return p;
}

// The sentences of one side of an exported split, as id lists.
function readPairs(dir: string, split: string, side: "src" | "tgt"): number[][] {
  const ids = readFileSync(join(dir, `${split}.${side}.ids`)), len = readFileSync(join(dir, `${split}.${side}.len`));
  const all = new Uint16Array(ids.buffer.slice(ids.byteOffset, ids.byteOffset + ids.byteLength));
  const n = new Uint32Array(len.buffer.slice(len.byteOffset, len.byteOffset + len.byteLength));
  const out: number[][] = [];
  let at = 0;
  for (const k of n) {
    out.push(Array.from(all.subarray(at, at + k)));
    at += k;
  }
  return out;
}
