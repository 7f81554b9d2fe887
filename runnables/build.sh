#!/usr/bin/env bash
# Rebuilds every Rust runnable under runnables/ (each folder whose Cargo.toml builds a cdylib)
# and every AssemblyScript one (each folder with an index.ts) into runnables/<name>/<name>.wasm,
# then the WAT test modules (tests/wasm/build.sh).
#
#   bash runnables/build.sh           rebuild and copy the .wasm files into place
#   bash runnables/build.sh --check   rebuild into a temporary folder and exit 1, naming the
#                                     files, if any committed .wasm differs from a fresh build
#
# The bytes are reproducible: the Rust crates are built from a copy at one fixed path (Cargo
# hashes a path dependency's location into its symbols, which moves code around), source paths
# are remapped (so the clone's location does not show),
# the toolchain is Debian's (rustc 1.63 with libstd-rust-dev-wasm32, binaryen's wasm-opt, wabt's
# wat2wasm; see shared/TOOLCHAIN.md) and nothing else varies. A different toolchain version may
# give different bytes: --check prints the versions it used.
set -euo pipefail

usage() {
  echo "usage: bash runnables/build.sh [--check]" >&2
  exit 2
}

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) usage ;;
esac
[ "$#" -le 1 ] || usage

runnables="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(dirname "$runnables")"

# Debian's toolchain: ~/.cargo/bin (rustup, without a wasm32 target) may shadow it on PATH.
RUSTC="${RUSTC:-/usr/bin/rustc}"
CARGO="${CARGO:-/usr/bin/cargo}"
# Debian's binaryen, by path: `deno task` puts node_modules/.bin first on PATH, and the npm
# assemblyscript package brings another wasm-opt that writes other bytes.
WASM_OPT="${WASM_OPT:-/usr/bin/wasm-opt}"
for tool in "$RUSTC" "$CARGO" "$WASM_OPT"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build.sh: $tool not found; install it with" >&2
    echo "  apt-get install -y rustc cargo libstd-rust-dev-wasm32 lld binaryen wabt" >&2
    exit 1
  fi
done
export RUSTC
# The crates build from a copy at a fixed path, whatever the clone's: the SDK is a path
# dependency, and Cargo hashes its absolute path into symbol names, which changes the bytes.
build_root=/tmp/stratos-runnables-build
rm -rf "$build_root"
mkdir -p "$build_root"
for crate in "$runnables"/*/; do
  [ -e "$crate/Cargo.toml" ] || continue
  mkdir -p "$build_root/$(basename "$crate")"
  (cd "$crate" && tar --exclude=./target -cf - .) | tar -xf - -C "$build_root/$(basename "$crate")"
done
# Only these flags reach rustc: a user's RUSTFLAGS would change the bytes.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS
export RUSTFLAGS="--remap-path-prefix=$build_root=. --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
export SOURCE_DATE_EPOCH=0

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp" "$build_root"' EXIT

differ=()
built=0
for manifest in "$runnables"/*/Cargo.toml; do
  [ -e "$manifest" ] || continue
  crate_dir="$(dirname "$manifest")"
  name="$(basename "$crate_dir")"
  # Only runnables (cdylib crates); the SDK and other libraries are built as their dependencies.
  grep -Eq '^crate-type *= *\[ *"cdylib" *\]' "$manifest" || continue

  # Cargo turns '-' into '_' in the artifact's file name.
  artifact="${name//-/_}.wasm"
  out="$crate_dir/$name.wasm"
  if [ "$check" -eq 1 ]; then
    target_dir="$tmp/target-$name"
    locked=(--locked)
  else
    target_dir="$crate_dir/target"
    locked=()
  fi

  echo "== $name"
  (cd "$build_root/$name" && CARGO_TARGET_DIR="$target_dir" "$CARGO" build --release \
    --target wasm32-unknown-unknown --offline --quiet "${locked[@]}")
  fresh="$tmp/$name.wasm"
  "$WASM_OPT" -Oz --strip-debug --strip-producers \
    "$target_dir/wasm32-unknown-unknown/release/$artifact" -o "$fresh"
  built=$((built + 1))

  if [ "$check" -eq 1 ]; then
    if ! cmp -s "$fresh" "$out"; then
      differ+=("runnables/$name/$name.wasm")
    fi
  else
    cp "$fresh" "$out"
    echo "   runnables/$name/$name.wasm: $(wc -c <"$out") bytes"
  fi
done

# AssemblyScript runnables: each runnables/<name>/index.ts (but the SDK, suborbital-as), built
# with the npm assemblyscript compiler through Deno, pinned in deno.json and deno.lock.
ASC=(deno run --frozen --allow-read --allow-write --allow-env npm:assemblyscript@0.28.20/asc)
for entry in "$runnables"/*/index.ts; do
  [ -e "$entry" ] || continue
  crate_dir="$(dirname "$entry")"
  name="$(basename "$crate_dir")"
  [ "$name" = "suborbital-as" ] && continue
  echo "== $name (AssemblyScript)"
  fresh="$tmp/$name.wasm"
  # Relative paths: the bytes must not depend on where the clone lives.
  (cd "$repo" && "${ASC[@]}" "runnables/$name/index.ts" -o "$fresh" --optimize \
    --runtime stub --use abort=runnables/suborbital-as/index/abort)
  out="$crate_dir/$name.wasm"
  built=$((built + 1))
  if [ "$check" -eq 1 ]; then
    cmp -s "$fresh" "$out" || differ+=("runnables/$name/$name.wasm")
  else
    cp "$fresh" "$out"
    echo "   runnables/$name/$name.wasm: $(wc -c <"$out") bytes"
  fi
done

if [ "$built" -eq 0 ]; then
  echo "build.sh: no Rust runnable (a Cargo.toml with crate-type = [\"cdylib\"]) under runnables/" >&2
  exit 1
fi

if [ "$check" -eq 1 ]; then
  if [ "${#differ[@]}" -gt 0 ]; then
    echo "build.sh --check: these committed files differ from a fresh build:" >&2
    printf '  %s\n' "${differ[@]}" >&2
    echo "toolchain: $("$RUSTC" --version), $("$WASM_OPT" --version)" >&2
    echo "run 'deno task build' with this toolchain and commit the .wasm files" >&2
    status=1
  else
    echo "build.sh --check: $built runnable(s) match a fresh build"
    status=0
  fi
  bash "$repo/tests/wasm/build.sh" --check || status=1
  exit "$status"
fi

bash "$repo/tests/wasm/build.sh"
