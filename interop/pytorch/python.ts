// Finding a Python that can import torch, for the code that talks to interop/pytorch/hasten_torch.py
// from Node (spec/interop). Hasten never needs PyTorch; callers skip, with the reason this returns,
// when there is none.
//
// Tried in order: $HASTEN_TORCH_PYTHON, python3 on PATH, Debian's /usr/bin/python3 (python3-torch
// installs there, and a pyenv or venv python3 on PATH often lacks it). HASTEN_TORCH_PYTHON=none
// hides PyTorch on purpose (to exercise the skip path).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The bridge module, for `sys.path` or to run as a script. */
export const HASTEN_TORCH_PY = fileURLToPath(new URL("./hasten_torch.py", import.meta.url));

export interface TorchPython {
  python: string;
  torch: string; // torch.__version__
}

export function findTorchPython(env: NodeJS.ProcessEnv = process.env): TorchPython | { skip: string } {
  const forced = env.HASTEN_TORCH_PYTHON;
  if (forced === "none") return { skip: "PyTorch hidden by HASTEN_TORCH_PYTHON=none" };
  const tried: string[] = [];
  for (const py of forced ? [forced] : ["python3", "/usr/bin/python3"]) {
    const r = spawnSync(py, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8", env, timeout: 60_000 });
    if (r.status === 0) return { python: py, torch: r.stdout.trim() };
    tried.push(`${py}: ${(r.error?.message ?? r.stderr.trim().split("\n").pop()) || `exit ${r.status}`}`);
  }
  return { skip: `no Python with torch (${tried.join("; ")})` };
}
