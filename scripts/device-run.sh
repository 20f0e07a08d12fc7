#!/usr/bin/env bash
# The one command to run on the lent GPU machine, from the repository root, with the kit that
# scripts/device-kit.sh built carried along:
#
#   run(command="bash scripts/device-run.sh", carry=[".device-kit"], timeout_s=540)
#
# It unpacks the kit (Node.js, node_modules, the Vulkan/EGL loaders when the machine lacks them),
# names the WebGPU adapter, runs the gpujs parity tests on it, then bench/gpu-report.ts, and
# writes results and logs to $OUT (default runs/device-out):
#   device-run.log   everything below, as printed        gpu-report.txt   the report
#   gpu-report.json  the report's figures                adapter.txt      adapter, driver, loader
#   gpujs-tests.log  the parity tests on the GPU         nvidia-smi.txt   the GPU before the run
# Exit status: 0 done; 3 no hardware WebGPU adapter (diagnostics in the log); 1 anything else.
#
# Options: --quick (small sizes, for a software adapter), --allow-software (go on with a software
# adapter: the local lavapipe check), --no-tests, --loaders=auto|system|prefix (prefix: the kit's
# loaders through LD_LIBRARY_PATH even where the system has its own), --budget=S (the report's
# time budget, default 300 s); anything after -- goes to gpu-report.ts.
# Uses no Node.js, npm or network of the machine; needs bash, tar, and xz or python3.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
kit="$root/.device-kit"
OUT="${OUT:-$root/runs/device-out}"
work="${HASTEN_KIT_WORK:-${TMPDIR:-/tmp}/hasten-device-kit}"
quick=0 allow_software=0 tests=1 loaders=auto budget=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --allow-software) allow_software=1 ;;
    --no-tests) tests=0 ;;
    --loaders=*) loaders="${1#*=}" ;;
    --budget=*) budget="${1#*=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device-run: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$loaders" in auto|system|prefix) ;; *) echo "device-run: --loaders is auto, system or prefix" >&2; exit 2 ;; esac
[ -n "$budget" ] || budget=$([ "$quick" = 1 ] && echo 240 || echo 300)
mkdir -p "$OUT"
t_start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t_start )) s] $*"; }

# xz -dc, or Python's lzma where the machine has no xz
unxz_cat() {
  if command -v xz >/dev/null; then xz -dc "$1"
  elif command -v python3 >/dev/null; then python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"
  else echo "device-run: neither xz nor python3 to decompress $1" >&2; return 1
  fi
}
has_system_vulkan() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; }

# the report's adapter check; sets probe_rc (0 hardware, 2 software, 3 none)
probe() {
  node node_modules/tsx/dist/cli.mjs bench/gpu-report.ts --probe 2>&1 | grep -v 'artificially reduced' | tee -a "$OUT/adapter.txt"
  probe_rc=${PIPESTATUS[0]}
}

diagnose() {
  echo "---- diagnostics: why no hardware adapter"
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}"
  ldconfig -p 2>/dev/null | grep -Ei 'libvulkan|GLX_nvidia|GLdispatch|libEGL|nvidia-glcore|libcuda\.so' | head -20
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d \
           /usr/share/glvnd/egl_vendor.d /usr/local/nvidia/share/glvnd/egl_vendor.d; do
    [ -d "$d" ] && { echo "$d:"; ls -la "$d"; }
  done
  for j in /usr/local/nvidia/share/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json; do
    [ -f "$j" ] && { echo "$j:"; cat "$j"; }
  done
  ls /usr/local/nvidia/lib64 2>/dev/null | grep -Ei 'GLX_nvidia|vulkan|EGL_nvidia|glcore' | head
  echo "-- the adapter check again with VK_LOADER_DEBUG=error,warn,driver:"
  VK_LOADER_DEBUG=error,warn,driver node node_modules/tsx/dist/cli.mjs bench/gpu-report.ts --probe 2>&1 | tail -40
}

main() {
  stamp "Hasten device run on $(hostname) ($(uname -srm)), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), user $(id -un)"
  [ -f /etc/os-release ] && echo "os: $(. /etc/os-release; echo "${PRETTY_NAME:-?}")"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  else
    echo "gpu: no nvidia-smi on this machine"
  fi
  if [ ! -f "$kit/MANIFEST" ]; then
    echo "device-run: no kit in .device-kit/: build it with 'bash scripts/device-kit.sh' and name .device-kit in carry" >&2
    return 1
  fi
  sed -n '1,6p' "$kit/MANIFEST"

  echo "system node: $(command -v node || echo none)"
  if [ -e node_modules ] || [ -L node_modules ]; then
    # only a link this script left (a run stopped at its time limit); never someone's install
    if [ "$(readlink node_modules)" = "$work/node_modules" ]; then rm -f node_modules
    else echo "device-run: ./node_modules exists and is not the kit's: run the kit in a clean copy of the tree" >&2; return 1
    fi
  fi
  # ---- unpack: node, node_modules, peers (a private folder; nothing of the machine's is replaced)
  rm -rf "$work"
  mkdir -p "$work/bin"
  unxz_cat "$kit/node.xz" > "$work/bin/node" && chmod +x "$work/bin/node" || { echo "device-run: could not unpack node" >&2; return 1; }
  export PATH="$work/bin:$PATH"
  if ! node_v="$(node --version 2>&1)"; then
    echo "device-run: the kit's node does not run here: $node_v" >&2
    ldd "$work/bin/node" 2>&1 | sed 's/^/  /' >&2
    return 1
  fi
  unxz_cat "$kit/node_modules.tar.xz" | tar -xf - -C "$work" || { echo "device-run: could not unpack node_modules" >&2; return 1; }
  ln -s "$work/node_modules" node_modules
  peers_dir=""
  if [ -f "$kit/peers.tar.xz" ]; then
    mkdir -p "$work/peers" && unxz_cat "$kit/peers.tar.xz" | tar -xf - -C "$work/peers" && peers_dir="$work/peers/node_modules"
  fi
  stamp "unpacked: node $node_v, $(ls "$work/node_modules" | wc -l) packages${peers_dir:+, tfjs-webgpu peer} in $work"

  # ---- Vulkan/EGL loaders: the machine's own when it has them; else the kit's
  mkdir -p "$work/gl"
  unxz_cat "$kit/gl.tar.xz" | tar -xf - -C "$work/gl"
  gl_lib="$work/gl/usr/lib/x86_64-linux-gnu"
  use_prefix() { export LD_LIBRARY_PATH="$gl_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; echo "loaders: the kit's, through LD_LIBRARY_PATH ($gl_lib)"; }
  case "$loaders" in
    system) echo "loaders: the system's (--loaders=system)" ;;
    prefix) use_prefix ;;
    auto)
      if has_system_vulkan; then echo "loaders: the system's ($(ldconfig -p | grep -m1 'libvulkan\.so\.1 ' | awk '{print $NF}'))"
      elif [ "$(id -u)" = 0 ]; then
        # the device README's recipe (unpack the loader packages into / and run ldconfig), with
        # tar's --no-overwrite-dir so that existing folders keep their owners and modes
        unxz_cat "$kit/gl.tar.xz" | tar -xf - -C / --no-overwrite-dir --no-same-owner && ldconfig
        if has_system_vulkan; then echo "loaders: the kit's, unpacked into / ($(cat "$work/gl/.packages" | tr '\n' ' '))"
        else use_prefix
        fi
      else use_prefix
      fi ;;
  esac
  # the NVIDIA driver's libraries (libGLX_nvidia, which holds its Vulkan driver) where the
  # machine mounts them; harmless elsewhere
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && case ":${LD_LIBRARY_PATH:-}:" in *":$d:"*) ;; *) export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d" ;; esac
  done

  # ---- the adapter
  : > "$OUT/adapter.txt"
  probe
  if [ "$probe_rc" != 0 ]; then
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
    if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
      # the device README's remedy when no driver is found
      export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
      [ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
      echo "no hardware adapter yet: trying again with VK_DRIVER_FILES=$icd" | tee -a "$OUT/adapter.txt"
      probe
    fi
  fi
  if [ "$probe_rc" = 2 ] && [ "$allow_software" = 1 ]; then
    echo "device-run: only a software adapter; going on (--allow-software)"
  elif [ "$probe_rc" != 0 ]; then
    diagnose 2>&1 | tee -a "$OUT/adapter.txt"
    stamp "device-run: no hardware WebGPU adapter; stopping here (diagnostics above and in adapter.txt)"
    return 3
  fi
  stamp "adapter checked"

  # ---- the gpujs parity tests (every kernel, op and gradient against the references) on this adapter
  if [ "$tests" = 1 ]; then
    stamp "parity tests on gpujs/webgpu (spec/run.ts gpujs core/ops.spec) ..."
    HASTEN_TEST_BACKENDS=gpujs/webgpu,cpu timeout 150 node node_modules/tsx/dist/cli.mjs spec/run.ts gpujs core/ops.spec > "$OUT/gpujs-tests.log" 2>&1
    rc=$?
    grep -E 'parity runs on adapter|^ *(Total|Passed|Skipped|Duration):|passed, [0-9]+ failed|FAIL|✘' "$OUT/gpujs-tests.log" | grep -v 'artificially reduced' | head -20
    stamp "parity tests: exit $rc$([ $rc = 124 ] && echo ' (timed out after 150 s)')"
  fi

  # ---- the report
  q=()
  [ "$quick" = 1 ] && q=(--quick)
  stamp "gpu-report (budget $budget s) ..."
  timeout $((budget + 60)) node node_modules/tsx/dist/cli.mjs bench/gpu-report.ts "${q[@]}" --budget="$budget" \
    --json="$OUT/gpu-report.json" ${peers_dir:+--peers="$peers_dir"} --data="$kit/data" "${extra[@]}" 2>&1 \
    | grep --line-buffered -v 'artificially reduced' | tee "$OUT/gpu-report.txt"
  rc=${PIPESTATUS[0]}
  stamp "gpu-report: exit $rc$([ "$rc" = 124 ] && echo " (timed out)")"
  return "$rc"
}

main 2>&1 | tee "$OUT/device-run.log"
rc=${PIPESTATUS[0]}
# the link into $work goes; the kit stays
if [ "$(readlink node_modules 2>/dev/null)" = "$work/node_modules" ]; then rm -f node_modules; fi
echo "device-run: exit $rc; files in $OUT: $(ls "$OUT" | tr '\n' ' ')" | tee -a "$OUT/device-run.log"
exit "$rc"
