// Training tasks: one registration line each. A new task is its own file plus one line here.
import { glideTask } from "./glide.ts";
import { lmTask } from "./lm.ts";
import { natTask } from "./nat.ts";
import { registerTask } from "./task.ts";
import { translationTask } from "./translation.ts";

registerTask(translationTask);
registerTask(lmTask);
registerTask(natTask);
registerTask(glideTask);

export * from "./task.ts";
export { encodeStream, lmTask, paragraphs, readText, textFiles } from "./lm.ts";
export { glideTask } from "./glide.ts";
export { corpusFiles, encodeParallel, parallelBatches, validPairsThatFit, readParallelCorpus, sha256, translationTask, type ParallelCorpus } from "./translation.ts";
export { NAT_LOSSES, natTask, type NatLoss } from "./nat.ts";
