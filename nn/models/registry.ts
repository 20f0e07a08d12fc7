// The model kinds Hasten ships: one registration line each. A new kind is its own file (its class,
// config check and descriptor) plus one line here.
import { glideKind } from "./glide.ts";
import { registerModelKind } from "./kinds.ts";
import { lmKind } from "./lm.ts";
import { transformerKind } from "./transformer.ts";

registerModelKind(transformerKind);
registerModelKind(lmKind);
registerModelKind(glideKind);
