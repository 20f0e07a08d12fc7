// A whole training run of any task and model kind: set up (or resume), loop over updates with
// logging, validation, checkpoints and interruption, and export the model at the end.
//
// Exact resume: a checkpoint holds everything the next update depends on (parameters, Adam
// moments and step, the dropout generator's position, the batch source's {seed, epoch,
// position}); the learning rate is a pure function of the step. So training N steps, stopping,
// and resuming to 2N gives bit-identical losses and parameters to training 2N steps in one go.
import { mkdirSync } from "node:fs";
import { saveSafetensors, selectBackend, writeFileAtomic } from "../../core/index.ts";
import { getModelKind, loadModelDir, saveModelDir, type ModelDirConfig } from "../models/index.ts";
import { AdamW } from "../optim/adam.ts";
import { inverseSqrtLr } from "../optim/schedules.ts";
import type { TaskHooks } from "../tasks/index.ts";
import { loadCheckpoint, saveCheckpoint, type BestRecord, type CheckpointState, type ChunkWriter } from "./checkpoint.ts";
import { choices, type TrainConfig } from "./config.ts";
import { formatDuration, TrainLog, type LogEntry } from "./log.ts";
import { lossCurveSvg } from "./plot.ts";
import { acquireLock, removeOrphans } from "./run-dir.ts";
import { chooseTokenizer, resolveConfig, type RunFiles } from "./setup.ts";
import { Trainer, type StepResult } from "./trainer.ts";

// What a run reports as it goes; the command line draws it (a progress bar, lines, nothing).
export type TrainEvent =
  | { type: "start"; totalSteps: number; text: string }
  | { type: "message"; text: string }
  | { type: "step"; step: number; epoch: number; loss: number; tokensPerSec: number; lr: number; etaSec: number | null; logged: boolean };

export interface TrainHooks extends TaskHooks {
  signal?: AbortSignal; // aborted (Ctrl-C): finish the step, write a checkpoint, return
  onEvent?: (e: TrainEvent) => void;
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
  removedOrphans: string[]; // temporary files of a crashed run, cleaned up
}

// `overrides`: settings by key (task, model, out, maxTokens, …); `resume`: continue the
// checkpoint in `out`.
export async function train(overrides: Record<string, unknown>, opts: { resume?: boolean } & TrainHooks = {}): Promise<TrainResult> {
  const t0 = Date.now();
  const emit = opts.onEvent ?? (() => {});
  // ---- everything that can refuse the run, before the run folder is touched ----
  const { config: c, files, saved, savedTokenizerJson } = resolveConfig(overrides, opts.resume ?? false);
  const { task } = choices(c);
  const kind = getModelKind(c.model);
  const backend = await selectBackend(c.backend, { threads: c.threads });
  const data = task.readData(c);
  if (saved && saved.trainDataSha256 !== data.fingerprint) {
    throw new Error(`resume: the training data differs from the data the checkpoint was trained on (sha256 ${data.fingerprint.slice(0, 12)}… vs ${saved.trainDataSha256.slice(0, 12)}…)`);
  }
  const tok = chooseTokenizer(c, files, data, savedTokenizerJson, saved);
  const tokenizer = tok.tokenizer;
  const p = data.prepare(tokenizer, c);

  mkdirSync(files.dir, { recursive: true });
  const release = acquireLock(files);
  try {
    const removedOrphans = removeOrphans(files);
    const model = kind.build(kind.fromOptions(c, { size: tokenizer.vocabSize, padId: tokenizer.padId, seed: c.seed, maskId: tokenizer.maskId }));
    const optimizer = new AdamW(model.namedParameters(), { lr: c.lr, betas: [c.beta1, c.beta2], eps: c.eps, weightDecay: c.weightDecay, checkFinite: false });
    const trainer = new Trainer(model, optimizer, p, { clipNorm: c.clipNorm, schedule: (s) => inverseSqrtLr(s, { peakLr: c.lr, warmup: c.warmup }) });
    try {
      return { ...(await runLoop()), removedOrphans };
    } finally {
      model.dispose();
      optimizer.dispose();
      p.dispose?.();
    }

    async function runLoop(): Promise<Omit<TrainResult, "removedOrphans">> {
      let best: BestRecord | null = null, tokensBefore = 0, secondsBefore = 0;
      let lastValid: TrainResult["lastValid"] = null, lastEvalStep = -1;
      if (!saved && c.init) {
        const init = loadModelDir(c.init);
        try {
          if (init.config.kind === kind.name) model.loadStateDict(init.model.stateDict());
          else {
            // A warm start across kinds of one family (a ctc model from a cmlm one: same encoder,
            // decoder and embeddings, no length head): every parameter of the new model must come
            // from the init, with its shape; parameters only the init has are left behind.
            if (init.model.family !== model.family) throw new Error(`it holds a ${init.config.kind} model (${init.model.family}), this run trains ${kind.name} (${model.family})`);
            const { missingKeys, unexpectedKeys } = model.loadStateDict(init.model.stateDict(), { strict: false });
            if (missingKeys.length) throw new Error(`a ${init.config.kind} model lacks ${missingKeys.join(", ")} of ${kind.name}`);
            if (unexpectedKeys.length) emit({ type: "message", text: `init from a ${init.config.kind} model: left behind ${unexpectedKeys.join(", ")}` });
          }
        } catch (e) {
          throw new Error(`\`init\`: ${c.init} does not fit the model: ${(e as Error).message}`);
        } finally {
          init.model.dispose();
        }
      }
      if (saved) {
        const parts = loadCheckpoint(files.checkpoint, backend);
        try {
          model.loadStateDict(parts.model);
          optimizer.loadStateDict({ ...parts.state.optimizer, buffers: parts.optimizer });
        } catch (e) {
          throw new Error(`resume: ${files.checkpoint} does not fit the model: ${(e as Error).message}`);
        } finally {
          for (const t of [...Object.values(parts.model), ...Object.values(parts.optimizer)]) t.dispose();
        }
        model.dropoutGenerator.setState(parts.state.dropoutRng);
        p.train.setState(parts.state.batcher);
        best = parts.state.best;
        tokensBefore = parts.state.tokens;
        secondsBefore = parts.state.seconds;
        const le = parts.state.lastEval;
        if (le && le.step === parts.state.step) {
          lastEvalStep = le.step;
          lastValid = { loss: le.loss, nll: le.nll, bleu: le.bleu };
        }
      }

      // ---- the run folder ----
      writeFileAtomic(files.tokenizer, tok.json);
      writeFileAtomic(files.config, JSON.stringify({ config: c, trainDataSha256: data.fingerprint, tokenizerSha256: tok.sha256 }, null, 2) + "\n");
      const log = new TrainLog(files.log, saved ? saved.step : -1); // a fresh run starts the log over
      const elapsed = () => secondsBefore + (Date.now() - t0) / 1000;
      const totalSteps = c.maxSteps > 0 ? c.maxSteps : c.maxEpochs * p.train.batchesInEpoch;
      const startStep = trainer.step;
      log.append({ kind: "event", step: startStep, event: saved ? "resume" : "start", seconds: elapsed(),
        detail: `task ${task.name}, model ${kind.name}: ${p.describe}, vocabulary ${tokenizer.vocabSize} (${tok.source}), ${model.numParameters()} parameters, backend ${backend.name}` });
      emit({ type: "start", totalSteps, text: `${saved ? `resuming ${files.dir} at step ${startStep}` : `training into ${files.dir}`}: ${task.name} with ${kind.name}, ${p.describe}, ` +
        `${p.train.batchesInEpoch} batches/epoch, vocabulary ${tokenizer.vocabSize} (${tok.source}), ${(model.numParameters() / 1e6).toFixed(2)}M parameters, backend ${backend.name}` });
      if (removedOrphans.length) emit({ type: "message", text: `removed ${removedOrphans.length} temporary file(s) left by an interrupted run: ${removedOrphans.join(", ")}` });

      const title = c.src && c.tgt ? `${c.src}→${c.tgt} ` : `${task.name} `;
      const writePlot = () => {
        const trainPts = log.entries.filter((e): e is Extract<LogEntry, { kind: "train" }> => e.kind === "train");
        const validPts = log.entries.filter((e): e is Extract<LogEntry, { kind: "valid" }> => e.kind === "valid");
        writeFileAtomic(files.plot, lossCurveSvg([
          { label: "train loss", color: "#1f77b4", points: trainPts.map((e) => [e.step, e.loss]) },
          { label: "valid loss", color: "#ff7f0e", points: validPts.map((e) => [e.step, e.loss]), markers: true },
        ], { title: `${title}${files.dir.split(/[\\/]/).pop()}: loss per target token` }));
      };

      let lastCkptStep = saved ? saved.step : -1;
      const evaluate = async () => {
        const v = await trainer.validate(p.valid);
        const extra = p.validExtra ? await p.validExtra(model, opts) : { bleu: null, bleuSentences: 0 };
        model.train();
        const bleu = extra.bleu;
        const step = trainer.step;
        lastValid = { loss: v.loss, nll: v.nll, bleu };
        lastEvalStep = step;
        log.append({ kind: "valid", step, loss: v.loss, nll: v.nll, bleu, bleuSentences: extra.bleuSentences, seconds: elapsed() });
        emit({ type: "message", text: `valid @ ${step}: loss ${v.loss.toFixed(3)}, nll ${v.nll.toFixed(3)} (ppl ${Math.exp(v.nll).toFixed(2)})${bleu === null ? "" : `, BLEU ${bleu.toFixed(2)} on ${extra.bleuSentences} sentences`}` });
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
        const lv = lastValid as TrainResult["lastValid"];
        const state: CheckpointState = {
          format: "hasten-train-checkpoint", version: 1, step, config: c,
          optimizer: { step: optimizer.stepCount, lr: optimizer.lr, hyper: optimizer.hyper() },
          dropoutRng: model.dropoutGenerator.getState(), batcher: p.train.getState(), best,
          lastEval: lastEvalStep === step && lv ? { step, ...lv } : null,
          tokens: tokensBefore + sessionTokens, seconds: elapsed(),
          tokenizerSha256: tok.sha256, trainDataSha256: data.fingerprint,
        };
        const o = optimizer.stateDict();
        try {
          await saveCheckpoint(files.checkpoint, { state, tokenizerJson: tok.json, model: model.stateDict(), optimizer: o.buffers }, opts.writeCheckpoint);
        } catch (e) {
          const kept = lastCkptStep >= 0 ? `the checkpoint of step ${lastCkptStep} is intact` : "no checkpoint was written";
          throw new Error(`writing the checkpoint of step ${step} failed (${(e as Error).message}); ${kept}`);
        }
        lastCkptStep = step;
        log.append({ kind: "event", step, event: "checkpoint", seconds: elapsed() });
      };

      // ---- the loop ----
      const epochsDone = () => {
        const s = p.train.getState();
        return s.epoch + (s.position >= p.train.batchesInEpoch ? 1 : 0);
      };
      let sessionTokens = 0, stepSeconds = 0, stoppedBy: TrainResult["stoppedBy"] = "maxSteps";
      let iv = { loss: 0, tokens: 0, norm: 0, steps: 0, seconds: 0 };
      for (;;) {
        if (c.maxSteps > 0 && trainer.step >= c.maxSteps) { stoppedBy = "maxSteps"; break; }
        if (c.maxEpochs > 0 && epochsDone() >= c.maxEpochs) { stoppedBy = "maxEpochs"; break; }
        if (opts.signal?.aborted) { stoppedBy = "interrupted"; break; }
        const batches = Array.from({ length: c.accumulate }, () => p.train.next());
        const epoch = p.train.getState().epoch + 1;
        const ts = performance.now();
        const r = await trainer.trainStep(...batches);
        const dt = (performance.now() - ts) / 1000;
        stepSeconds += dt;
        sessionTokens += r.tokens;
        iv = { loss: iv.loss + r.loss * r.tokens, tokens: iv.tokens + r.tokens, norm: iv.norm + (r.gradNorm ?? 0), steps: iv.steps + 1, seconds: iv.seconds + dt };
        opts.onStep?.(r);
        const tokensPerSec = iv.tokens / Math.max(iv.seconds, 1e-9);
        const remaining = totalSteps - r.step;
        const logged = r.step % c.logEvery === 0;
        emit({ type: "step", step: r.step, epoch, loss: iv.loss / iv.tokens, tokensPerSec, lr: r.lr, etaSec: remaining > 0 ? (remaining * stepSeconds) / (r.step - startStep) : null, logged });
        if (logged) {
          log.append({ kind: "train", step: r.step, epoch, loss: iv.loss / iv.tokens, lr: r.lr,
            gradNorm: r.gradNorm === null ? null : iv.norm / iv.steps, tokens: iv.tokens, tokensPerSec, seconds: elapsed() });
          iv = { loss: 0, tokens: 0, norm: 0, steps: 0, seconds: 0 };
        }
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
        log.append({ kind: "event", step, event: "interrupted", seconds: elapsed(), detail: "checkpoint written; continue with resume" });
        emit({ type: "message", text: `interrupted at step ${step}: checkpoint written to ${files.checkpoint}; continue with \`resume\`` });
      } else {
        if (c.export === "best" && best) model.load(files.best);
        const info = p.exportInfo();
        const bestRec = best as BestRecord | null;
        const mdc: ModelDirConfig = {
          kind: kind.name, config: model.config, task: task.name, ...info,
          training: { steps: step, weights: c.export === "best" && bestRec ? `best (step ${bestRec.step})` : "final", best, lastValid, config: c },
        };
        await saveModelDir(files.model, { model, tokenizer, config: mdc }, { floatDtype: "F16" });
        log.append({ kind: "event", step, event: "done", seconds: elapsed(), detail: `stopped by ${stoppedBy}; model exported to ${files.model}` });
        emit({ type: "message", text: `done at step ${step} (${stoppedBy}) in ${formatDuration(elapsed())}: model in ${files.model}` });
      }
      writePlot();
      removeOrphans(files);
      return {
        config: c, files, step, stoppedBy, best, lastValid,
        tokensPerSec: sessionTokens / Math.max(stepSeconds, 1e-9), resumedFrom: saved ? saved.step : null,
      };
    }
  } finally {
    release();
  }
}
