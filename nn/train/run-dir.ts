// Owning a run folder: one training process at a time (a lock file), and no litter from a crashed
// one (temporary files of atomic writes that never got renamed).
import { closeSync, existsSync, openSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { RunFiles } from "./setup.ts";

interface LockRecord {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

// Takes the folder's lock or refuses. A lock left by a process that no longer runs on this host
// (a crash, kill -9) is taken over, so a crash never leaves a run stuck. Returns the release.
export function acquireLock(files: RunFiles): () => void {
  const me: LockRecord = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(files.lock, "wx");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let held: Partial<LockRecord> = {};
      try {
        held = JSON.parse(readFileSync(files.lock, "utf8")) as LockRecord;
      } catch {
        // unreadable: written by a process that died mid-write; treat as stale
      }
      const running = typeof held.pid === "number" && held.host === me.host && held.pid !== process.pid && alive(held.pid);
      const elsewhere = typeof held.host === "string" && held.host !== me.host;
      if (running || elsewhere) {
        throw new Error(`${files.dir} is in use by another training process (pid ${held.pid} on ${held.host}, since ${held.started}); ` +
          `wait for it, or choose another \`out\` (if no training runs there, delete ${files.lock})`);
      }
      try {
        unlinkSync(files.lock); // stale
      } catch {
        // another process took it over first; the next attempt decides
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    return () => {
      try {
        const held = JSON.parse(readFileSync(files.lock, "utf8")) as LockRecord;
        if (held.pid === me.pid && held.host === me.host) unlinkSync(files.lock);
      } catch {
        // already gone
      }
    };
  }
  throw new Error(`${files.dir}: could not take the lock ${files.lock} (another process keeps taking it)`);
}

// Removes what crashed writers left in the run folder (only ever called while holding the lock,
// so nothing else is writing): temp files of atomic writes (.NAME.PID.HEX.tmp), half-written
// model directories (.model.tmp-*), and the old model set aside during a replacement
// (.model.old-*), which is put back when the crash came before the new one was in place.
export function removeOrphans(files: RunFiles): string[] {
  if (!existsSync(files.dir)) return [];
  const removed: string[] = [];
  const entries = readdirSync(files.dir);
  for (const name of entries) {
    const p = join(files.dir, name);
    if (/^\..+\.\d+\.[0-9a-f]+\.tmp$/.test(name) || /^\.model\.tmp-/.test(name)) {
      rmSync(p, { recursive: true, force: true });
      removed.push(name);
    }
  }
  const old = entries.filter((n) => /^\.model\.old-/.test(n)).sort();
  for (const [i, name] of old.entries()) {
    const p = join(files.dir, name);
    if (!existsSync(files.model) && i === old.length - 1) {
      renameSync(p, files.model); // the replacement never finished: the old model is the model
    } else {
      rmSync(p, { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}
