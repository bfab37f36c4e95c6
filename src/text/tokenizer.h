/* Tokenizers built from GGUF `tokenizer.ggml.*` metadata, reproducing llama.cpp's
 * tokenization exactly (llama.cpp's llama-vocab.cpp is the reference; see
 * tests/golden/README.md for the recorded oracle):
 *
 *   byte-level BPE  (tokenizer.ggml.model = "gpt2"): pre-tokenizer chosen by
 *                   tokenizer.ggml.pre ("smollm" and its aliases: every digit apart,
 *                   then the GPT-2 split; "gpt-2" and aliases: the GPT-2 split alone),
 *                   GPT-2 byte-to-unicode mapping, merges applied by rank.
 *   SentencePiece   (tokenizer.ggml.model = "llama"): scores, ' ' -> U+2581, optional
 *                   space prefix, <0xNN> byte fallback (Gemma, Llama 2).
 *
 * Special tokens (token types CONTROL, USER_DEFINED, UNKNOWN) are split out of the text
 * before the model-specific step, as llama.cpp does: USER_DEFINED ones always, CONTROL
 * and UNKNOWN ones only when parse_special is true; longer tokens take precedence.
 *
 * Text is bytes: invalid UTF-8 never fails. BPE replaces each byte that does not start a
 * well-formed sequence with U+FFFD before splitting (llama.cpp's decoder, which also
 * accepts overlong forms and surrogates and re-encodes them canonically); SentencePiece
 * cuts symbols by lead byte and emits byte tokens for anything not in the vocabulary.
 *
 * A tokenizer is immutable after loading: every function below may be called from
 * several threads at once on the same tokenizer. */
#ifndef RQ_TEXT_TOKENIZER_H
#define RQ_TEXT_TOKENIZER_H

#include "base/status.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rq_tokenizer rq_tokenizer;
typedef struct rq_gguf rq_gguf; /* io/gguf.h */

/* llama.cpp's token types (tokenizer.ggml.token_type values). */
typedef enum rq_token_type {
    RQ_TOKEN_UNDEFINED = 0,
    RQ_TOKEN_NORMAL = 1,
    RQ_TOKEN_UNKNOWN = 2,
    RQ_TOKEN_CONTROL = 3,
    RQ_TOKEN_USER_DEFINED = 4,
    RQ_TOKEN_UNUSED = 5,
    RQ_TOKEN_BYTE = 6,
} rq_token_type;

typedef enum rq_tokenizer_kind {
    RQ_TOKENIZER_BPE = 1, /* byte-level BPE, "gpt2" */
    RQ_TOKENIZER_SPM = 2, /* SentencePiece, "llama" */
} rq_tokenizer_kind;

/* Load from the tokenizer.ggml.* keys of an open GGUF file. The tokenizer copies what it
 * needs: `g` may be closed afterwards. Malformed metadata (missing tokens, wrong array
 * types, a merge naming a token that is not in the vocabulary, duplicate token strings)
 * gives RQ_EFORMAT; a tokenizer model or pre-tokenizer we do not implement gives
 * RQ_EUNSUPPORTED. On success *out is owned by the caller: rq_tokenizer_free. */
rq_status rq_tokenizer_load(const rq_gguf *g, rq_tokenizer **out);

/* The same tokenizer built from plain arrays, as found in the metadata (for tests and
 * tools that do not read GGUF). Strings are copied; NULL arrays mean "absent". */
typedef struct rq_tokenizer_spec {
    rq_tokenizer_kind kind;
    const char *pre;              /* BPE pre-tokenizer name (tokenizer.ggml.pre); NULL = absent */
    int64_t n_vocab;
    const char *const *tokens;    /* [n_vocab] token strings */
    const int64_t *token_lens;    /* [n_vocab] byte lengths, or NULL: strings are NUL-terminated */
    const float *scores;          /* [n_vocab] or NULL (SPM merge priorities) */
    const int32_t *token_types;   /* [n_vocab] rq_token_type values, or NULL (all NORMAL) */
    int64_t n_merges;
    const char *const *merges;    /* [n_merges] "left right" (BPE) */
    const int64_t *merge_lens;    /* [n_merges] byte lengths, or NULL: NUL-terminated */
    /* Special token ids from the metadata; -1 = key absent (the model-type default of
     * llama.cpp applies: SPM bos 1 / eos 2 / unk 0, BPE bos 11 / eos 11). */
    int32_t bos_id, eos_id, eot_id, eom_id, unk_id;
    int add_bos;                  /* tokenizer.ggml.add_bos_token: 0/1, -1 = absent */
    int add_space_prefix;         /* tokenizer.ggml.add_space_prefix: 0/1, -1 = absent */
} rq_tokenizer_spec;

/* Initialise every id/flag field of a spec to "absent" (-1) and the pointers to NULL. */
void rq_tokenizer_spec_init(rq_tokenizer_spec *spec);
rq_status rq_tokenizer_create(const rq_tokenizer_spec *spec, rq_tokenizer **out);

void rq_tokenizer_free(rq_tokenizer *t);

rq_tokenizer_kind rq_tokenizer_kind_of(const rq_tokenizer *t);
int32_t rq_tokenizer_n_vocab(const rq_tokenizer *t);
int32_t rq_tokenizer_bos(const rq_tokenizer *t); /* -1 if none */
int32_t rq_tokenizer_eos(const rq_tokenizer *t); /* -1 if none */
/* tokenizer.ggml.add_bos_token, else llama.cpp's default for the model type (SPM: true;
 * BPE: false for the pre-tokenizers implemented here). */
bool rq_tokenizer_add_bos_default(const rq_tokenizer *t);
/* End-of-generation tokens, chosen as llama.cpp does: eos, eot, eom, and tokens whose text
 * is one of the known end markers (<|im_end|>, <|endoftext|>, <end_of_turn>, <eos>, ...,
 * and llama.cpp's FIM repo/pad/sep tokens). False for ids out of range. */
bool rq_tokenizer_is_eog(const rq_tokenizer *t, int32_t id);
/* Token type after llama.cpp's fix-ups (e.g. end markers forced to CONTROL);
 * RQ_TOKEN_UNDEFINED for ids out of range. */
rq_token_type rq_tokenizer_token_type(const rq_tokenizer *t, int32_t id);
/* Id of the token whose string is exactly `text` (len bytes), or -1. */
int32_t rq_tokenizer_find(const rq_tokenizer *t, const char *text, int64_t len);

/* Encode `len` bytes of `text` (need not be NUL-terminated; may contain NUL). add_bos
 * prepends the BOS token (RQ_EINVAL if the model has none). parse_special: CONTROL
 * tokens written in the text (e.g. "<|im_start|>") become their ids; otherwise they are
 * tokenized as plain text. On success *ids (rq_free) holds *n_ids tokens. */
rq_status rq_tokenizer_encode(const rq_tokenizer *t, const char *text, int64_t len, bool add_bos,
                              bool parse_special, int32_t **ids, int64_t *n_ids);

/* Bytes that token `id` stands for in decoded text (llama.cpp's token_to_piece with
 * special=true): byte-level BPE mapping undone, SentencePiece U+2581 -> ' ', <0xNN> ->
 * the byte, CONTROL/USER_DEFINED/UNKNOWN -> their text, UNUSED/UNDEFINED -> empty.
 * Not NUL-terminated in general (use *len). Valid while t lives; NULL for a bad id. */
const char *rq_tokenizer_token_bytes(const rq_tokenizer *t, int32_t id, int64_t *len);
/* Raw vocabulary string of `id`, NUL-terminated (a string with an embedded NUL reads
 * short); NULL for a bad id. Valid while t lives. */
const char *rq_tokenizer_token_text(const rq_tokenizer *t, int32_t id);

/* Concatenate the token bytes of ids[0..n). skip_special drops CONTROL and UNKNOWN
 * tokens (as llama.cpp's detokenize with special=false), and a leading BOS when the model
 * adds one. For models with a space prefix (SPM add_space_prefix) one leading space of
 * the first token is removed, as llama.cpp does. llama.cpp's optional clean-up of spaces
 * before punctuation is not applied. So for byte-level BPE decode(encode(x)) == x for
 * valid UTF-8 x, except bytes whose GPT-2 character is not in the vocabulary (SmolLM2
 * lacks 21, e.g. 0x14 and 0xFF): llama.cpp drops those when encoding, and so do we.
 * RQ_EINVAL for an id out of range. *out (rq_free) is NUL-terminated; *out_len excludes
 * the NUL. */
rq_status rq_tokenizer_decode(const rq_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special,
                              char **out, int64_t *out_len);

#endif
