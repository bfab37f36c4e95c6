/* rotquant info FILE: what a model file holds — metadata, tensors, sizes, bits per weight. */
#include "cli.h"

#include "base/status.h"
#include "format/format.h"
#include "io/gguf.h"
#include "model/hf.h"
#include "model/model.h"
#include "model/qinfo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* A string of the file, quoted: newlines and quotes as \n and \", other control
 * characters and malformed UTF-8 as \xNN (base/status.h) */
static void print_str(rq_gguf_str s, uint64_t max) {
    putchar('"');
    uint64_t end = s.len < max ? s.len : max;
    for (uint64_t i = 0; i < end;) {
        size_t k = rq_printable_len(s.ptr + i, (size_t)(end - i));
        if (s.ptr[i] == '\n') fputs("\\n", stdout);
        else if (s.ptr[i] == '"') fputs("\\\"", stdout);
        else if (!k) printf("\\x%02x", (unsigned char)s.ptr[i]);
        else fwrite(s.ptr + i, 1, k, stdout);
        i += k ? k : 1;
    }
    putchar('"');
    if (s.len > max) printf("... (%" PRIu64 " bytes)", s.len);
}

/* A key or tensor name (NUL-terminated copy from the file), escaped into buf */
static const char *esc(const char *s, char *buf, size_t n) { return rq_escape(s, strlen(s), buf, n); }

static void print_value(const rq_gguf_kv *kv, bool full) {
    switch (kv->type) {
    case RQ_GGUF_STR: print_str(kv->s, full ? UINT64_MAX : 80); break;
    case RQ_GGUF_F32: case RQ_GGUF_F64: printf("%g", kv->f); break;
    case RQ_GGUF_BOOL: printf("%s", kv->u ? "true" : "false"); break;
    case RQ_GGUF_I8: case RQ_GGUF_I16: case RQ_GGUF_I32: case RQ_GGUF_I64: printf("%" PRId64, kv->i); break;
    case RQ_GGUF_ARR: {
        uint64_t show = full ? kv->arr_n : (kv->arr_n < 6 ? kv->arr_n : 6);
        printf("[%s × %" PRIu64 "]", rq_gguf_vtype_name(kv->arr_type), kv->arr_n);
        if (kv->arr_type == RQ_GGUF_ARR) break;
        printf(" {");
        for (uint64_t i = 0; i < show; i++) {
            if (i) printf(", ");
            if (kv->arr_type == RQ_GGUF_STR) print_str(kv->arr_strs[i], 40);
            else if (kv->arr_type == RQ_GGUF_F32 || kv->arr_type == RQ_GGUF_F64) printf("%g", rq_gguf_arr_float(kv, i));
            else printf("%" PRId64, rq_gguf_arr_int(kv, i));
        }
        printf("%s}", show < kv->arr_n ? ", ..." : "");
        break;
    }
    default: printf("%" PRIu64, kv->u); break;
    }
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool full = false, tensors = true, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: rotquant info [--full] [--no-tensors] [-q] [-t N] FILE.gguf|HF_DIR\n"
                   "  prints the file's metadata (arrays and long strings shortened unless --full),\n"
                   "  its tensors (type, shape, bytes) and the bits per weight of its weights\n"
                   "  -q, --quiet   no warning about bad rotquant metadata (the raw metadata is still shown)\n"
                   "  -t N          accepted as by every command (info runs on one thread)\n");
            return 0;
        } else if (!strcmp(argv[i], "--full")) full = true;
        else if (!strcmp(argv[i], "--no-tensors")) tensors = false;
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) quiet = true;
        else if (!strcmp(argv[i], "-t")) {
            int64_t t;
            if (!cli_parse_int(argv[i], i + 1 < argc ? argv[i + 1] : NULL, 0, 1024, &t)) return 1;
            i++;
        }
        else if (argv[i][0] == '-') return cli_fail("info: unknown option '%s'", argv[i]);
        else if (path) return cli_fail("info: more than one file given");
        else path = argv[i];
    }
    if (!path) return cli_fail("info: no file given (rotquant info FILE.gguf)");
    rq_gguf *g;
    if (rq_model_open(path, &g) != RQ_OK) return cli_fail_status();
    char pb[1024];
    printf("file: %s\nGGUF version %u, %" PRId64 " bytes, alignment %u, %" PRId64 " metadata keys, %" PRId64
           " tensors\n",
           esc(path, pb, sizeof pb), rq_gguf_version(g), rq_gguf_file_size(g), rq_gguf_alignment(g), rq_gguf_n_kv(g),
           rq_gguf_n_tensors(g));
    if (rq_hf_is_dir(path)) printf("(a Hugging Face checkpoint, read as the GGUF its conversion gives)\n");
    {
        rq_model_config mc;
        char cd[512];
        if (rq_model_config_read(g, &mc) == RQ_OK) printf("model: %s\n", rq_model_config_describe(&mc, cd, sizeof cd));
        else printf("model: not loadable by rotquant: %s\n", rq_last_error());
    }
    rq_qinfo qi;
    if (rq_qinfo_read(g, &qi) != RQ_OK) {
        /* still show the raw metadata of a file whose rotquant keys are bad */
        if (!quiet) fprintf(stderr, "rotquant: warning: %s\n", rq_last_error());
    } else {
        char sh[64], desc[512];
        if (qi.present) /* its strings are escaped when read (model/qinfo.c) */
            printf("rotquant %s (format %u): %s\n", rq_qinfo_short(&qi, sh, sizeof sh), qi.version,
                   rq_qinfo_describe(&qi, desc, sizeof desc));
        else
            printf("no rotquant metadata: weights as stored, activations and KV cache in float\n");
    }
    printf("\nmetadata:\n");
    for (int64_t i = 0; i < rq_gguf_n_kv(g); i++) {
        const rq_gguf_kv *kv = rq_gguf_kv_at(g, i);
        char kb[1024];
        printf("  %-40s %-4s ", esc(kv->key, kb, sizeof kb), rq_gguf_vtype_name(kv->type));
        print_value(kv, full);
        putchar('\n');
    }
    int64_t total_bytes = 0, total_el = 0;
    if (tensors) printf("\ntensors:\n  %-36s %-8s %-22s %12s\n", "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < rq_gguf_n_tensors(g); i++) {
        const rq_gguf_tensor *t = rq_gguf_tensor_at(g, i);
        /* each size is checked against the file, but tensors may overlap, so the sums
         * of a crafted file can still overflow */
        if (!rq_add_ok(total_bytes, t->n_bytes, &total_bytes) || !rq_add_ok(total_el, t->n_elements, &total_el)) {
            rq_gguf_close(g);
            return cli_fail("%s: the tensors' total size overflows", path);
        }
        if (!tensors) continue;
        char shape[64];
        int n = snprintf(shape, sizeof shape, "[");
        for (int d = t->n_dims - 1; d >= 0; d--)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%" PRId64 "%s", t->ne[d], d ? ", " : "]");
        char nb[1024];
        printf("  %-36s %-8s %-22s %12" PRId64 "\n", esc(t->name, nb, sizeof nb), rq_type_name(t->type), shape,
               t->n_bytes);
    }
    printf("\n%" PRId64 " weights in %" PRId64 " bytes: %.4f bits per weight over all tensors\n", total_el,
           total_bytes, total_el ? 8.0 * (double)total_bytes / (double)total_el : 0.0);
    rq_gguf_close(g);
    return 0;
}
