// Training tasks: one registration line each. A new task is its own file plus one line here.
import { lmTask } from "./lm.ts";
import { registerTask } from "./task.ts";
import { translationTask } from "./translation.ts";

registerTask(translationTask);
registerTask(lmTask);

export * from "./task.ts";
export { lmTask, paragraphs, textFiles } from "./lm.ts";
export { corpusFiles, sha256, translationTask } from "./translation.ts";
