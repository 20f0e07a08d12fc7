# Native reference for bench/matmul.ts: PyTorch's CPU matmul on the same inputs, 1 thread and
# all threads. Usage: python3 torch_matmul.py M K N a.f32 b.f32 samples
# Prints one JSON line: {"version", "gflops_1t", "gflops_all", "threads", "c_sum", "cpu_1t",
# "cpu_all" (user/system/wall seconds of the timed samples), "blas", "omp_wait_policy"}.
import json, os, sys, time

import torch
from torch_env import CpuTimer, blas_report, set_threads, wait_policy

M, K, N = (int(x) for x in sys.argv[1:4])
a = torch.from_file(sys.argv[4], size=M * K, dtype=torch.float32).reshape(M, K)
b = torch.from_file(sys.argv[5], size=K * N, dtype=torch.float32).reshape(K, N)
samples = int(sys.argv[6])
flops = 2.0 * M * N * K
reps = max(1, int(3e8 // flops))


def median_gflops(threads):
    set_threads(threads)
    out = torch.empty(M, N)
    for _ in range(3):
        torch.matmul(a, b, out=out)
    times = []
    with CpuTimer() as cpu:
        for _ in range(samples):
            t = time.perf_counter()
            for _ in range(reps):
                torch.matmul(a, b, out=out)
            times.append((time.perf_counter() - t) / reps)
    times.sort()
    return flops / times[len(times) // 2] / 1e9, out, cpu.result


all_threads = os.cpu_count() or 1
g1, c, cpu1 = median_gflops(1)
ga, _, cpu_all = median_gflops(all_threads)
print(json.dumps({"version": torch.__version__, "gflops_1t": g1, "gflops_all": ga, "threads": all_threads,
                  "c_sum": float(c.double().sum()), "cpu_1t": cpu1, "cpu_all": cpu_all,
                  "blas": blas_report(), "omp_wait_policy": wait_policy()}))
