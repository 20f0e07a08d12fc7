// Whether a kernel call should use the workers, learned from the calls themselves. On a quiet
// machine a large kernel runs ~2x faster on two cores; when other processes hold the CPUs, a
// woken worker often shares a core with the caller and the call gets slower than on one thread.
// So for each (kernel, size class) we keep a moving average of the time per unit of work with
// and without workers, use the faster, and re-try the other every `probeEvery` calls so that a
// change of load is noticed. Results do not depend on the choice (every split gives the same
// bits), only the speed does.

interface Arm {
  msPerUnit: number;
  samples: number;
}

const ALPHA = 0.3; // weight of a new sample in the moving average
const WARM = 3; // samples of each arm before trusting the averages (the first is dropped)

export class ThreadChooser {
  private readonly stats = new Map<string, { one: Arm; many: Arm; calls: number; probe: number; probeArm: boolean; probeBest: number }>();

  constructor(readonly probeEvery = 32) {}

  private entry(key: string) {
    let s = this.stats.get(key);
    if (!s) {
      s = { one: { msPerUnit: 0, samples: 0 }, many: { msPerUnit: 0, samples: 0 }, calls: 0, probe: 0, probeArm: false, probeBest: Infinity };
      this.stats.set(key, s);
    }
    return s;
  }

  /** Should this call (kernel `kind`, `work` units) use the workers? */
  parallel(kind: string, work: number): boolean {
    const s = this.entry(key(kind, work));
    s.calls++;
    if (s.many.samples < WARM) return true;
    if (s.one.samples < WARM) return false;
    // A probe is three calls of the other arm: the first wakes a sleeping worker (or lets it
    // go idle); the faster of the other two is what the arm can do now.
    // a clear winner (1.5x) is re-checked 4 times less often: each probe costs two slow calls
    const ratio = Math.max(s.many.msPerUnit, s.one.msPerUnit) / Math.min(s.many.msPerUnit, s.one.msPerUnit);
    const settled = s.one.samples >= 4 && s.many.samples >= 4;
    const every = settled && ratio >= 1.5 ? 4 * this.probeEvery : this.probeEvery;
    if (s.probe === 0 && s.calls % every === 0) {
      s.probe = 3;
      s.probeBest = Infinity;
      s.probeArm = !(s.many.msPerUnit <= s.one.msPerUnit);
    }
    if (s.probe > 0) return s.probeArm;
    return s.many.msPerUnit <= s.one.msPerUnit;
  }

  /** Records how long a call took, and whether workers took part. */
  record(kind: string, work: number, usedWorkers: boolean, ms: number): void {
    const s = this.entry(key(kind, work));
    const arm = usedWorkers ? s.many : s.one;
    const x = ms / work;
    if (s.probe > 0) {
      s.probe--;
      if (s.probe === 2) return; // the waking call
      s.probeBest = Math.min(s.probeBest, x);
      if (s.probe === 1) return;
      // the probed arm was last measured long ago: the fresh sample replaces its average
      arm.msPerUnit = s.probeBest;
    } else if (arm.samples <= 1) {
      // the first call of an arm runs cold (baseline-compiled wasm, fresh pages): the second
      // one starts the average
      arm.msPerUnit = x;
    } else {
      // one slow call (a preemption, a page fault) moves the average by at most a factor 1.3
      arm.msPerUnit = (1 - ALPHA) * arm.msPerUnit + ALPHA * Math.min(x, 2 * arm.msPerUnit);
    }
    arm.samples++;
  }

  /** The averages, for diagnostics: key → [ms per unit on one thread, with workers]. */
  snapshot(): Record<string, [number, number]> {
    const out: Record<string, [number, number]> = {};
    for (const [k, s] of this.stats) out[k] = [s.one.msPerUnit, s.many.msPerUnit];
    return out;
  }
}

/** Size classes of a factor 2 of work. */
function key(kind: string, work: number): string {
  return `${kind}:${Math.round(Math.log2(Math.max(1, work)))}`;
}
