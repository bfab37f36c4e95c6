#include "base/hash.h"

#include <string.h>

#define HASH_MUL UINT64_C(0x9E3779B97F4A7C15)

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t rq_hash64(const void *p, int64_t n, uint64_t h) {
    const unsigned char *b = p;
    /* four independent lanes over 32-byte steps, so the multiplies overlap */
    uint64_t l[4] = {h ^ (uint64_t)n, h + HASH_MUL, h ^ UINT64_C(0x243F6A8885A308D3), h - HASH_MUL};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, b + i + 8 * k, 8);
            l[k] = (l[k] ^ w) * HASH_MUL;
            l[k] ^= l[k] >> 32;
        }
    uint64_t t = UINT64_C(0x13198A2E03707344), w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        t = mix(t ^ w);
    }
    w = 0;
    if (n > i) memcpy(&w, b + i, (size_t)(n - i)); /* the last 0..7 bytes */
    t = mix(t ^ w ^ ((uint64_t)(n - i) << 56));
    uint64_t r = mix(l[0]) ^ mix(l[1] + 1) ^ mix(l[2] + 2) ^ mix(l[3] + 3);
    return mix(r ^ t);
}
