// A whole training run of a translation Transformer: set up (or resume), loop over updates with
// logging, validation, checkpoints and Ctrl-C, and export the model at the end.
//
// Exact resume: a checkpoint holds everything the next update depends on (parameters, Adam
// moments and step, the dropout generator's position, the batcher's {seed, epoch, position});
// the learning rate is a pure function of the step. So training N steps, stopping, and resuming
// to 2N gives bit-identical losses and parameters to training 2N steps in one go.
import { mkdirSync } from "node:fs";
import { writeFileAtomic } from "../../core/atomic-write.ts";
import { saveSafetensors } from "../../core/serialize.ts";
import { Batcher, type Batch } from "../data/batcher.ts";
import { corpusBleu } from "../metrics/bleu.ts";
import { saveModelDir, type ModelDirConfig } from "../models/model-dir.ts";
import { Transformer, transformerConfig } from "../models/transformer.ts";
import { AdamW } from "../optim/adam.ts";
import { inverseSqrtLr } from "../optim/schedules.ts";
import type { BpeTokenizer } from "../tokenizer/bpe.ts";
import { loadCheckpoint, saveCheckpoint, type BestRecord, type CheckpointState, type ChunkWriter } from "./checkpoint.ts";
import type { TrainConfig } from "./config.ts";
import { TrainLog, type LogEntry } from "./log.ts";
import { lossCurveSvg } from "./plot.ts";
import { Progress, formatDuration, type ProgressStream } from "./progress.ts";
import { chooseTokenizer, corpusFiles, encodeCorpora, readCorpora, resolveConfig, selectBackend, type RunFiles } from "./setup.ts";
import { Trainer, type StepResult } from "./trainer.ts";

// Validation translation is injected (nn never imports decoding/): scripts wire it to greedy search.
export type TranslateFn = (m: { model: Transformer; tokenizer: BpeTokenizer }, lines: string[], opts: { maxLenA: number; maxLenB: number }) => string[] | Promise<string[]>;

export interface TrainHooks {
  translate?: TranslateFn;
  signal?: AbortSignal; // aborted (Ctrl-C): finish the step, write a checkpoint, return
  stderr?: ProgressStream;
  onStep?: (r: StepResult) => void;
  writeCheckpoint?: ChunkWriter; // for fault-injection tests
}

export interface TrainResult {
  config: TrainConfig;
  files: RunFiles;
  step: number;
  stoppedBy: "maxSteps" | "maxEpochs" | "interrupted";
  best: BestRecord | null;
  lastValid: { loss: number; nll: number; bleu: number | null } | null;
  tokensPerSec: number; // target tokens per second of training-step time, this session
  resumedFrom: number | null;
}

export async function trainTranslation(overrides: Partial<TrainConfig>, opts: { resume?: boolean } & TrainHooks = {}): Promise<TrainResult> {
  const t0 = Date.now();
  // ---- everything that can refuse the run, before the run folder is touched ----
  const { config: c, files, saved, savedTokenizerJson } = resolveConfig(overrides, opts.resume ?? false);
  const cf = corpusFiles(c);
  const backend = await selectBackend(c.backend, c.threads);
  const corpora = readCorpora(cf, saved);
  const tok = chooseTokenizer(c, files, corpora, savedTokenizerJson, saved);
  const data = encodeCorpora(c, tok.tokenizer, corpora);
  const tokenizer = tok.tokenizer;

  const modelConfig = transformerConfig({
    srcVocab: tokenizer.vocabSize, tgtVocab: tokenizer.vocabSize, dModel: c.dModel, heads: c.heads, ffn: c.ffn,
    encLayers: c.encLayers, decLayers: c.decLayers, dropout: c.dropout, attnDropout: c.attnDropout, activation: c.activation,
    maxLen: c.maxLen, positions: c.positions, tieEmbeddings: c.tieEmbeddings, tieOutput: true, padId: tokenizer.padId, seed: c.seed,
  });
  const model = new Transformer(modelConfig);
  const optimizer = new AdamW(model.namedParameters(), { lr: c.lr, betas: [c.beta1, c.beta2], eps: c.eps, weightDecay: c.weightDecay, checkFinite: false });
  const ids = { padId: tokenizer.padId, bosId: tokenizer.bosId, eosId: tokenizer.eosId };
  const batcher = new Batcher(data.train, { maxTokens: c.maxTokens, seed: c.seed, ...ids });
  const validBatches: Batch[] = [...new Batcher(data.valid, { maxTokens: c.maxTokens, shuffle: false, ...ids }).epochBatches()];
  const trainer = new Trainer(model, optimizer, {
    labelSmoothing: c.labelSmoothing, clipNorm: c.clipNorm, schedule: (s) => inverseSqrtLr(s, { peakLr: c.lr, warmup: c.warmup }),
  });
  try {
    return await runLoop();
  } finally {
    model.dispose();
    optimizer.dispose();
  }

  async function runLoop(): Promise<TrainResult> {
    let best: BestRecord | null = null, tokensBefore = 0, secondsBefore = 0;
    if (saved) {
      const parts = loadCheckpoint(files.checkpoint, backend);
      try {
        model.loadStateDict(parts.model);
        optimizer.loadStateDict({ ...parts.state.optimizer, buffers: parts.optimizer });
      } catch (e) {
        throw new Error(`hasten train: --resume: ${files.checkpoint} does not fit the model: ${(e as Error).message}`);
      } finally {
        for (const t of [...Object.values(parts.model), ...Object.values(parts.optimizer)]) t.dispose();
      }
      model.dropoutGenerator.setState(parts.state.dropoutRng);
      batcher.setState(parts.state.batcher);
      best = parts.state.best;
      tokensBefore = parts.state.tokens;
      secondsBefore = parts.state.seconds;
    }

    // ---- the run folder ----
    mkdirSync(files.dir, { recursive: true });
    writeFileAtomic(files.tokenizer, tok.json);
    writeFileAtomic(files.config, JSON.stringify({ config: c, trainDataSha256: corpora.trainDataSha256, tokenizerSha256: tok.sha256 }, null, 2) + "\n");
    const log = new TrainLog(files.log, saved ? saved.step : -1); // a fresh run starts the log over
    const elapsed = () => secondsBefore + (Date.now() - t0) / 1000;
    const progress = new Progress(opts.stderr ?? process.stderr, c.progress, c.maxSteps > 0 ? c.maxSteps : c.maxEpochs * batcher.batchesInEpoch);
    const startStep = trainer.step;
    log.append({ kind: "event", step: startStep, event: saved ? "resume" : "start", seconds: elapsed(),
      detail: `${data.train.length} training pairs (${data.dropped} dropped), vocabulary ${tokenizer.vocabSize} (${tok.source}), ${model.numParameters()} parameters, backend ${backend.name}` });
    progress.message(`${saved ? `resuming ${files.dir} at step ${startStep}` : `training into ${files.dir}`}: ${data.train.length} pairs, ` +
      `${batcher.batchesInEpoch} batches/epoch, vocabulary ${tokenizer.vocabSize} (${tok.source}), ${(model.numParameters() / 1e6).toFixed(2)}M parameters, backend ${backend.name}`);

    const writePlot = () => {
      const train = log.entries.filter((e): e is Extract<LogEntry, { kind: "train" }> => e.kind === "train");
      const valid = log.entries.filter((e): e is Extract<LogEntry, { kind: "valid" }> => e.kind === "valid");
      writeFileAtomic(files.plot, lossCurveSvg([
        { label: "train loss", color: "#1f77b4", points: train.map((e) => [e.step, e.loss]) },
        { label: "valid loss", color: "#ff7f0e", points: valid.map((e) => [e.step, e.loss]), markers: true },
      ], { title: `${c.src}→${c.tgt} ${files.dir.split(/[\\/]/).pop()}: label-smoothed loss per target token` }));
    };

    let lastValid: TrainResult["lastValid"] = null, lastEvalStep = -1, lastCkptStep = saved ? saved.step : -1;
    const evaluate = async () => {
      const v = await trainer.validate(validBatches);
      let bleu: number | null = null;
      const limit = c.validBleuLimit > 0 ? Math.min(c.validBleuLimit, data.validText.length) : data.validText.length;
      if (opts.translate) {
        const sub = data.validText.slice(0, limit);
        const hyps = await opts.translate({ model, tokenizer }, sub.map((p) => p.src), { maxLenA: c.maxLenA, maxLenB: c.maxLenB });
        model.train();
        bleu = corpusBleu(hyps, [sub.map((p) => p.tgt)]).score;
      }
      const step = trainer.step;
      lastValid = { loss: v.loss, nll: v.nll, bleu };
      lastEvalStep = step;
      log.append({ kind: "valid", step, loss: v.loss, nll: v.nll, bleu, bleuSentences: bleu === null ? 0 : limit, seconds: elapsed() });
      progress.message(`valid @ ${step}: loss ${v.loss.toFixed(3)}, nll ${v.nll.toFixed(3)} (ppl ${Math.exp(v.nll).toFixed(2)})${bleu === null ? "" : `, BLEU ${bleu.toFixed(2)} on ${limit} sentences`}`);
      const metric = c.bestBy === "bleu" && bleu !== null ? "bleu" : "loss";
      const value = metric === "bleu" ? bleu! : v.nll;
      const better = !best || best.metric !== metric || (metric === "bleu" ? value > best.value : value < best.value);
      if (better) {
        best = { metric, value, step };
        await saveSafetensors(files.best, model.stateDict(), { metadata: { "hasten.best": JSON.stringify(best) } });
        log.append({ kind: "event", step, event: "best", detail: `${metric} ${value.toFixed(4)}` });
      }
      writePlot();
    };

    const checkpoint = async () => {
      const step = trainer.step;
      const state: CheckpointState = {
        format: "hasten-train-checkpoint", version: 1, step, config: c,
        optimizer: { step: optimizer.stepCount, lr: optimizer.lr, hyper: optimizer.hyper() },
        dropoutRng: model.dropoutGenerator.getState(), batcher: batcher.getState(), best,
        tokens: tokensBefore + sessionTokens, seconds: elapsed(),
        tokenizerSha256: tok.sha256, trainDataSha256: corpora.trainDataSha256,
      };
      const o = optimizer.stateDict();
      try {
        await saveCheckpoint(files.checkpoint, { state, tokenizerJson: tok.json, model: model.stateDict(), optimizer: o.buffers }, opts.writeCheckpoint);
      } catch (e) {
        const kept = lastCkptStep >= 0 ? `the checkpoint of step ${lastCkptStep} is intact` : "no checkpoint was written";
        throw new Error(`hasten train: writing the checkpoint of step ${step} failed (${(e as Error).message}); ${kept}`);
      }
      lastCkptStep = step;
      log.append({ kind: "event", step, event: "checkpoint", seconds: elapsed() });
    };

    // ---- the loop ----
    const epochsDone = () => {
      const s = batcher.getState();
      return s.epoch + (s.position >= batcher.batchesInEpoch ? 1 : 0);
    };
    let sessionTokens = 0, stepSeconds = 0, stoppedBy: TrainResult["stoppedBy"] = "maxSteps";
    let iv = { loss: 0, tokens: 0, norm: 0, steps: 0, seconds: 0 };
    for (;;) {
      if (c.maxSteps > 0 && trainer.step >= c.maxSteps) { stoppedBy = "maxSteps"; break; }
      if (c.maxEpochs > 0 && epochsDone() >= c.maxEpochs) { stoppedBy = "maxEpochs"; break; }
      if (opts.signal?.aborted) { stoppedBy = "interrupted"; break; }
      const batch = batcher.next();
      const ts = performance.now();
      const r = await trainer.trainStep(batch);
      const dt = (performance.now() - ts) / 1000;
      stepSeconds += dt;
      sessionTokens += r.tokens;
      iv = { loss: iv.loss + r.loss * r.tokens, tokens: iv.tokens + r.tokens, norm: iv.norm + (r.gradNorm ?? 0), steps: iv.steps + 1, seconds: iv.seconds + dt };
      opts.onStep?.(r);
      const tokensPerSec = iv.tokens / Math.max(iv.seconds, 1e-9);
      const remaining = progress.mode === "none" ? 0 : (c.maxSteps > 0 ? c.maxSteps : c.maxEpochs * batcher.batchesInEpoch) - r.step;
      const fields = { step: r.step, epoch: batch.epoch + 1, loss: iv.loss / iv.tokens, tokensPerSec, lr: r.lr, etaSec: remaining > 0 ? (remaining * stepSeconds) / (r.step - startStep) : null };
      if (r.step % c.logEvery === 0) {
        log.append({ kind: "train", step: r.step, epoch: batch.epoch + 1, loss: iv.loss / iv.tokens, lr: r.lr,
          gradNorm: r.gradNorm === null ? null : iv.norm / iv.steps, tokens: iv.tokens, tokensPerSec, seconds: elapsed() });
        progress.update(fields, true);
        iv = { loss: 0, tokens: 0, norm: 0, steps: 0, seconds: 0 };
      } else if (progress.mode === "bar") progress.update(fields);
      if (c.evalEvery > 0 && r.step % c.evalEvery === 0) await evaluate();
      if (c.checkpointEvery > 0 && r.step % c.checkpointEvery === 0) await checkpoint();
      // Let signal handlers run between steps (a CPU step never yields on its own).
      await new Promise((res) => setImmediate(res));
    }

    // ---- the end: validation, checkpoint, plot, export ----
    const step = trainer.step;
    if (stoppedBy !== "interrupted" && lastEvalStep !== step) await evaluate();
    if (lastCkptStep !== step) await checkpoint();
    if (stoppedBy === "interrupted") {
      log.append({ kind: "event", step, event: "interrupted", seconds: elapsed(), detail: "checkpoint written; continue with --resume" });
      progress.message(`interrupted at step ${step}: checkpoint written to ${files.checkpoint}; continue with --resume`);
    } else {
      if (c.export === "best" && best) model.load(files.best);
      const mdc: ModelDirConfig = {
        task: "translation", src: c.src, tgt: c.tgt, model: model.config,
        decoding: { maxLenA: c.maxLenA, maxLenB: c.maxLenB, beam: c.beam, lengthPenalty: c.lengthPenalty },
        training: { steps: step, weights: c.export === "best" && best ? `best (step ${(best as BestRecord).step})` : "final", best, lastValid, config: c },
      };
      await saveModelDir(files.model, { model, tokenizer, config: mdc }, { floatDtype: "F16" });
      log.append({ kind: "event", step, event: "done", seconds: elapsed(), detail: `stopped by ${stoppedBy}; model exported to ${files.model}` });
      progress.message(`done at step ${step} (${stoppedBy}) in ${formatDuration(elapsed())}: model in ${files.model}`);
    }
    writePlot();
    progress.done();
    const result: TrainResult = {
      config: c, files, step, stoppedBy, best, lastValid,
      tokensPerSec: sessionTokens / Math.max(stepSeconds, 1e-9), resumedFrom: saved ? saved.step : null,
    };
    return result;
  }
}
