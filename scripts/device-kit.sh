#!/usr/bin/env bash
# Packs into .device-kit/ (git-ignored) what a run of Hasten needs on the lent GPU machine and that
# machine lacks, so that the whole GPU check is one call there:
#
#   bash scripts/device-kit.sh                      # here: build the kit (a few minutes: xz -9)
#   run(command="bash scripts/device-run.sh", carry=[".device-kit"])     # there
#
# The GPU machine (x86-64, Linux, root) has no Node.js and may lack the Vulkan loader, and nothing
# can be fetched there. What travels is the working tree plus carried paths, 64 MiB at most, so:
#   node.xz             this machine's Node.js 20 binary, stripped, xz-compressed (glibc/libstdc++ only)
#   node_modules.tar.xz the production node_modules (npm ls --omit=dev) as installed here, pruned to
#                       linux-x64: the `webgpu` package's other platforms, gpu.js's browser bundles,
#                       source maps and type declarations dropped
#   gl.tar.xz           the Vulkan/EGL loader packages the device README names (libvulkan1 libegl1
#                       libglvnd0 libopengl0 libgl1 libglx0 libgles2), Debian 12 amd64, unpacked
#   peers.tar.xz        optional: tfjs-core + tfjs-backend-webgpu 4.22 (the peer on the same Dawn)
#   data/multi30k/      test2016.{de,en} when a data dir is found (decoding real sentences there)
#   MANIFEST            what is in the kit, sizes, sha256, versions
# scripts/device-run.sh (tracked, travels with the tree) unpacks it there and runs the checks.
#
# Options: --no-peers (skip tfjs-webgpu), --fast (xz -6 instead of -9: quicker, ~2 MiB larger).
# Needs: npm install done here, xz, apt-get (for the loaders), this machine being x86-64 Linux.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit="$root/.device-kit"
peers=1
xzlevel=-9
for a in "$@"; do
  case "$a" in
    --no-peers) peers=0 ;;
    --fast) xzlevel=-6 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device-kit: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done
LIMIT=$((64 * 1024 * 1024))
NODE_MAJOR=20
TFJS_VERSION=4.22.0
GL_PACKAGES="libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2"

say() { echo "device-kit: $*"; }
die() { echo "device-kit: $*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
xzc() { xz -T0 "$xzlevel" -c; }

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] \
  || die "this machine is $(uname -sm); the GPU machine is x86-64 Linux, so the kit must be built on one (its node and native modules are this machine's)"
for t in xz tar npm sha256sum; do command -v "$t" >/dev/null || die "needs $t"; done
[ -d "$root/node_modules/webgpu" ] || die "no node_modules/webgpu: run npm install first"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/hasten-device-kit.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$kit"
mkdir -p "$kit"
t_start=$(date +%s)

# ---- Node.js 20 ----
node_bin="$(readlink -f "$(command -v node)")" || die "no node on PATH"
node_ver="$("$node_bin" -p 'process.versions.node')"
[ "${node_ver%%.*}" = "$NODE_MAJOR" ] || die "node on PATH is $node_ver; the kit carries Node.js $NODE_MAJOR (put a Node $NODE_MAJOR first on PATH)"
# The GPU machine's system libraries are not these: only glibc and the C++ runtime, which every
# glibc Linux has, may be linked (Debian's own nodejs package links libnode/libuv/ICU: refused).
others="$(ldd "$node_bin" | awk '{print $1}' | grep -Ev '^(linux-vdso\.so|/lib64/ld-linux-x86-64\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so)' || true)"
[ -z "$others" ] || die "$node_bin links libraries the GPU machine may not have: $(echo $others); use a NodeSource or nodejs.org build"
glibc_need="$(objdump -T "$node_bin" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)"
cp "$node_bin" "$tmp/node"
# Debug info and the static symbol table are not needed to run (native addons bind through the
# dynamic symbols, which strip keeps): 99 -> 86 MB here, 2 MB less once compressed.
if command -v strip >/dev/null; then strip --strip-all "$tmp/node"; fi
[ "$("$tmp/node" -p 'process.versions.node')" = "$node_ver" ] || die "the stripped node does not run"
say "compressing node $node_ver ($(mib "$(stat -c %s "$tmp/node")"), needs ${glibc_need:-glibc ?}) ..."
xzc < "$tmp/node" > "$kit/node.xz"

# ---- production node_modules, linux-x64 only ----
mods="$tmp/mods/node_modules"
mkdir -p "$mods"
list="$(cd "$root" && npm ls --omit=dev --all --parseable 2>/dev/null || true)"
count=0
while IFS= read -r p; do
  case "$p" in */node_modules/*) ;; *) continue ;; esac
  # from the first node_modules/ on, so nested packages keep their place (npm may print the
  # real path of a symlinked node_modules)
  rel="node_modules/${p#*/node_modules/}"
  [ -d "$p" ] || continue
  [ -e "$tmp/mods/$rel" ] && continue
  mkdir -p "$tmp/mods/$(dirname "$rel")"
  cp -a "$p" "$tmp/mods/$rel"
  count=$((count + 1))
done <<< "$list"
for need in webgpu gpu.js tsx esbuild @esbuild/linux-x64 seedrandom uvu; do
  [ -d "$mods/$need" ] || die "npm ls --omit=dev did not list $need (is npm install complete?)"
done
for d in "$mods"/webgpu/dist/*/; do
  [ "$(basename "$d")" = linux-x64 ] || rm -rf "$d"
done
rm -rf "$mods/webgpu/build" "$mods/gpu.js/dist"
for d in "$mods"/@esbuild/*/; do
  [ "$(basename "$d")" = linux-x64 ] || rm -rf "$d"
done
# esbuild's install step copies its platform binary over esbuild/bin/esbuild: keep one copy (a
# hard link, which tar stores as a link), 11 MB less before compression
if cmp -s "$mods/esbuild/bin/esbuild" "$mods/@esbuild/linux-x64/bin/esbuild" 2>/dev/null; then
  ln -f "$mods/@esbuild/linux-x64/bin/esbuild" "$mods/esbuild/bin/esbuild"
fi
find "$mods" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -type f -delete
[ -f "$mods/webgpu/dist/linux-x64/dawn.node" ] || die "node_modules/webgpu has no dist/linux-x64/dawn.node"
[ -x "$mods/@esbuild/linux-x64/bin/esbuild" ] || die "no @esbuild/linux-x64 binary"
touch "$mods/.hasten-device-kit"
say "packing $count production packages ($(du -sm "$mods" | cut -f1) MB after pruning) ..."
tar -C "$tmp/mods" -cf - node_modules | xzc > "$kit/node_modules.tar.xz"

# ---- Vulkan/EGL loaders (the device README's list), unpacked from Debian's amd64 packages ----
mkdir -p "$tmp/debs" "$tmp/gl"
fetched=0
if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  # shellcheck disable=SC2086
  if (cd "$tmp/debs" && apt-get download $GL_PACKAGES >/dev/null 2>&1); then
    fetched=1
  else
    # the device README's recipe: a private amd64 package list
    o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$tmp/lists"
    mkdir -p "$tmp/lists/partial"
    # shellcheck disable=SC2086
    if apt-get $o update >/dev/null 2>&1 && (cd "$tmp/debs" && apt-get $o download $GL_PACKAGES >/dev/null 2>&1); then fetched=1; fi
  fi
fi
[ "$fetched" = 1 ] || die "could not download the loader packages ($GL_PACKAGES) with apt-get"
for f in "$tmp"/debs/*.deb; do dpkg-deb -x "$f" "$tmp/gl"; done
rm -rf "$tmp/gl/usr/share/doc" "$tmp/gl/usr/share/lintian"
ls "$tmp"/gl/usr/lib/x86_64-linux-gnu/libvulkan.so.1* >/dev/null 2>&1 || die "libvulkan1 did not unpack"
(cd "$tmp/debs" && ls *.deb) > "$tmp/gl/.packages"
tar -C "$tmp/gl" -cf - . | xzc > "$kit/gl.tar.xz"

# ---- optional peer: tfjs on WebGPU (tfjs-core + tfjs-backend-webgpu), pruned to their Node bundles ----
peer_note="not packed (--no-peers)"
if [ "$peers" = 1 ]; then
  p="$tmp/peer-install"
  mkdir -p "$p"
  echo '{ "name": "hasten-device-kit-peers", "private": true }' > "$p/package.json"
  if (cd "$p" && npm install --no-save --no-audit --no-fund --ignore-scripts \
        "@tensorflow/tfjs-core@$TFJS_VERSION" "@tensorflow/tfjs-backend-webgpu@$TFJS_VERSION" >/dev/null 2>&1); then
    pm="$tmp/peers/node_modules"
    mkdir -p "$pm/@tensorflow"
    for pkg in tfjs-core tfjs-backend-webgpu; do
      main="$(cd "$p/node_modules/@tensorflow/$pkg" && node -p 'require("./package.json").main')"
      mkdir -p "$pm/@tensorflow/$pkg/$(dirname "$main")"
      cp "$p/node_modules/@tensorflow/$pkg/package.json" "$p/node_modules/@tensorflow/$pkg/LICENSE" "$pm/@tensorflow/$pkg/" 2>/dev/null || true
      cp "$p/node_modules/@tensorflow/$pkg/$main" "$pm/@tensorflow/$pkg/$main"
    done
    # what tfjs-core's Node bundle requires at load time
    for dep in seedrandom node-fetch whatwg-url tr46 webidl-conversions long; do
      if [ -d "$p/node_modules/$dep" ]; then cp -a "$p/node_modules/$dep" "$pm/"; fi
    done
    find "$pm" \( -name '*.map' -o -name '*.d.ts' \) -type f -delete
    tar -C "$tmp/peers" -cf - node_modules | xzc > "$kit/peers.tar.xz"
    peer_note="tfjs-core + tfjs-backend-webgpu $TFJS_VERSION"
  else
    peer_note="not packed: npm install of @tensorflow/tfjs-backend-webgpu@$TFJS_VERSION failed"
    say "$peer_note (the report will run without the tfjs peer)"
  fi
fi

# ---- sentences for the decoding benchmark ----
data_note="none (the report decodes its built-in sentences)"
for d in "${DATA_DIR:-}" "$root/../shared/data" "$root/shared/data"; do
  if [ -n "$d" ] && [ -f "$d/multi30k/test2016.de" ]; then
    mkdir -p "$kit/data/multi30k"
    cp "$d/multi30k/test2016.de" "$d/multi30k/test2016.en" "$kit/data/multi30k/"
    data_note="Multi30k test2016 de/en from $(cd "$d" && pwd)"
    break
  fi
done

# ---- manifest and size ----
{
  echo "Hasten device kit, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?') on $(uname -srm)"
  echo "node: $node_ver from $node_bin (stripped; needs ${glibc_need:-?}, libstdc++)"
  echo "node_modules: $count production packages; webgpu $(node -p "require('$mods/webgpu/package.json').version"), gpu.js $(node -p "require('$mods/gpu.js/package.json').version"), tsx $(node -p "require('$mods/tsx/package.json').version")"
  echo "loaders: $(tr '\n' ' ' < "$tmp/gl/.packages")"
  echo "peers: $peer_note"
  echo "data: $data_note"
  echo
  (cd "$kit" && find . -type f ! -name MANIFEST -printf '%P\n' | sort | while read -r f; do
    printf '%10d  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-16)" "$f"
  done)
} > "$kit/MANIFEST"

kit_bytes=$(du -sb "$kit" | cut -f1)
# what else travels: tracked files and untracked files git does not ignore
tree_bytes=$(cd "$root" && { git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
total=$((kit_bytes + tree_bytes))
cat "$kit/MANIFEST"
echo
say "kit size: $(mib "$kit_bytes") in .device-kit/ (built in $(( $(date +%s) - t_start )) s)"
say "with the working tree ($(mib "$tree_bytes")): $(mib "$total") of the 64 MiB that may travel; $(mib $((LIMIT - total))) to spare"
[ "$total" -lt "$LIMIT" ] || die "kit + working tree exceed 64 MiB: it would not travel"
say "on the GPU machine: run(command=\"bash scripts/device-run.sh\", carry=[\".device-kit\"])"
