#!/usr/bin/env bash
# Model benchmark on SmolLM2-135M: decode and prefill tokens/s, memory, and perplexity of
#   - our float32 path (the Q4_1 GGUF dequantized to float),
#   - our 2-bit models on the packed kernels: W2 uniform and W2 LUT made with
#     `rotquant quantize --method rtn --rotate gsr` (g64), and with GPTQ when calibration
#     ids are at hand, run with float, int8 and int4 activations (--abits 16/8/4); GPTQ
#     4-bit models on the packed W4U kernels; a 3-bit one for its perplexity,
#   - and, when LLAMA_CPP_BIN names a llama.cpp build (bin directory), llama.cpp on the
#     original Q4_1 file and on Q2_K and IQ2_XXS files requantized from it
#     (llama-quantize --allow-requantize; IQ2_XXS with an importance matrix from
#     llama-imatrix run on our self-generated calibration text, not on wiki.test), and the
#     4-bit comparison at Q4_0's 4.5 bits/weight: Q4_0 with and without that importance
#     matrix and IQ4_NL with it, against our W4 g64 GPTQ files (GSR and no rotation).
# All in one run with the same threads; bench/bench_model (ours) and llama-bench (theirs)
# time pp512 and tg128 the same way (one 512-token batch; 128 single-token steps from an
# empty cache; the best of REPS runs for both). Perplexity: llama.cpp's
# protocol, ctx 512, the first CHUNKS windows of wiki.test.raw (`rotquant ppl --protocol
# llamacpp` and `llama-perplexity -c 512 --chunks`). The machine's load (uptime) is logged
# before and after every step: on a shared machine the speed figures are only indicative.
#
# Environment: THREADS (thread counts to time, default "1 N" with N = nproc; perplexity
#   and quantization use the largest), CHUNKS (default 16), REPS (default 3),
#   OUT (default out/bench_model), CALIB_IDS (token ids from `rotquant quantize
#   --calib-save`; default out/ptq/calib_16x512.ids; generated when absent and GPTQ=1 or
#   llama.cpp runs), GPTQ (1 = also a GPTQ model; default 1), LLAMA_CPP_BIN,
#   RQ_BLAS_CORE (OpenBLAS kernels for the float path; default SKYLAKEX where the CPU has
#   AVX-512, OpenBLAS's fastest SGEMM here), PPL_ONLY (1 = perplexity and bits only, no
#   speed runs), FILES ("CONFIG=FILE ...": more rotquant files, e.g. a QAT model, each run
#   with float activations both exact and --a16 q8), SETS (all = the RTN/GPTQ files above,
#   default; files = only float32, FILES and llama.cpp's).
# Output: $OUT/results.tsv (one row per configuration), $OUT/summary.md, logs in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
rq=build/rotquant
bm=build/bench/bench_model
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
wiki=../shared/data/wikitext-2-raw/wiki.test.raw
THREADS=${THREADS:-"1 $(nproc)"}
T=$(echo $THREADS | tr ' ' '\n' | sort -n | tail -1)
CHUNKS=${CHUNKS:-16}
REPS=${REPS:-3}
GPTQ=${GPTQ:-1}
PPL_ONLY=${PPL_ONLY:-0}
FILES=${FILES:-}
SETS=${SETS:-all}
case "$SETS" in all|files) ;; *) echo "bench_model.sh: SETS=$SETS is not all or files" >&2; exit 1;; esac
for cf in $FILES; do [ -s "${cf#*=}" ] || { echo "bench_model.sh: FILES: ${cf#*=} not found" >&2; exit 1; }; done
out=${OUT:-out/bench_model}
calib_ids=${CALIB_IDS:-out/ptq/calib_16x512.ids}
LB=${LLAMA_CPP_BIN:-}
if grep -q avx512f /proc/cpuinfo; then export RQ_BLAS_CORE=${RQ_BLAS_CORE:-SKYLAKEX}; fi
for f in $rq $bm $model $wiki; do [ -e "$f" ] || { echo "bench_model.sh: missing $f (build first; models/ via scripts/fetch-model.sh)" >&2; exit 1; }; done
mkdir -p "$out"
log=$out/run.log
res=$out/results.tsv
: > "$log"
note() { echo "$*" | tee -a "$log"; }
load() { note "# $(date +%T) load: $(cut -d' ' -f1-3 /proc/loadavg) ($1)"; }

note "# bench_model.sh $(date -u +%FT%TZ): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; THREADS=$THREADS CHUNKS=$CHUNKS REPS=$REPS; OpenBLAS core ${RQ_BLAS_CORE:-default}"
printf 'config\tengine\tthreads\tfile_MiB\tlinear_bpw\tmodel_bpw\tweights_MiB\trss_MiB\tpeak_rss_MiB\tpp512\ttg128\tcpu_pct\tppl\n' > "$res"

# bits per weight from `rotquant info`: the blocks' linear layers (bytes of their tensors,
# rotquant's .codes/.params included, over the original linears' weight count) and the
# whole file (tensor bytes over the original model's parameter count)
read -r LIN_W ALL_W < <($rq info "$model" | awk '
    /^  blk\.[0-9]+\.(attn_(q|k|v|output)|ffn_(gate|up|down))\.weight / { gsub(/[\[\],]/, " "); lin += $3 * $4 }
    / weights in / { all = $1 } END { print lin, all }')
bpw() { # FILE -> "linear_bpw model_bpw" ("- -" and a note if rotquant cannot list FILE)
    local listing
    if ! listing=$($rq info "$1" 2>> "$log"); then
        echo "# bpw: rotquant info $1 failed (see $log)" | tee -a "$log" >&2 # not on stdout: it is captured
        echo "- -"
        return
    fi
    awk -v lw="$LIN_W" -v aw="$ALL_W" '
        /^  blk\.[0-9]+\.(attn_(q|k|v|output)|ffn_(gate|up|down))\.weight/ { lin += $NF }
        / weights in / { all = $4 } END { printf "%.3f %.3f", 8 * lin / lw, 8 * all / aw }' <<< "$listing"
}
mib() { echo "scale=1; $(stat -c %s "$1") / 1048576" | bc; }

# ---- our models
q() { # NAME quantize-args...
    local name=$1 f=$out/$1.gguf
    shift
    [ -s "$f" ] || { load "quantize $name"; $rq quantize -m "$model" -o "$f" -t "$T" "$@" > "$out/$name.quantize.log" 2>&1; }
}
[ "$SETS" = files ] && GPTQ=0
if [ "$SETS" = all ]; then
    q w2u_rtn_gsr --method rtn --rotate gsr --group 64 --quantizer uniform
    q w2l_rtn_gsr --method rtn --rotate gsr --group 64 --quantizer lut
fi
if [ "$GPTQ" = 1 ] || [ -n "$LB" ]; then
    if [ ! -s "$calib_ids" ]; then
        load "calibration ids"
        mkdir -p "$(dirname "$calib_ids")"
        $rq quantize -m "$model" --calib-n 16 --calib-len 512 --seed 0 --calib-save "$calib_ids" -t "$T" > "$out/calib.log" 2>&1
    fi
fi
if [ "$GPTQ" = 1 ]; then
    q w2u_gptq_gsr --method gptq --rotate gsr --group 64 --quantizer uniform --calib-ids "$calib_ids"
    q w2l_gptq_gsr --method gptq --rotate gsr --group 64 --quantizer lut --calib-ids "$calib_ids"
    # near llama.cpp's bits per weight (its 2-bit types fit few of SmolLM2's 576-wide
    # matrices, so its "Q2_K" file is 4.23 bits/weight on the linears and IQ2_XXS 3.90):
    # 4 bits on the packed W4U kernels (g64: 4.5 bits; g128 where the input width allows,
    # ffn_down, else 64: 4.44), and 3 bits for perplexity only (no packed 3-bit kernels:
    # it runs dequantized to float)
    q w3u_gptq_gsr --wbits 3 --method gptq --rotate gsr --group 64 --quantizer uniform --calib-ids "$calib_ids"
    q w4u_gptq_gsr --wbits 4 --method gptq --rotate gsr --group 64 --quantizer uniform --calib-ids "$calib_ids"
    q w4u_gptq_none --wbits 4 --method gptq --rotate none --group 64 --quantizer uniform --calib-ids "$calib_ids"
    q w4u_gptq_gsr_g128 --wbits 4 --method gptq --rotate gsr --block 64 --group 128 --quantizer uniform \
        --calib-ids "$calib_ids"
fi

ours() { # CONFIG FILE ABITS [A16: exact (default) or q8]
    local cfg=$1 f=$2 ab=$3 a16=${4:-exact} t line ppl lbpw mbpw
    if [ "$PPL_ONLY" = 1 ]; then ours_ppl "$@"; return; fi
    load "$cfg: ppl"
    ppl=$($rq ppl -m "$f" -f "$wiki" --protocol llamacpp --ctx 512 --chunks "$CHUNKS" --abits "$ab" --a16 "$a16" -t "$T" \
          2> "$out/$cfg.ppl.err" | tee "$out/$cfg.ppl.log" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
    read -r lbpw mbpw <<< "$(bpw "$f")"
    for t in $THREADS; do
        load "$cfg: bench_model -t $t"
        line=$($bm "$f" -t "$t" -p 512 -n 128 -r "$REPS" --abits "$ab" --a16 "$a16" --tsv "$cfg" | tee "$out/$cfg.t$t.bench.log" | tail -1)
        IFS=$'\t' read -r _ wmib rss _ peak pp tg cpu <<< "$line"
        printf '%s\trotquant\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$t" "$(mib "$f")" "$lbpw" "$mbpw" \
            "$wmib" "$rss" "$peak" "$pp" "$tg" "$cpu" "$ppl" | tee -a "$res"
    done
}
ours_ppl() { # CONFIG FILE [ABITS [A16]]: perplexity only
    local cfg=$1 f=$2 ab=${3:-16} a16=${4:-exact} ppl lbpw mbpw
    load "$cfg: ppl"
    ppl=$($rq ppl -m "$f" -f "$wiki" --protocol llamacpp --ctx 512 --chunks "$CHUNKS" --abits "$ab" --a16 "$a16" -t "$T" 2> "$out/$cfg.ppl.err" |
          tee "$out/$cfg.ppl.log" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
    read -r lbpw mbpw <<< "$(bpw "$f")"
    printf '%s\trotquant\t-\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n' "$cfg" "$(mib "$f")" "$lbpw" "$mbpw" "$ppl" | tee -a "$res"
}
ours float32 "$model" 16
for cf in $FILES; do
    ours "${cf%%=*}_a16" "${cf#*=}" 16 exact
    ours "${cf%%=*}_a16q8" "${cf#*=}" 16 q8
done
if [ "$SETS" = all ]; then
    for ab in 16 8 4; do ours "w2u_rtn_gsr_a$ab" "$out/w2u_rtn_gsr.gguf" "$ab"; done
    ours w2l_rtn_gsr_a16 "$out/w2l_rtn_gsr.gguf" 16
    ours w2l_rtn_gsr_a4 "$out/w2l_rtn_gsr.gguf" 4
fi
if [ "$GPTQ" = 1 ]; then
    for ab in 16 8 4; do ours "w2u_gptq_gsr_a$ab" "$out/w2u_gptq_gsr.gguf" "$ab"; done
    ours w2l_gptq_gsr_a16 "$out/w2l_gptq_gsr.gguf" 16
    ours w2l_gptq_gsr_a4 "$out/w2l_gptq_gsr.gguf" 4
    ours_ppl w3u_gptq_gsr_a16 "$out/w3u_gptq_gsr.gguf"
    for ab in 16 8 4; do ours "w4u_gptq_gsr_a$ab" "$out/w4u_gptq_gsr.gguf" "$ab"; done
    for ab in 16 8; do ours "w4u_gptq_gsr_g128_a$ab" "$out/w4u_gptq_gsr_g128.gguf" "$ab"; done
    ours_ppl w4u_gptq_none_a16 "$out/w4u_gptq_none.gguf"
fi

# ---- llama.cpp
if [ -n "$LB" ]; then
    calib_txt=$out/calib.txt
    [ -s "$calib_txt" ] || $rq detok -m "$model" --ids-file "$calib_ids" > "$calib_txt"
    llq() { # NAME TYPE [extra llama-quantize args]
        local name=$1 type=$2 f=$out/$1.gguf
        shift 2
        [ -s "$f" ] || { load "llama-quantize $name"; "$LB/llama-quantize" --allow-requantize "$@" "$model" "$f" "$type" "$T" > "$out/$name.quantize.log" 2>&1; }
        grep -E "quant size|fallback" "$out/$name.quantize.log" | sed 's/^/  /' | tee -a "$log"
        grep -oE "converting to [A-Za-z0-9_]+" "$out/$name.quantize.log" | sort | uniq -c | sed 's/^/  /' | tee -a "$log" || true
    }
    llq llama_q2_k Q2_K
    if [ ! -s "$out/imatrix.gguf" ]; then
        load "llama-imatrix"
        "$LB/llama-imatrix" -m "$model" -f "$calib_txt" -o "$out/imatrix.gguf" -c 512 -t "$T" > "$out/imatrix.log" 2>&1
    fi
    llq llama_iq2_xxs IQ2_XXS --imatrix "$out/imatrix.gguf"
    llq llama_q4_0 Q4_0
    llq llama_q4_0_imat Q4_0 --imatrix "$out/imatrix.gguf"
    llq llama_iq4_nl_imat IQ4_NL --imatrix "$out/imatrix.gguf"
    best_ts() { # the fastest of llama-bench's samples (ours report the best of REPS too)
        sed -n 's/.*"samples_ts": \[\([^]]*\)\].*/\1/p' | tr ',' '\n' | sort -g | tail -1 | xargs
    }
    theirs() { # CONFIG FILE [ppl: perplexity only]
        local cfg=$1 f=$2 t pp tg peak ppl lbpw mbpw
        load "$cfg: llama-perplexity"
        ppl=$("$LB/llama-perplexity" -m "$f" -f "$wiki" -c 512 --chunks "$CHUNKS" -t "$T" 2>&1 | tee "$out/$cfg.ppl.log" |
              sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
        read -r lbpw mbpw <<< "$(bpw "$f")"
        if [ "$PPL_ONLY" = 1 ] || [ "${3:-}" = ppl ]; then
            printf '%s\tllama.cpp\t-\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n' "$cfg" "$(mib "$f")" "$lbpw" "$mbpw" "$ppl" | tee -a "$res"
            return
        fi
        for t in $THREADS; do
            load "$cfg: llama-bench -t $t"
            /usr/bin/time -f "%M" -o "$out/$cfg.t$t.time" "$LB/llama-bench" -m "$f" -t "$t" -p 512 -n 128 -r "$REPS" -o jsonl \
                > "$out/$cfg.t$t.bench.jsonl" 2> "$out/$cfg.t$t.bench.err"
            pp=$(grep '"n_prompt": 512' "$out/$cfg.t$t.bench.jsonl" | best_ts)
            tg=$(grep '"n_gen": 128' "$out/$cfg.t$t.bench.jsonl" | best_ts)
            peak=$(echo "scale=1; $(tail -1 "$out/$cfg.t$t.time") / 1024" | bc)
            printf '%s\tllama.cpp\t%s\t%s\t%s\t%s\t-\t-\t%s\t%.1f\t%.1f\t-\t%s\n' "$cfg" "$t" "$(mib "$f")" "$lbpw" "$mbpw" \
                "$peak" "$pp" "$tg" "$ppl" | tee -a "$res"
        done
    }
    theirs llama_q4_1 "$model"
    theirs llama_q2_k "$out/llama_q2_k.gguf"
    theirs llama_iq2_xxs "$out/llama_iq2_xxs.gguf"
    theirs llama_q4_0 "$out/llama_q4_0.gguf" ppl
    theirs llama_q4_0_imat "$out/llama_q4_0_imat.gguf"
    theirs llama_iq4_nl_imat "$out/llama_iq4_nl_imat.gguf" ppl
fi
load "end"

# ---- summary: ratios to our float32 path and to llama.cpp's Q4_1 (when run), per thread count
awk -F'\t' -v chunks="$CHUNKS" '
    NR == 1 { next }
    { row[NR] = $0; t = $3
      if ($1 == "float32") { fpp[t] = $10; ftg[t] = $11 }
      if ($1 == "llama_q4_1") { lpp[t] = $10; ltg[t] = $11 } }
    END {
        print "| config | engine | threads | file MiB | bpw linears | bpw model | weights MiB | RSS MiB (peak) | pp512 t/s | tg128 t/s | pp, tg vs our float32 | pp, tg vs llama.cpp Q4_1 | PPL (" chunks " chunks) |"
        print "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        for (i = 2; i <= NR; i++) {
            split(row[i], f, "\t")
            t = f[3]
            rf = fpp[t] && f[10] != "-" ? sprintf("%.2f, %.2f", f[10] / fpp[t], f[11] / ftg[t]) : "-"
            rl = lpp[t] && f[10] != "-" ? sprintf("%.2f, %.2f", f[10] / lpp[t], f[11] / ltg[t]) : "-"
            rss = f[8] == "-" ? f[9] : f[8] " (" f[9] ")"
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], t, f[4], f[5], f[6], f[7], rss, f[10], f[11], rf, rl, f[13]
        }
    }' "$res" | tee "$out/summary.md"
