#!/usr/bin/env bash
# Trains a list of models concurrently on the lent GPU machine with interop/pytorch/train_torch.py
# and packs the resulting Hasten model directories into $OUT, in one call:
#
#   here:   npx tsx interop/pytorch/export-data.ts translation --tokenizer models/ar-de-en/tokenizer.json
#   there:  run(command="bash interop/pytorch/device-train.sh --deadline 420 --jobs interop/pytorch/jobs.example.txt",
#               carry=[".device-data"], timeout_s=540)
#   back:   cat FILES_AT/hasten-models.tar.* | tar -xJ -C runs/device    (models/NAME, logs/NAME.log)
#
# A job is one line "NAME: train_torch.py flags" (in --jobs FILE, or given as arguments, one
# argument per job); '#' starts a comment. Each job writes the model directory models/NAME
# (so --out is not given) and logs to $OUT/logs/NAME.log while it runs. "@OTHER" in a job's flags
# is the model directory of job OTHER, and makes the job wait for OTHER to finish first (a GliDe
# draft trains on the target LM trained before it: "--kind glide --target @lm-austen").
#
# Time: every job gets --time-limit = the seconds left before --deadline minus --margin (for its
# last validation and save), unless its flags set one. At the deadline stragglers get SIGTERM
# (train_torch.py then saves at once, without validating), after --grace seconds SIGKILL (they still
# leave the directory of their last validation). Then everything is packed: models, logs and
# summary.json into hasten-models.tar.xz (gzip when there is no xz), cut into parts of at most
# --part-mib MiB because the tool returns at most 8 files of 16 MiB, 64 MiB in all. Weights are F16
# by default (train_torch.py --dtype): a 10M-parameter model is 20 MB, so about three such models
# fit one call; compression gains little on weights.
#
# Options: --deadline S (default 480, counted from the start), --margin S (60), --grace S (20),
#          --parallel N (jobs at once, default all), --jobs FILE, --work DIR (default runs/device),
#          --python PY (default python3), --part-mib N (15), --dry-run (print the commands only).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
deadline=480 margin=60 grace=20 parallel=0 jobs_file="" work="runs/device" py="python3" part_mib=15 dry=0
out="${OUT:-$root/device-out}"
specs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --deadline) deadline="$2"; shift 2 ;;
    --margin) margin="$2"; shift 2 ;;
    --grace) grace="$2"; shift 2 ;;
    --parallel) parallel="$2"; shift 2 ;;
    --jobs) jobs_file="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --python) py="$2"; shift 2 ;;
    --part-mib) part_mib="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "device-train: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) specs+=("$1"); shift ;;
  esac
done
t_start=$(date +%s)
deadline_at=$((t_start + deadline))
say() { echo "device-train [$(( $(date +%s) - t_start ))s]: $*"; }
die() { echo "device-train: $*" >&2; exit 2; }

if [ -n "$jobs_file" ]; then
  [ -f "$jobs_file" ] || die "--jobs $jobs_file: no such file"
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    [ -n "${line//[[:space:]]/}" ] && specs+=("$line")
  done < "$jobs_file"
fi
[ ${#specs[@]} -gt 0 ] || die "no jobs (give --jobs FILE or one \"NAME: flags\" argument per job)"

# ---- parse and check the jobs before anything runs ----
names=()
declare -A args after
for s in "${specs[@]}"; do
  name="${s%%:*}"
  name="${name//[[:space:]]/}"
  [ "$name" != "$s" ] && [ -n "$name" ] || die "job \"$s\": expected \"NAME: flags\""
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "job name \"$name\": letters, digits, . _ - only"
  [ -z "${args[$name]+x}" ] || die "job name \"$name\" appears twice"
  flags="${s#*:}"
  case " $flags " in *" --out "*|*" --out="*) die "job $name: --out is set by device-train (models/$name)" ;; esac
  deps=""
  read -r -a words <<< "$flags"
  for w in "${words[@]}"; do
    case "$w" in @*) deps="$deps ${w#@}" ;; esac
  done
  names+=("$name")
  args[$name]="$flags"
  after[$name]="$deps"
done
for n in "${names[@]}"; do
  for d in ${after[$n]}; do [ -n "${args[$d]+x}" ] || die "job $n refers to @$d, which is not a job"; done
  data="$(sed -n 's/.*--data[ =]\([^ ]*\).*/\1/p' <<< "${args[$n]}")"
  [ -n "$data" ] || die "job $n: no --data"
  [ -f "$data/meta.json" ] || die "job $n: $data/meta.json is missing (export the data here, and carry the folder: run(..., carry=[\"${data%%/*}\"]))"
done

# The work folder is ours: what an earlier call left there would be packed again.
rm -rf "${work:?}/models" "${work:?}/state" "${work:?}/logs" "${work:?}/summary.json"
mkdir -p "$out/logs" "$work/models" "$work/state"
if [ "$dry" = 0 ]; then
  "$py" -c 'import torch, sys; print("device-train: python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' \
    || die "$py cannot import torch"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader | sed 's/^/device-train: /'
fi

# One job: wait for its dependencies, then train_torch.py with the time left; its exit status
# goes to state/NAME.rc and its pid to state/NAME.pid (for the deadline).
run_job() {
  local n="$1" d rc flags w words tl
  for d in ${after[$n]}; do
    while [ ! -e "$work/state/$d.rc" ]; do sleep 2; done
    if [ "$(cat "$work/state/$d.rc")" != 0 ] && [ ! -f "$work/models/$d/config.json" ]; then
      echo "device-train: job $n: dependency $d failed and left no model; not started"
      echo 3 > "$work/state/$n.rc"
      return
    fi
  done
  flags=()
  read -r -a words <<< "${args[$n]}"
  for w in "${words[@]}"; do
    case "$w" in @*) flags+=("$work/models/${w#@}") ;; *) flags+=("$w") ;; esac
  done
  case " ${args[$n]} " in
    *" --time-limit"*) ;;
    *)
      tl=$(( deadline_at - $(date +%s) - margin ))
      if [ "$tl" -le 0 ]; then
        echo "device-train: job $n: no time left before the deadline (--margin $margin); not started"
        echo 4 > "$work/state/$n.rc"
        return
      fi
      flags+=(--time-limit "$tl") ;;
  esac
  echo "device-train: job $n: $py interop/pytorch/train_torch.py --out $work/models/$n --force ${flags[*]}"
  if [ "$dry" = 1 ]; then echo 0 > "$work/state/$n.rc"; return; fi
  "$py" -u interop/pytorch/train_torch.py --out "$work/models/$n" --force "${flags[@]}" &
  echo $! > "$work/state/$n.pid"
  wait $!
  rc=$?
  echo "$rc" > "$work/state/$n.rc"
}

say "${#names[@]} job(s): ${names[*]}; deadline ${deadline}s"
running=()
for n in "${names[@]}"; do
  if [ "$parallel" -gt 0 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
  fi
  run_job "$n" > "$out/logs/$n.log" 2>&1 &
  running+=($!)
done

# ---- wait, with the deadline ----
alive() { local p; for p in "${running[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while alive && [ "$(date +%s)" -lt "$deadline_at" ]; do sleep 2; done
if alive; then
  say "deadline: SIGTERM to the jobs still running (they save at once)"
  for f in "$work"/state/*.pid; do [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
  end=$(( $(date +%s) + grace ))
  while alive && [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
  if alive; then
    say "SIGKILL after ${grace}s (their directories are those of their last validation)"
    for f in "$work"/state/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
    for p in "${running[@]}"; do kill -TERM "$p" 2>/dev/null; done
  fi
fi
wait 2>/dev/null

# ---- summary and packing ----
summary="$work/summary.json"
{
  echo "{"
  first=1
  for n in "${names[@]}"; do
    rc="$(cat "$work/state/$n.rc" 2>/dev/null || echo killed)"
    line="$(grep '^{"summary"' "$out/logs/$n.log" 2>/dev/null | tail -1)"
    [ "$first" = 1 ] || echo ","
    first=0
    printf '  "%s": {"rc": "%s", "model": %s, "result": %s}' "$n" "$rc" \
      "$([ -f "$work/models/$n/config.json" ] && echo true || echo false)" "${line:-null}"
  done
  echo
  echo "}"
} > "$summary"
for n in "${names[@]}"; do
  rc="$(cat "$work/state/$n.rc" 2>/dev/null || echo killed)"
  last="$(grep -E '^(valid @|done at|train_torch:|Traceback)' "$out/logs/$n.log" 2>/dev/null | tail -2 | tr '\n' ' ')"
  say "$n: rc $rc; ${last:-no output}"
done
[ "$dry" = 1 ] && exit 0

mkdir -p "$work/logs"
cp "$out"/logs/*.log "$work/logs/" 2>/dev/null
pack="$out/hasten-models.tar"
if command -v xz >/dev/null; then
  tar -C "$work" -cf - models logs summary.json | xz -T0 -3 > "$pack.xz"; pack="$pack.xz"
else
  tar -C "$work" -czf "$pack.gz" models logs summary.json; pack="$pack.gz"
fi
size=$(stat -c %s "$pack")
rm -rf "$out/logs"
if [ "$size" -gt $((part_mib * 1048576)) ]; then
  split -b "${part_mib}m" -d -a 2 "$pack" "$pack.part-"
  rm -f "$pack"
fi
total=$(du -cb "$out"/hasten-models.tar.* | tail -1 | cut -f1)
say "packed $(ls "$out" | tr '\n' ' ')($(( total / 1048576 )) MiB)"
[ "$total" -le $((64 * 1048576)) ] || say "WARNING: more than 64 MiB: the tool will not return every part (train fewer or smaller models, or --dtype BF16/F16)"
[ "$(ls "$out" | wc -l)" -le 8 ] || say "WARNING: more than 8 files in \$OUT: some will not come back"
echo "device-train: unpack with: mkdir -p runs/device && cat FILES_AT/hasten-models.tar.* | tar -x$([ "${pack##*.}" = gz ] && echo z || echo J) -C runs/device"
