#!/usr/bin/env bash
# The main job end to end on the default model (SmolLM2-135M-Instruct, Q4_1 GGUF):
# install packages, fetch the model, build, measure WikiText-2 perplexity, quantize to
# 2 bits with GSR + GPTQ and measure it, answer a prompt.
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
echo "== 2-bit weights with quantize's defaults: GSR rotation (Walsh blocks of 64) + GPTQ, uniform 2-bit groups of 64"
echo "   (2.5 bits/weight) fitted by Hessian-weighted least squares; calibrated on 16 x 512 tokens the model"
echo "   generates itself (the default, 128 x 2048, takes about an hour on 2 cores)"
build/rotquant quantize -m "$model" -o models/smollm2-w2-gsr-gptq.gguf --calib-n 16 --calib-len 512 --seed 0
build/rotquant ppl -m models/smollm2-w2-gsr-gptq.gguf -f "$wiki" --protocol llamacpp --ctx 512 --chunks 40
echo "== generation (float model)"
build/rotquant run -m "$model" --chat -p "What is the capital of France? Answer in one sentence." -n 48
echo "== generation (the 2-bit model)"
build/rotquant run -m models/smollm2-w2-gsr-gptq.gguf --chat -p "What is the capital of France? Answer in one sentence." -n 48
