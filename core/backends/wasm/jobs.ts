// Row jobs: any kernel of the form k(r0, r1, ...args) that works on the rows [r0, r1) of its
// arguments can run on all threads. Its job record holds the arguments; each thread claims
// chunks of rows with an atomic add on `next` and counts them in `finished`, exactly like the
// gemm tasks, so a late or descheduled worker costs one chunk at most.

import { Atomic, f32, i32, Op, type ModuleBuilder, type ValType } from "./asm.ts";

/** i32 slots of a row-job record; arguments (i32 or f32 bits) start at `args`. */
export const ROWJOB = { tasks: 0, chunk: 1, rows: 2, next: 3, finished: 4, args: 8, maxArgs: 24, slots: 32 } as const;

/**
 * Exports `name(job) → chunks run here`, which claims chunks of rows and calls
 * kernel(r0, r1, args...) on each, reading the arguments from the record with their types.
 */
export function emitRowsJob(m: ModuleBuilder, name: string, kernel: number, argTypes: ValType[]): void {
  if (argTypes.length > ROWJOB.maxArgs) throw new Error(`jobs: ${name} has ${argTypes.length} arguments, at most ${ROWJOB.maxArgs}`);
  m.func(name, [i32], [i32], (f) => {
    const job = 0;
    const [t, r0, tasks, mine] = [f.local(i32), f.local(i32), f.local(i32), f.local(i32)];
    f.get(job).i32load(ROWJOB.tasks * 4).set(tasks);
    f.block(() =>
      f.loop(() => {
        f.get(job).i32c(1).atomic(Atomic.i32_atomic_rmw_add, ROWJOB.next * 4).tee(t);
        f.get(tasks).op(Op.i32_ge_u).brIf(1);
        f.get(t).get(job).i32load(ROWJOB.chunk * 4).op(Op.i32_mul).tee(r0);
        // r1 = min(rows, r0 + chunk)
        f.get(r0).get(job).i32load(ROWJOB.chunk * 4).op(Op.i32_add).tee(t);
        f.get(job).i32load(ROWJOB.rows * 4);
        f.get(t).get(job).i32load(ROWJOB.rows * 4).op(Op.i32_lt_s).op(Op.select);
        argTypes.forEach((ty, i) => {
          f.get(job);
          if (ty === f32) f.f32load((ROWJOB.args + i) * 4);
          else if (ty === i32) f.i32load((ROWJOB.args + i) * 4);
          else throw new Error(`jobs: ${name}: argument ${i} must be i32 or f32`);
        });
        f.call(kernel);
        f.get(mine).i32c(1).op(Op.i32_add).set(mine);
        f.get(job).i32c(1).atomic(Atomic.i32_atomic_rmw_add, ROWJOB.finished * 4).i32c(1).op(Op.i32_add);
        f.get(tasks).op(Op.i32_eq).if(() => {
          f.get(job).i32c(ROWJOB.finished * 4).op(Op.i32_add).i32c(-1).atomic(Atomic.memory_atomic_notify).op(Op.drop);
        });
        f.br(0);
      }),
    );
    f.get(mine);
  });
}
