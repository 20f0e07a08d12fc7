// All storage of the wasm backend lives inside one shared WebAssembly.Memory, so kernels on the
// main thread and in workers read and write tensors in place (zero copies). This file is the
// allocator for that memory. Its bookkeeping lives in JavaScript (only the main thread
// allocates); the memory itself holds nothing but payload.
//
// Design: 16-byte aligned blocks; a bump pointer `top` for fresh space; freed blocks go into
// power-of-two bins (bin b holds sizes in [16·2^b, 16·2^(b+1))) and coalesce with free
// neighbours on both sides (two maps: start → size and end → start), and a block that ends at
// `top` is handed back to the bump region. So alloc and free are O(1) apart from a short
// first-fit scan of one bin, and long-lived fragmentation stays low.

const ALIGN = 16;
const PAGE = 65536;
/** Addresses below this are never handed out, so 0 can mean "no pointer". */
const RESERVED = 1024;
const SCAN_LIMIT = 16; // blocks examined in the best bin before moving to a larger one

export interface HeapOptions {
  /** Bytes the memory starts with (rounded up to 64 KiB pages). Default 16 MiB. */
  initialBytes?: number;
  /** Largest size the memory may grow to. Default (and wasm32 limit) 4 GiB. */
  maximumBytes?: number;
}

function binOf(size: number): number {
  return 31 - Math.clz32(size / ALIGN);
}

export class Heap {
  readonly memory: WebAssembly.Memory;
  readonly maximumBytes: number;
  private buf: SharedArrayBuffer | ArrayBuffer;
  private top = RESERVED;
  private readonly live = new Map<number, number>(); // ptr → size of live blocks
  private readonly freeAt = new Map<number, number>(); // start → size of free blocks
  private readonly freeEnd = new Map<number, number>(); // end → start of free blocks
  private readonly bins: Set<number>[] = [];
  private liveTotal = 0;

  constructor(opts: HeapOptions = {}) {
    const maxPages = Math.min(65536, Math.ceil((opts.maximumBytes ?? 4 * 2 ** 30) / PAGE));
    this.maximumBytes = maxPages * PAGE;
    const initial = Math.min(maxPages, Math.max(1, Math.ceil((opts.initialBytes ?? 16 * 2 ** 20) / PAGE)));
    this.memory = new WebAssembly.Memory({ initial, maximum: maxPages, shared: true });
    this.buf = this.memory.buffer;
    for (let b = 0; b < 32; b++) this.bins.push(new Set());
  }

  /** Current size of the memory in bytes. */
  get byteLength(): number {
    // only ensure() grows the memory, and it refreshes buf (reading memory.buffer costs more)
    return this.buf.byteLength;
  }

  /** A 16-byte aligned block of at least `bytes` bytes (not zeroed). alloc(0) is a valid block. */
  alloc(bytes: number): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`heap.alloc: expected a byte count >= 0, got ${bytes}`);
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let ptr = this.takeFree(size);
    if (ptr < 0) {
      ptr = this.top;
      this.ensure(ptr + size);
      this.top = ptr + size;
    }
    this.live.set(ptr, size);
    this.liveTotal += size;
    return ptr;
  }

  /** Returns a block to the allocator. Freeing an unknown or already freed pointer throws. */
  free(ptr: number): void {
    let size = this.live.get(ptr);
    if (size === undefined) throw new Error(`heap.free: ${ptr} is not a live block (double free or foreign pointer)`);
    this.live.delete(ptr);
    this.liveTotal -= size;
    let start = ptr;
    // coalesce with the free block that ends where this one starts, and the one that follows
    const prev = this.freeEnd.get(start);
    if (prev !== undefined) {
      size += start - prev;
      this.removeFree(prev);
      start = prev;
    }
    const nextSize = this.freeAt.get(start + size);
    if (nextSize !== undefined) {
      this.removeFree(start + size);
      size += nextSize;
    }
    if (start + size === this.top) this.top = start; // give the tail back to the bump region
    else this.addFree(start, size);
  }

  /** Size in bytes of a live block (the rounded size actually reserved). */
  sizeOf(ptr: number): number {
    const s = this.live.get(ptr);
    if (s === undefined) throw new Error(`heap.sizeOf: ${ptr} is not a live block`);
    return s;
  }

  /** Number of live blocks; leak tests compare it before and after. */
  liveBlocks(): number {
    return this.live.size;
  }
  liveBytes(): number {
    return this.liveTotal;
  }
  /** Highest address ever in use by the bump region (for tests of reuse). */
  get highWater(): number {
    return this.top;
  }

  // Views. A shared memory's buffer never detaches, but after growth `memory.buffer` is a new,
  // longer SharedArrayBuffer: views of new blocks must come from it.
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.bufferFor(ptr + n * 4), ptr, n);
  }
  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.bufferFor(ptr + n * 4), ptr, n);
  }
  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.bufferFor(ptr + n), ptr, n);
  }

  private bufferFor(end: number): SharedArrayBuffer | ArrayBuffer {
    if (end > this.buf.byteLength) this.buf = this.memory.buffer;
    if (end > this.buf.byteLength) throw new Error(`heap: view ends at byte ${end}, memory has ${this.buf.byteLength}`);
    return this.buf;
  }

  /** Grows the memory so that byte `end` is addressable: at least doubling, to amortise. */
  private ensure(end: number) {
    const have = this.buf.byteLength;
    if (end <= have) return;
    if (end > this.maximumBytes) {
      // Say what holds the memory: a user can then tell one huge tensor from many live ones.
      const human = (b: number) => (b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(0)} MiB` : `${(b / 1024).toFixed(0)} KiB`);
      // the largest sizes with their counts: "4 × 249 MiB, 90 × 32 MiB, …"
      const counts = new Map<number, number>();
      for (const size of this.live.values()) counts.set(size, (counts.get(size) ?? 0) + 1);
      const largest = [...counts].sort((a, b) => b[0] - a[0]).slice(0, 5).map(([size, n]) => `${n} × ${human(size)}`).join(", ");
      throw new Error(`heap: out of memory: need ${end} bytes, maximum is ${this.maximumBytes} ` +
        `(asking for ${human(end - this.top)} more; ${human(this.liveTotal)} live in ${this.live.size} blocks, the largest: ${largest || "none"}; ` +
        `${human(this.top - this.liveTotal)} free but fragmented below the top)`);
    }
    const want = Math.min(this.maximumBytes, Math.max(end, have * 2));
    this.memory.grow(Math.ceil((want - have) / PAGE));
    this.buf = this.memory.buffer;
  }

  private takeFree(size: number): number {
    const b0 = binOf(size);
    let scanned = 0;
    if (this.bins[b0].size > 0) for (const start of this.bins[b0]) {
      const s = this.freeAt.get(start)!;
      if (s >= size) return this.split(start, s, size);
      if (++scanned >= SCAN_LIMIT) break;
    }
    // every block in a higher bin is at least 16·2^(b0+1) > size (empty bins skipped without
    // making an iterator: this runs on every allocation that found no block in its own bin)
    for (let b = b0 + 1; b < 32; b++) {
      if (this.bins[b].size === 0) continue;
      for (const start of this.bins[b]) return this.split(start, this.freeAt.get(start)!, size);
    }
    return -1;
  }

  private split(start: number, have: number, size: number): number {
    this.removeFree(start);
    if (have > size) this.addFree(start + size, have - size);
    return start;
  }

  private addFree(start: number, size: number) {
    this.freeAt.set(start, size);
    this.freeEnd.set(start + size, start);
    this.bins[binOf(size)].add(start);
  }

  private removeFree(start: number) {
    const size = this.freeAt.get(start)!;
    this.freeAt.delete(start);
    this.freeEnd.delete(start + size);
    this.bins[binOf(size)].delete(start);
  }
}
