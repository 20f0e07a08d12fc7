// Write a file so that readers see either the old contents or the new, never a torn mix.
//
// The recipe: write everything to a uniquely named temp file in the same directory (rename is
// only atomic within one filesystem), fsync it so the bytes are on disk before the name points at
// them, then rename it over the target. On any failure the temp file is removed and the error
// rethrown; the target is never opened for writing, so the old file stays as it was.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { mkdir, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * What can be written: bytes, a string (written as UTF-8), or chunks produced one at a time
 * (so a large checkpoint need not be copied into one buffer; a chunk source that throws part way
 * leaves the target untouched).
 */
export type AtomicData = Uint8Array | string | Iterable<Uint8Array>;
export type AtomicDataAsync = AtomicData | AsyncIterable<Uint8Array>;

export interface AtomicWriteOptions {
  /** Create missing parent directories first (default false: a missing directory is an error). */
  mkdir?: boolean;
  /** Permission bits of the new file (default 0o644, before the umask). */
  mode?: number;
}

/** A temp name beside the target: hidden, unique across processes (pid) and calls (random). */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function* chunksOf(data: AtomicData): Iterable<Uint8Array> {
  if (typeof data === "string") yield Buffer.from(data, "utf8");
  else if (data instanceof Uint8Array) yield data;
  else yield* data;
}

function checkChunk(chunk: unknown): Uint8Array {
  if (!(chunk instanceof Uint8Array)) {
    throw new Error(`writeFileAtomic: chunks must be Uint8Array, got ${Object.prototype.toString.call(chunk)}`);
  }
  return chunk;
}

/** Atomically replace `path` with `data`. */
export function writeFileAtomic(path: string, data: AtomicData, opts: AtomicWriteOptions = {}): void {
  if (opts.mkdir) mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  let fd: number | null = openSync(tmp, "wx", opts.mode ?? 0o644); // "x": never reuse an existing file
  try {
    for (const raw of chunksOf(data)) {
      const chunk = checkChunk(raw);
      // writeSync may write fewer bytes than asked; loop until the chunk is all out.
      let done = 0;
      while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // already failing; the original error is the one worth reporting
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // the temp file may never have been fully created
    }
    throw err;
  }
  syncDirectory(dirname(path));
}

/** Async version of writeFileAtomic; also accepts an async chunk source. */
export async function writeFileAtomicAsync(
  path: string,
  data: AtomicDataAsync,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  if (opts.mkdir) await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const handle = await open(tmp, "wx", opts.mode ?? 0o644);
  let closed = false;
  try {
    const source: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
      typeof data === "string" || data instanceof Uint8Array ? chunksOf(data) : data;
    for await (const raw of source) {
      const chunk = checkChunk(raw);
      let done = 0;
      while (done < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.length - done);
        done += bytesWritten;
      }
    }
    await handle.sync();
    closed = true;
    await handle.close();
    await rename(tmp, path);
  } catch (err) {
    if (!closed) await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  syncDirectory(dirname(path));
}

/**
 * Make the rename itself durable by fsyncing the directory entry. Best effort: some platforms
 * and filesystems refuse to open or fsync a directory, and the file is already in place.
 */
export function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // not supported here; the data itself was fsynced before the rename
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
