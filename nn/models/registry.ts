// The model kinds Hasten ships: one registration line each. A new kind is its own file (its class,
// config check and descriptor) plus one line here.
import { glideKind } from "./glide.ts";
import { registerModelKind } from "./kinds.ts";
import { lmKind } from "./lm.ts";
import { markovKind } from "./markov.ts";
import { cmlmKind, ctcKind, natVanillaKind } from "./nat.ts";
import { transformerKind } from "./transformer.ts";

registerModelKind(transformerKind);
registerModelKind(lmKind);
registerModelKind(markovKind);
registerModelKind(cmlmKind);
registerModelKind(natVanillaKind);
registerModelKind(ctcKind);
registerModelKind(glideKind);
