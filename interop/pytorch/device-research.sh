#!/usr/bin/env bash
# The research models of issues 11 and 12 trained on the lent H200 through the PyTorch bridge, and
# brought back in two calls (the tool returns at most 8 files, 16 MiB each, 64 MiB per call, and
# the nine models are ~118 MB in F16):
#
#   run(command="bash interop/pytorch/device-research.sh train", carry=[".device-data"], timeout_s=420)
#   run(command="bash interop/pytorch/device-research.sh rest")      # at once, on the still-warm machine
#
# train: interop/pytorch/device-train.sh over interop/pytorch/jobs.research.txt (deadline $DEADLINE,
#        default 330 s), then returns logs.tgz (logs, summary, every model's config and log) and
#        the four strict Markov models, one tar each.
# rest:  returns the full-attention model, the window model, the Austen target LM (in two parts:
#        cat lm-austen.tar.part* | tar -x) and the two drafts.
# Here: for f in FILES_AT/*.tar; do tar -xf $f -C runs/device; done (models land in runs/device/NAME).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
ret="${OUT:?device-research: OUT (the folder that comes back) is not set}"
keep=/tmp/hasten-research # outlives the call while the machine stays warm
models="$keep/work/models"
case "${1:-}" in
  train)
    mkdir -p "$keep/out"
    (nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'; nproc) > "$keep/out/machine.txt" 2>&1
    export OMP_NUM_THREADS=2 # nine trainers share 16 cores; each needs one for its kernel launches
    OUT="$keep/out" bash interop/pytorch/device-train.sh --deadline "${DEADLINE:-330}" --margin 40 --work "$keep/work" \
      --jobs interop/pytorch/jobs.research.txt
    rc=$?
    cp "$keep/out/machine.txt" "$keep/work/" 2>/dev/null
    cp -r "$keep/out/logs" "$keep/work/out-logs" 2>/dev/null
    (cd "$keep/work" && tar -czf "$ret/logs.tgz" machine.txt out-logs logs summary.json models/*/config.json models/*/train-log.jsonl models/*/valid-hyps.txt 2>/dev/null)
    for n in mat-k1 mat-k2 mat-k4 mat-k8; do
      [ -d "$models/$n" ] && tar -C "$models" -cf "$ret/$n.tar" "$n"
    done
    ls -la "$ret"
    exit "$rc" ;;
  rest)
    for n in ar win-k4 lm-austen; do
      [ -d "$models/$n" ] && tar -C "$models" -cf "$keep/$n.tar" "$n"
    done
    [ -f "$keep/lm-austen.tar" ] && split -b 12M -d "$keep/lm-austen.tar" "$ret/lm-austen.tar.part"
    for n in ar win-k4; do [ -f "$keep/$n.tar" ] && mv "$keep/$n.tar" "$ret/"; done
    (cd "$models" && tar -cf "$ret/drafts.tar" draft-austen glide-austen 2>/dev/null)
    ls -la "$ret" ;;
  *) echo "usage: device-research.sh train|rest" >&2; exit 2 ;;
esac
