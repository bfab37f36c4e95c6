#!/usr/bin/env bash
# The public header compiled as C++ (tests/capi_cxx.cpp: -std=c++11 -pedantic -Werror), linked
# to the build's librotquant.so and run on the tiny test model; and the header alone as strict
# C99 and C11. Skipped (77) without a C++ compiler.
# Environment (tests/CMakeLists.txt): RQ_CAPI_LIB (librotquant.so), RQ_TEST_CAPI (test_capi).
set -euo pipefail
cxx=${CXX:-c++}
if ! command -v "$cxx" >/dev/null; then echo "SKIPPED: no C++ compiler ($cxx)"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
libdir=$(dirname "$RQ_CAPI_LIB")
"$cxx" -std=c++11 -Wall -Wextra -pedantic -Werror -Iinclude tests/capi_cxx.cpp -L"$libdir" -lrotquant \
    -Wl,-rpath,"$libdir" -o "$tmp/capi_cxx"
"$RQ_TEST_CAPI" --write-model "$tmp/tiny.gguf"
"$tmp/capi_cxx" "$tmp/tiny.gguf"
for std in c99 c11; do
    printf '#include <rotquant.h>\nint main(void) { return rotquant_version() != ROTQUANT_API_VERSION; }\n' > "$tmp/h.c"
    ${CC:-cc} -std=$std -Wall -Wextra -pedantic -Werror -Iinclude "$tmp/h.c" -L"$libdir" -lrotquant \
        -Wl,-rpath,"$libdir" -o "$tmp/h_$std"
    "$tmp/h_$std"
done
echo "capi_cxx: C++11, C99 and C11 builds of rotquant.h ok"
