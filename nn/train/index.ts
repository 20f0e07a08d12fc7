// Training: config and flags, the update step, checkpoints, log, plot, progress, and the whole run.
export { CONFIG_KEYS, CONFIG_KEY_NAMES, DEFAULT_CONFIG, checkConfig, checkValue, resumeConflicts, toFlag, fromFlag, type TrainConfig, type KeySpec } from "./config.ts";
export { loadConfigFile, parseTrainArgs, trainUsage, type TrainArgs } from "./flags.ts";
export { CHECKPOINT_FORMAT, loadCheckpoint, readCheckpointHeader, saveCheckpoint, type BestRecord, type CheckpointParts, type CheckpointState, type ChunkWriter } from "./checkpoint.ts";
export { readLog, TrainLog, type EventEntry, type LogEntry, type TrainEntry, type ValidEntry } from "./log.ts";
export { lossCurveSvg, niceTicks, type PlotOptions, type Series } from "./plot.ts";
export { Progress, formatDuration, type ProgressFields, type ProgressStream } from "./progress.ts";
export { Trainer, type StepResult, type TrainerOptions, type ValidResult } from "./trainer.ts";
export { runFiles, selectBackend, type RunFiles } from "./setup.ts";
export { trainTranslation, type TrainHooks, type TrainResult, type TranslateFn } from "./run.ts";
