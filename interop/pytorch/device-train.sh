#!/usr/bin/env bash
# Trains a list of models concurrently on the lent GPU machine with interop/pytorch/train_torch.py
# and packs the resulting Hasten model directories into $OUT, in one call:
#
#   here:   npx tsx interop/pytorch/export-data.ts translation --tokenizer models/ar-de-en/tokenizer.json
#           npx tsx interop/pytorch/export-data.ts lm --data ../shared/data/janeausten --exclude northangerabbey.txt --vocab-size 8000
#   there:  run(command="bash interop/pytorch/device-train.sh --deadline 390 --jobs interop/pytorch/jobs.gpu.txt",
#               carry=[".device-data"], timeout_s=480)
#   back:   mkdir -p runs/device && cat FILES_AT/hasten-models.tar.* | tar -xJ -C runs/device
#           (runs/device/models/NAME: model directories; logs/NAME.log; summary.json)
#
# A job is one line "NAME: train_torch.py flags" (in --jobs FILE, or given as arguments, one
# argument per job); '#' starts a comment. Each job writes the model directory models/NAME
# (so --out is not given) and logs to $OUT/logs/NAME.log while it runs. "@OTHER" in a job's flags
# is the model directory of job OTHER, and makes the job wait for OTHER to finish first (a GliDe
# draft trains on the target LM trained before it: "--kind glide --target @lm-austen").
#
# Smoke phase (default; --no-smoke skips it, --smoke-only stops after it): every job first runs
# for 2 steps with a validation (BLEU on 16 sentences) and a save, all at once, in a minute or so.
# If one fails, nothing is trained: the logs come back at once, and the rest of the device time is
# left for a fixed run, instead of a crash at the first validation minutes later.
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
# Options: --deadline S (default 480, counted from the start, smoke phase included), --margin S (60),
#          --grace S (20), --parallel N (jobs at once, default all), --jobs FILE, --work DIR
#          (default runs/device, emptied first), --python PY (default python3), --part-mib N (15),
#          --no-smoke, --smoke-only, --dry-run (print the commands only).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
deadline=480 margin=60 grace=20 parallel=0 jobs_file="" work="runs/device" py="python3" part_mib=15 dry=0 smoke=1 smoke_only=0
SMOKE_FLAGS="--max-steps 2 --eval-every 2 --log-every 1 --time-limit 90"
SMOKE_TRANSLATION_FLAGS="--valid-bleu-limit 16"  # jobs on translation data: BLEU decoding too
SMOKE_DEADLINE=150
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
    --no-smoke) smoke=0; shift ;;
    --smoke-only) smoke_only=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
declare -A args after data_of
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
  data_of[$n]="$data"
done

# The work folder is ours: what an earlier call left there would be packed again.
rm -rf "${work:?}/models" "${work:?}/smoke" "${work:?}/state" "${work:?}/logs" "${work:?}/summary.json"
mkdir -p "$out/logs" "$work/models" "$work/logs"
if [ "$dry" = 0 ]; then
  "$py" -c 'import torch, sys; print("device-train: python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' \
    || die "$py cannot import torch"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader | sed 's/^/device-train: /'
fi

# ---- one phase: every job once, concurrently, until done or its deadline ----
# Phase settings (globals, read by run_job in its subshell): models go to $p_models, states to
# $p_state, logs to $out/logs/$p_prefix$NAME.log; $p_extra is appended to every job's flags.
run_job() {
  local n="$1" d rc flags w words tl
  for d in ${after[$n]}; do
    while [ ! -e "$p_state/$d.rc" ]; do sleep 1; done
    if [ "$(cat "$p_state/$d.rc")" != 0 ] && [ ! -f "$p_models/$d/config.json" ]; then
      echo "device-train: job $n: dependency $d failed and left no model; not started"
      echo 3 > "$p_state/$n.rc"
      return
    fi
  done
  flags=()
  local extra="$p_extra"
  if [ "$p_prefix" = smoke- ] && grep -q '"task": "translation"' "${data_of[$n]}/meta.json"; then extra="$extra $SMOKE_TRANSLATION_FLAGS"; fi
  read -r -a words <<< "${args[$n]} $extra"
  for w in "${words[@]}"; do
    case "$w" in @*) flags+=("$p_models/${w#@}") ;; *) flags+=("$w") ;; esac
  done
  case " ${args[$n]} $p_extra " in
    *" --time-limit"*) ;;
    *)
      tl=$(( p_deadline - $(date +%s) - margin ))
      if [ "$tl" -le 0 ]; then
        echo "device-train: job $n: no time left before the deadline (--margin $margin); not started"
        echo 4 > "$p_state/$n.rc"
        return
      fi
      flags+=(--time-limit "$tl") ;;
  esac
  echo "device-train: job $n: $py interop/pytorch/train_torch.py --out $p_models/$n --force ${flags[*]}"
  if [ "$dry" = 1 ]; then echo 0 > "$p_state/$n.rc"; return; fi
  "$py" -u interop/pytorch/train_torch.py --out "$p_models/$n" --force "${flags[@]}" &
  echo $! > "$p_state/$n.pid"
  wait $!
  rc=$?
  echo "$rc" > "$p_state/$n.rc"
}

run_phase() {  # $1 phase name, $2 deadline (epoch seconds)
  local phase="$1" n p f end running=()
  p_deadline="$2"
  mkdir -p "$p_models" "$p_state"
  say "$phase: ${#names[@]} job(s): ${names[*]}; deadline in $(( p_deadline - $(date +%s) ))s"
  for n in "${names[@]}"; do
    if [ "$parallel" -gt 0 ]; then
      while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 1; done
    fi
    run_job "$n" > "$out/logs/$p_prefix$n.log" 2>&1 &
    running+=($!)
  done
  alive() { local q; for q in "${running[@]}"; do kill -0 "$q" 2>/dev/null && return 0; done; return 1; }
  while alive && [ "$(date +%s)" -lt "$p_deadline" ]; do sleep 1; done
  if alive; then
    say "$phase: deadline: SIGTERM to the jobs still running (they save at once)"
    for f in "$p_state"/*.pid; do [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
    end=$(( $(date +%s) + grace ))
    while alive && [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
    if alive; then
      say "$phase: SIGKILL after ${grace}s (their directories are those of their last validation)"
      for f in "$p_state"/*.pid; do [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
      for p in "${running[@]}"; do kill -TERM "$p" 2>/dev/null; done
    fi
  fi
  wait 2>/dev/null
  for n in "${names[@]}"; do
    local rc last
    rc="$(cat "$p_state/$n.rc" 2>/dev/null || echo killed)"
    last="$(grep -E '^(valid @|done at|train_torch:|[A-Za-z]*Error)' "$out/logs/$p_prefix$n.log" 2>/dev/null | tail -2 | tr '\n' ' ')"
    say "$phase: $n: rc $rc; ${last:-no output}"
  done
}

phase_ok() {  # every job exited 0 and left a model directory
  local n
  for n in "${names[@]}"; do
    [ "$(cat "$p_state/$n.rc" 2>/dev/null)" = 0 ] && { [ "$dry" = 1 ] || [ -f "$p_models/$n/config.json" ]; } || return 1
  done
}

pack() {  # models (when $1 = models), logs and summary.json of $work into $OUT
  local what=(logs) pk size total
  cp "$out"/logs/*.log "$work/logs/" 2>/dev/null
  [ -f "$work/summary.json" ] && what+=(summary.json)
  [ "$1" = models ] && what+=(models)
  pk="$out/hasten-models.tar"
  if command -v xz >/dev/null; then
    tar -C "$work" -cf - "${what[@]}" | xz -T0 -3 > "$pk.xz"; pk="$pk.xz"
  else
    tar -C "$work" -czf "$pk.gz" "${what[@]}"; pk="$pk.gz"
  fi
  size=$(stat -c %s "$pk")
  rm -rf "$out/logs"
  if [ "$size" -gt $((part_mib * 1048576)) ]; then
    split -b "${part_mib}m" -d -a 2 "$pk" "$pk.part-"
    rm -f "$pk"
  fi
  total=$(du -cb "$out"/hasten-models.tar.* | tail -1 | cut -f1)
  say "packed $(ls "$out" | tr '\n' ' ')($(( total / 1048576 )) MiB)"
  [ "$total" -le $((64 * 1048576)) ] || say "WARNING: more than 64 MiB: the tool will not return every part (train fewer or smaller models, or --dtype BF16/F16)"
  [ "$(ls "$out" | wc -l)" -le 8 ] || say "WARNING: more than 8 files in \$OUT: some will not come back"
  echo "device-train: unpack with: mkdir -p runs/device && cat FILES_AT/hasten-models.tar.* | tar -x$([ "${pk##*.}" = gz ] && echo z || echo J) -C runs/device"
}

# ---- smoke phase ----
if [ "$smoke" = 1 ] || [ "$smoke_only" = 1 ]; then
  p_models="$work/smoke/models" p_state="$work/smoke/state" p_prefix="smoke-" p_extra="$SMOKE_FLAGS"
  smoke_end=$(( $(date +%s) + SMOKE_DEADLINE ))
  [ "$smoke_end" -lt "$deadline_at" ] || smoke_end="$deadline_at"
  run_phase smoke "$smoke_end"
  if ! phase_ok; then
    say "smoke: a job failed (its log is above and in the pack); nothing trained"
    for n in "${names[@]}"; do
      [ "$(cat "$p_state/$n.rc" 2>/dev/null)" = 0 ] || { echo "---- smoke-$n.log (tail) ----"; tail -25 "$out/logs/smoke-$n.log"; }
    done
    [ "$dry" = 1 ] || pack logs
    exit 1
  fi
  if [ "$smoke_only" = 1 ]; then
    [ "$dry" = 1 ] || pack logs
    exit 0
  fi
fi

# ---- training phase ----
p_models="$work/models" p_state="$work/state" p_prefix="" p_extra=""
run_phase train "$deadline_at"
{
  echo "{"
  first=1
  for n in "${names[@]}"; do
    rc="$(cat "$p_state/$n.rc" 2>/dev/null || echo killed)"
    line="$(grep '^{"summary"' "$out/logs/$n.log" 2>/dev/null | tail -1)"
    [ "$first" = 1 ] || echo ","
    first=0
    printf '  "%s": {"rc": "%s", "model": %s, "result": %s}' "$n" "$rc" \
      "$([ -f "$p_models/$n/config.json" ] && echo true || echo false)" "${line:-null}"
  done
  echo
  echo "}"
} > "$work/summary.json"
[ "$dry" = 1 ] && exit 0
pack models
