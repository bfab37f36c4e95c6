#!/usr/bin/env bash
# Install what rotquant needs on a fresh Debian machine: compilers, CMake, OpenBLAS,
# LAPACKE, PCRE2, Open MPI (the optional -DRQ_MPI=ON build and its tests), pkg-config (the
# installed C API test builds the examples with it), and the Python packages of the
# independent numpy reference (tests).
set -euo pipefail
pkgs="build-essential cmake clang pkg-config libopenblas-dev liblapacke-dev libpcre2-dev libopenmpi-dev openmpi-bin python3 python3-pip"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "install-deps: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
fi
# numpy + gguf (pinned) for tests/ref/*.py, the reference our forward pass is checked against;
# safetensors + tokenizers (pinned) for tests/ref/make_hf_checkpoint.py (test_hf: a Hugging
# Face checkpoint of the default model)
py_pkgs="numpy<3 gguf==0.19.0 safetensors==0.8.0 tokenizers==0.23.3"
if ! python3 -c 'import numpy, gguf, safetensors, tokenizers' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check $py_pkgs \
        || python3 -m pip install --quiet --break-system-packages $py_pkgs
fi
