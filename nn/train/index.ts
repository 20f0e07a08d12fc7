// Training: one trainer for every task and model kind, checkpoints, log, plot, and the whole run.
export { COMMON_OPTIONS, checkConfig, checkValue, choices, defaultConfig, optionTable, resumeConflicts, type CommonConfig, type TrainConfig } from "./config.ts";
export { CHECKPOINT_FORMAT, loadCheckpoint, readCheckpointHeader, saveCheckpoint, type BestRecord, type CheckpointParts, type CheckpointState, type ChunkWriter } from "./checkpoint.ts";
export { formatDuration, readLog, TrainLog, type EventEntry, type LogEntry, type TrainEntry, type ValidEntry } from "./log.ts";
export { lossCurveSvg, niceTicks, type PlotOptions, type Series } from "./plot.ts";
export { Trainer, type Objective, type StepResult, type TrainerOptions, type ValidResult } from "./trainer.ts";
export { acquireLock, removeOrphans } from "./run-dir.ts";
export { checkRunDir, runFiles, type RunFiles } from "./setup.ts";
export { train, type TrainEvent, type TrainHooks, type TrainResult } from "./run.ts";
