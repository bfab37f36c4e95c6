#include "base/cpu.h"

#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

static rq_cpu_features g_feat;
static int g_feat_done;
static int g_level_cap = -1;

static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

const rq_cpu_features *rq_cpu_features_get(void) {
    if (g_feat_done) return &g_feat;
    unsigned int a, b, c, d;
    rq_cpu_features f;
    memset(&f, 0, sizeof f);
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        bool osxsave = (c >> 27) & 1;
        bool avx = (c >> 28) & 1;
        unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
        bool ymm_ok = osxsave && avx && (xcr0 & 0x6) == 0x6;
        bool zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
        f.fma = ymm_ok && ((c >> 12) & 1);
        f.f16c = ymm_ok && ((c >> 29) & 1);
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            f.avx2 = ymm_ok && ((b >> 5) & 1);
            f.avx512f = zmm_ok && ((b >> 16) & 1);
            f.avx512dq = zmm_ok && ((b >> 17) & 1);
            f.avx512bw = zmm_ok && ((b >> 30) & 1);
            f.avx512vl = zmm_ok && ((b >> 31) & 1);
            f.avx512vnni = zmm_ok && ((c >> 11) & 1);
        }
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avxvnni = ymm_ok && ((a >> 4) & 1);
    }
    g_feat = f;
    g_feat_done = 1;
    return &g_feat;
}

rq_cpu_level rq_cpu_max_level(void) {
    const rq_cpu_features *f = rq_cpu_features_get();
    if (f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx2 && f->fma) return RQ_CPU_AVX512;
    if (f->avx2 && f->fma && f->f16c) return RQ_CPU_AVX2;
    return RQ_CPU_SCALAR;
}

/* RQ_CPU's cap, read once (the kernels ask for the level on every call; getenv showed in
 * decode profiles): -1 none, else a level. */
static int env_cap(void) {
    static volatile int cap = -2; /* benign race: every thread computes the same value */
    if (cap == -2) {
        const char *env = getenv("RQ_CPU");
        int c = -1;
        if (env && !strcmp(env, "scalar")) c = RQ_CPU_SCALAR;
        else if (env && !strcmp(env, "avx2")) c = RQ_CPU_AVX2;
        else if (env && !strcmp(env, "avx512")) c = RQ_CPU_AVX512;
        cap = c;
    }
    return cap;
}

rq_cpu_level rq_cpu_level_get(void) {
    int lvl = (int)rq_cpu_max_level();
    const int cap = env_cap();
    if (cap >= 0 && cap < lvl) lvl = cap;
    if (g_level_cap >= 0 && g_level_cap < lvl) lvl = g_level_cap;
    return (rq_cpu_level)lvl;
}

void rq_cpu_set_level(rq_cpu_level level) { g_level_cap = (int)level; }

const char *rq_cpu_level_name(rq_cpu_level level) {
    switch (level) {
    case RQ_CPU_SCALAR: return "scalar";
    case RQ_CPU_AVX2: return "avx2";
    case RQ_CPU_AVX512: return "avx512";
    }
    return "?";
}
