#!/usr/bin/env bash
# Builds the test modules tests/wasm/<name>.wat into tests/wasm/<name>.wasm with wabt's wat2wasm,
# so that the tests need no wabt at run time.
#
#   bash tests/wasm/build.sh           rebuild the .wasm files
#   bash tests/wasm/build.sh --check   exit 1, naming the files, if a committed .wasm differs
#                                      from a fresh build
# runnables/build.sh runs this too.
set -euo pipefail

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *)
    echo "usage: bash tests/wasm/build.sh [--check]" >&2
    exit 2
    ;;
esac

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
WAT2WASM="${WAT2WASM:-wat2wasm}"
if ! command -v "$WAT2WASM" >/dev/null 2>&1; then
  echo "tests/wasm/build.sh: $WAT2WASM not found; install it with: apt-get install -y wabt" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

differ=()
count=0
for wat in "$dir"/*.wat; do
  [ -e "$wat" ] || continue
  name="$(basename "$wat" .wat)"
  "$WAT2WASM" "$wat" -o "$tmp/$name.wasm"
  count=$((count + 1))
  if [ "$check" -eq 1 ]; then
    cmp -s "$tmp/$name.wasm" "$dir/$name.wasm" || differ+=("tests/wasm/$name.wasm")
  else
    cp "$tmp/$name.wasm" "$dir/$name.wasm"
    echo "   tests/wasm/$name.wasm: $(wc -c <"$dir/$name.wasm") bytes"
  fi
done

if [ "$check" -eq 1 ]; then
  if [ "${#differ[@]}" -gt 0 ]; then
    echo "tests/wasm/build.sh --check: these committed files differ from a fresh build:" >&2
    printf '  %s\n' "${differ[@]}" >&2
    echo "toolchain: wat2wasm $("$WAT2WASM" --version)" >&2
    echo "run 'deno task build' and commit the .wasm files" >&2
    exit 1
  fi
  echo "tests/wasm/build.sh --check: $count module(s) match a fresh build"
fi
