/* quantize: quantize a float model into a rotquant file (GSR rotation + GPTQ by default),
 * then open the result and print what it holds.
 *     quantize IN OUT [WBITS [GROUP [rtn|gptq [EMBD_TYPE]]]]
 * Defaults: W2, groups of 64, GPTQ calibrated on text the model generates itself, the
 * embedding stored q8_0 (EMBD_TYPE: q8_0, f16, f32).
 * Build against an installed rotquant: cc quantize.c $(pkg-config --cflags --libs rotquant) */
#include <rotquant.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* s as an integer, or exit with a message */
static long long int_arg(const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "error: '%s' is not an integer\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 7 || (argc > 5 && strcmp(argv[5], "rtn") && strcmp(argv[5], "gptq"))) {
        fprintf(stderr, "usage: %s IN OUT [WBITS [GROUP [rtn|gptq [EMBD_TYPE]]]]\n", argv[0]);
        return 2;
    }
    rotquant_quantize_params p = {.size = sizeof p}; /* 0 = rotquant quantize's defaults */
    p.wbits = argc > 3 ? (int)int_arg(argv[3]) : 0;
    p.group = argc > 4 ? int_arg(argv[4]) : 0;
    p.method = argc > 5 && !strcmp(argv[5], "rtn") ? ROTQUANT_METHOD_RTN : ROTQUANT_METHOD_GPTQ;
    p.embd_type = argc > 6 ? argv[6] : NULL;
    p.progress = 1;
    rotquant_quantize_result r = {.size = sizeof r};
    rotquant_model_info info = {.size = sizeof info};
    rotquant_model *m = NULL;
    rotquant_status s = rotquant_quantize(argv[1], argv[2], &p, &r);
    if (s == ROTQUANT_OK) s = rotquant_model_open(argv[2], NULL, &m);
    if (s == ROTQUANT_OK) s = rotquant_model_get_info(m, &info);
    if (s == ROTQUANT_OK)
        printf("wrote %s: %s, %.3f bits/weight, %.1f s\n%s\n", argv[2], r.scheme, r.bits_per_weight, r.seconds,
               info.description);
    else
        fprintf(stderr, "error: %s\n", rotquant_last_error());
    rotquant_model_close(m);
    return s == ROTQUANT_OK ? 0 : 1;
}
