// Awaits a promise that must reject, and checks that its message holds every part (a substring
// or a pattern). Returns the error for further checks.
import * as assert from "uvu/assert";

export async function rejectsWith(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<Error> {
  try {
    await p;
  } catch (e) {
    const msg = (e as Error).message;
    for (const s of parts) assert.ok(typeof s === "string" ? msg.includes(s) : s.test(msg), `message ${JSON.stringify(msg)} lacks ${s}`);
    return e as Error;
  }
  assert.unreachable(`expected a rejection mentioning ${parts.join(", ")}`);
  throw new Error("unreachable");
}
