#!/usr/bin/env bash
# The main job end to end on the default model (SmolLM2-135M-Instruct, Q4_1 GGUF):
# install packages, fetch the model, build, measure WikiText-2 perplexity, quantize to
# 2 bits with GSR + GPTQ + a short block-wise QAT (rotquant qat) and measure it, answer a prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/fetch-model.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
wiki=../shared/data/wikitext-2-raw/wiki.test.raw
[ -f "$wiki" ] || { echo "quickstart: $wiki not found (the shared data folder sits beside the checkout)" >&2; exit 1; }
echo "== perplexity, llama.cpp protocol, ctx 512, whole WikiText-2 test file"
build/rotquant ppl -m "$model" -f "$wiki" --protocol llamacpp --ctx 512
echo "== 2-bit weights, RCP's recipe cut to a few minutes: GSR rotation (Walsh blocks of 64), 4 learned"
echo "   levels per group of 64 (LDP, 3.0 bits/weight) started from GPTQ and trained block by block (10 steps"
echo "   per block) to reproduce the float model on 20 x 512 tokens it generates itself (rotquant qat; the full"
echo "   recipe of the README, about an hour on 2 cores, gets further)"
build/rotquant qat -m "$model" -o models/smollm2-w2-qat.gguf --gen-seqs 20 --calib-n 16 --block-steps 10 --steps 0 --seed 0
build/rotquant ppl -m models/smollm2-w2-qat.gguf -f "$wiki" --protocol full --ctx 2048 --chunks 40
echo "== generation (float model)"
build/rotquant run -m "$model" --chat -p "What is the capital of France? Answer in one sentence." -n 48
echo "== generation (the 2-bit model)"
build/rotquant run -m models/smollm2-w2-qat.gguf --chat -p "What is the capital of France? Answer in one sentence." -n 48
