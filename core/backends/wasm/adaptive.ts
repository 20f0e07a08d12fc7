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
const WARM = 2; // samples of each arm before trusting the averages

export class ThreadChooser {
  private readonly stats = new Map<string, { one: Arm; many: Arm; calls: number }>();

  constructor(readonly probeEvery = 32) {}

  private entry(key: string) {
    let s = this.stats.get(key);
    if (!s) {
      s = { one: { msPerUnit: 0, samples: 0 }, many: { msPerUnit: 0, samples: 0 }, calls: 0 };
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
    const better = s.many.msPerUnit <= s.one.msPerUnit;
    return s.calls % this.probeEvery === 0 ? !better : better;
  }

  /** Records how long a call took, and whether workers took part. */
  record(kind: string, work: number, usedWorkers: boolean, ms: number): void {
    const arm = usedWorkers ? this.entry(key(kind, work)).many : this.entry(key(kind, work)).one;
    const x = ms / work;
    arm.msPerUnit = arm.samples === 0 ? x : (1 - ALPHA) * arm.msPerUnit + ALPHA * x;
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
