/* rotquant detok: token ids back to text with the model's tokenizer (e.g. the calibration
 * sequences written by `quantize --calib-save`, as a calibration text for other tools). */
#include "cli.h"

#include "base/status.h"
#include "io/gguf.h"
#include "model/hf.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <string.h>

static void usage(void) {
    printf("usage: rotquant detok -m MODEL --ids-file FILE [--keep-special] [-q] [-t N]\n"
           "  --ids-file FILE  token ids (decimal, blanks/commas between them); each line is decoded on\n"
           "                   its own and written as one paragraph (followed by an empty line)\n"
           "  --keep-special   keep control tokens such as <|im_start|> in the text\n"
           "  -q, -t N         accepted as by every command (detok prints no progress, runs on one thread)\n"
           "The text goes to stdout.\n");
}

int cmd_detok(int argc, char **argv) {
    const char *model_path = NULL, *ids_path = NULL;
    bool keep_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--ids-file")) {
            if (!v) return cli_fail("%s needs a value", a);
            *(a[1] == 'm' ? &model_path : &ids_path) = v;
            i++;
        } else if (!strcmp(a, "--keep-special")) {
            keep_special = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
        } else if (!strcmp(a, "-t")) {
            int64_t t;
            if (!cli_parse_int(a, v, 0, 1024, &t)) return 1;
            i++;
        } else {
            return cli_fail("detok: unknown argument '%s'", a);
        }
    }
    if (!model_path || !ids_path) return cli_fail("detok: -m MODEL and --ids-file FILE are required");
    char *data;
    int64_t len;
    if (!cli_read_file(ids_path, &data, &len)) return 1;
    int rc = 1;
    rq_gguf *g = NULL;
    rq_tokenizer *tok = NULL;
    if (rq_model_open(model_path, &g) != RQ_OK || rq_tokenizer_load(g, &tok) != RQ_OK) {
        cli_fail_status();
        goto done;
    }
    for (char *line = data; line < data + len;) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line));
        char *end = nl ? nl : data + len;
        *end = 0;
        if (strspn(line, " \t\r,") != strlen(line)) {
            int32_t *ids;
            int64_t n;
            char *text;
            int64_t tlen;
            if (!cli_parse_ids(ids_path, line, &ids, &n)) goto done;
            rq_status s = rq_tokenizer_decode(tok, ids, n, !keep_special, &text, &tlen);
            rq_free(ids);
            if (s != RQ_OK) {
                cli_fail_status();
                goto done;
            }
            fwrite(text, 1, (size_t)tlen, stdout);
            fputs("\n\n", stdout);
            rq_free(text);
        }
        line = end + 1;
    }
    rc = 0;
done:
    rq_tokenizer_free(tok);
    rq_gguf_close(g);
    rq_free(data);
    return rc;
}
