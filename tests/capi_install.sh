#!/usr/bin/env bash
# Install and use the library as another program would: `cmake --install` into a temporary
# prefix; the shared library exports exactly the functions of rotquant.h; the examples,
# copied out of the tree, build with `pkg-config --cflags --libs rotquant` alone (strict C11,
# -Werror) and run against the installed library on the tiny test model, giving what the
# CLI gives: the same generated text (greedy and sampled), the same PPL line, the same
# quantized file byte for byte. Skipped (77) without pkg-config.
# Environment (tests/CMakeLists.txt): RQ_BUILD_DIR, RQ_TEST_CAPI (test_capi), RQ_CLI.
set -euo pipefail
if ! command -v pkg-config >/dev/null; then echo "SKIPPED: pkg-config not found"; exit 77; fi
src=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$RQ_BUILD_DIR" --prefix "$tmp/inst" >"$tmp/install.log"
pc=$(find "$tmp/inst" -name rotquant.pc)
[ -n "$pc" ] || fail "no rotquant.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in "$tmp/inst/include/rotquant.h" "$tmp/inst/bin/rotquant" "$libdir/librotquant.a" "$libdir/librotquant.so"; do
    [ -e "$f" ] || fail "$f not installed"
done
soname=$(objdump -p "$libdir/librotquant.so" | awk '/SONAME/ {print $2}')
major=$(sed -n 's/^#define ROTQUANT_API_VERSION_MAJOR \([0-9]*\)$/\1/p' include/rotquant.h)
[ "$soname" = "librotquant.so.$major" ] || fail "SONAME '$soname', expected librotquant.so.$major"

# exported: the header's functions, nothing else
nm -D --defined-only "$libdir/librotquant.so" | awk '{print $3}' | sort >"$tmp/exported"
grep -o '^ROTQUANT_API [^(]*(' include/rotquant.h | sed 's/.*[ *]\(rotquant_[a-z_0-9]*\)($/\1/' | sort >"$tmp/declared"
[ -s "$tmp/declared" ] || fail "no functions found in rotquant.h"
diff "$tmp/declared" "$tmp/exported" >"$tmp/symdiff" || { cat "$tmp/symdiff"; fail "exported symbols differ from the header's functions"; }
echo "capi_install: $(wc -l <"$tmp/exported") symbols exported, all declared in rotquant.h"

# the examples, built out of the tree against the installed library only
export PKG_CONFIG_PATH="$(dirname "$pc")"
flags=$(pkg-config --cflags --libs rotquant)
case "$flags" in *"$src"*) fail "pkg-config flags point into the source tree: $flags";; esac
mkdir "$tmp/app"
cp examples/*.c "$tmp/app/"
cd "$tmp/app"
for ex in simple_generate perplexity quantize; do
    # shellcheck disable=SC2086
    ${CC:-cc} -std=c11 -Wall -Wextra -pedantic -Werror $ex.c $flags -o $ex || fail "building $ex with: $flags"
done
export LD_LIBRARY_PATH="$libdir"
# (ldd into a file: with pipefail, `ldd | grep -q` fails when grep's early exit makes ldd die of SIGPIPE)
ldd ./simple_generate >"$tmp/ldd.txt"
grep -q "$libdir/librotquant.so.$major" "$tmp/ldd.txt" || fail "simple_generate does not load the installed library"
"$RQ_TEST_CAPI" --write-model tiny.gguf

# generation: the CLI's text (greedy; sampled with run's default top-k 40, top-p 0.95)
for args in "0 42" "0.8 7"; do
    set -- $args
    ./simple_generate tiny.gguf "the<Then" 12 "$1" "$2" >ex.out 2>ex.err || { cat ex.err; fail "simple_generate"; }
    "$RQ_CLI" run -m tiny.gguf --chat -p "the<Then" -n 12 --temp "$1" --seed "$2" -q >cli.out
    { cat ex.out; echo; } >ex.nl # the CLI ends with a newline of its own
    cmp -s ex.nl cli.out || { echo "example: $(cat ex.out)"; echo "cli:     $(cat cli.out)"; fail "generated text differs (temp $1)"; }
    [ -s ex.out ] || fail "nothing generated (temp $1)"
    echo "capi_install: generate temp $1: '$(cat ex.out)' = rotquant run's"
done

# perplexity: the CLI's figure
awk 'BEGIN { srand(3); for (l = 0; l < 8; l++) { s = ""; for (i = 0; i < 40; i++) s = s sprintf("%c", 60 + int(rand() * 65)); print s } }' >text.txt
./perplexity tiny.gguf text.txt 16 >ex.ppl || fail "perplexity example"
"$RQ_CLI" ppl -m tiny.gguf -f text.txt --ctx 16 -q >cli.ppl
want=$(grep '^PPL = ' cli.ppl); got=$(grep '^PPL = ' ex.ppl)
[ -n "$want" ] && [ "$got" = "$want" ] || fail "perplexity: '$got' vs the CLI's '$want'"
echo "capi_install: perplexity $got = rotquant ppl's"

# quantize: the CLI's file
./quantize tiny.gguf ex_q.gguf 4 16 rtn f16 >ex.q 2>ex.qerr || { cat ex.qerr; fail "quantize example"; }
"$RQ_CLI" quantize -m tiny.gguf -o cli_q.gguf --wbits 4 --group 16 --method rtn --embd-type f16 -q
cmp -s ex_q.gguf cli_q.gguf || fail "quantized files differ"
grep -q "W4A16KV16" ex.q || fail "quantize example output: $(cat ex.q)"
echo "capi_install: quantize W4 g16 rtn: the same file as rotquant quantize ($(wc -c <ex_q.gguf) bytes)"
