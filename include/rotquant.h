/* rotquant — the public C API.
 *
 * One header, no other rotquant header needed: open a model (a GGUF file, a rotquant
 * quantized file or a Hugging Face checkpoint directory), tokenize and detokenize, render a
 * chat, run the model with a KV cache, sample and generate, measure perplexity, quantize,
 * export for llama.cpp.
 * Link with -lrotquant (pkg-config --cflags --libs rotquant). C11 and C++.
 *
 * Conventions
 *   - Names: everything public is rotquant_* / ROTQUANT_*. (rq_* is the library's internal
 *     namespace; nothing here depends on it.)
 *   - Errors: every function that can fail returns a rotquant_status; ROTQUANT_OK is 0. After
 *     a failure, rotquant_last_error() is a message naming the input and what is wrong
 *     ("models/x.gguf: missing tensor 'blk.3.attn_q.weight'"). The message is per thread.
 *     Input from outside (files, token ids, parameter values) never crashes the library: it
 *     gives an error. Passing NULL for a handle or an output pointer gives ROTQUANT_EINVAL
 *     (free/close functions accept NULL and do nothing).
 *   - Ownership: a function that creates a handle has a matching free/close. Buffers the
 *     library allocates for the caller (token ids, text) are released with rotquant_free().
 *     Pointers the library lends (logits, token pieces, info strings) say how long they live.
 *   - Parameter structs start with `size_t size`, which the caller sets to the size of the
 *     struct it was compiled with; every other field left 0 means "the default":
 *         rotquant_context_params cp = {.size = sizeof cp};   // C: all defaults
 *         rotquant_context_params cp{}; cp.size = sizeof cp;  // C++
 *         cp.n_ctx = 2048;
 *     The library reads only the fields it knows: a program built against an older header
 *     runs on a newer library of the same major version (its missing fields read as 0 =
 *     default); fields of a newer header that this library does not know must be 0, or the
 *     call fails with ROTQUANT_EUNSUPPORTED. Output structs (info, results) work the same
 *     way: the library writes only `size` bytes.
 *   - Threads: computation (loading, evaluating, perplexity, quantizing) runs on one
 *     process-wide thread pool (rotquant_set_threads) and is serialized by a process-wide
 *     lock: calls from several threads are safe and run one after another. A model may be
 *     shared by threads; a context and a sampler are used by one thread at a time.
 *     Tokenizer and chat functions take no lock and may run concurrently.
 *   - Sizes and counts are int64_t; token ids are int32_t.
 */
#ifndef ROTQUANT_H
#define ROTQUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ROTQUANT_API __attribute__((visibility("default")))
#else
#define ROTQUANT_API
#endif

/* ---- version ---------------------------------------------------------------------------
 * The major version changes when a program built against an older header might no longer
 * build or run (it is the shared library's SONAME: librotquant.so.MAJOR); the minor version
 * when something is added. */
#define ROTQUANT_API_VERSION_MAJOR 1
#define ROTQUANT_API_VERSION_MINOR 1
#define ROTQUANT_API_VERSION_PATCH 0
#define ROTQUANT_API_VERSION \
    (ROTQUANT_API_VERSION_MAJOR * 10000 + ROTQUANT_API_VERSION_MINOR * 100 + ROTQUANT_API_VERSION_PATCH)

/* The library's ROTQUANT_API_VERSION (compare its major, version / 10000, with the header's). */
ROTQUANT_API int rotquant_version(void);
/* "1.1.0"; static storage. */
ROTQUANT_API const char *rotquant_version_string(void);

/* ---- errors ----------------------------------------------------------------------------- */

typedef enum rotquant_status {
    ROTQUANT_OK = 0,
    ROTQUANT_EIO = 1,          /* a file cannot be opened, read or written */
    ROTQUANT_EFORMAT = 2,      /* an input file or its data is malformed */
    ROTQUANT_EINVAL = 3,       /* a bad argument or parameter value */
    ROTQUANT_ENOMEM = 4,       /* out of memory */
    ROTQUANT_EUNSUPPORTED = 5, /* valid input the library does not handle (an architecture, a
                                * chat format, a parameter of a newer header) */
} rotquant_status;

/* The message of the last error on this thread ("" if none); valid until the thread's next
 * call into the library. */
ROTQUANT_API const char *rotquant_last_error(void);
/* A short name: "ok", "I/O error", "malformed input", "invalid argument", "out of memory",
 * "unsupported"; static storage. */
ROTQUANT_API const char *rotquant_status_name(rotquant_status s);

/* Release a buffer the library allocated for the caller (NULL: nothing). */
ROTQUANT_API void rotquant_free(void *p);

/* ---- threads ---------------------------------------------------------------------------- */

/* Threads of the process-wide pool that every computation uses: n >= 1, or 0 = the cores
 * present (the default). ROTQUANT_EINVAL for n < 0 or n > 1024. */
ROTQUANT_API rotquant_status rotquant_set_threads(int n);
ROTQUANT_API int rotquant_get_threads(void);

/* ---- model ------------------------------------------------------------------------------ */

typedef struct rotquant_model rotquant_model;

typedef struct rotquant_model_params {
    size_t size;    /* sizeof(rotquant_model_params) */
    int abits;      /* activations of the blocks' linears: 0 = as the file says, 16 = float,
                     * 8 or 4 = per-token integer (like `rotquant ppl --abits`) */
    int ref_linear; /* nonzero: dequantize every quantized weight to float32 (the reference
                     * path; slower, more memory) */
} rotquant_model_params;

/* Open a model: a GGUF file (LLaMA or Gemma-3; any of its tensor types is dequantized to
 * float), a rotquant quantized file (packed weights, run-time quantizers and rotations as
 * recorded), or a Hugging Face checkpoint directory (config.json, *.safetensors,
 * tokenizer.json). params may be NULL (defaults). *out is owned by the caller
 * (rotquant_model_close); it keeps no reference to the file. A file without a tokenizer
 * opens (the tokenizer functions then fail with ROTQUANT_EUNSUPPORTED); a malformed
 * tokenizer is an error. */
ROTQUANT_API rotquant_status rotquant_model_open(const char *path, const rotquant_model_params *params,
                                                 rotquant_model **out);
ROTQUANT_API void rotquant_model_close(rotquant_model *m);

typedef struct rotquant_model_info {
    size_t size;           /* sizeof(rotquant_model_info), set by the caller */
    char arch[16];         /* "llama", "gemma3" */
    int64_t n_vocab;
    int64_t n_ctx_train;   /* context the model was trained for (0: the file gives none) */
    int64_t n_embd;        /* residual width */
    int64_t n_layer;
    int64_t n_head, n_head_kv, head_dim;
    int64_t n_ff;          /* MLP hidden width */
    int64_t n_params;      /* weight parameters (a tied embedding counted once) */
    int64_t weight_bytes;  /* bytes the weights take in memory as loaded */
    int quantized;         /* 1: a rotquant quantized file (the fields below describe it) */
    int wbits;             /* linears' weight bits: 2, 3, 4, 8; 16 = float */
    int group;             /* weights per quantization group (0 for float) */
    int abits;             /* activations of the linears in force: 16 = float, 8, 4 */
    int kvbits;            /* KV cache in force: 16 = float, 4 */
    double bits_per_weight; /* of the quantized linears, codes and parameters (0 for float) */
    char method[16];       /* "gptq", "rtn" ("" for float) */
    char scheme[32];       /* "W2A16KV16", "W16A16KV16", ... */
    char description[1024]; /* one line each, '\n'-separated: the architecture, how the weights
                            * are held, and (quantized) how they were made */
} rotquant_model_info;

/* Fill *info (info->size set by the caller). */
ROTQUANT_API rotquant_status rotquant_model_get_info(const rotquant_model *m, rotquant_model_info *info);

/* ---- tokenizer -------------------------------------------------------------------------- */

/* add_bos of rotquant_tokenize: as the model's tokenizer says (tokenizer.ggml.add_bos_token,
 * else llama.cpp's default for its type), never, always. */
enum { ROTQUANT_BOS_DEFAULT = -1, ROTQUANT_BOS_NO = 0, ROTQUANT_BOS_YES = 1 };

/* Encode len bytes of text (len < 0: NUL-terminated) into token ids exactly as llama.cpp does.
 * parse_special nonzero: control tokens written in the text ("<|im_start|>") become their ids
 * (for chat prompts); 0: they are plain text (for documents). *ids (rotquant_free) holds
 * *n_ids ids (0 for an empty text; *ids may then be NULL). */
ROTQUANT_API rotquant_status rotquant_tokenize(const rotquant_model *m, const char *text, int64_t len, int add_bos,
                                               int parse_special, int32_t **ids, int64_t *n_ids);
/* The text of ids[0..n): skip_special nonzero drops control tokens and a leading BOS.
 * *text (rotquant_free) is NUL-terminated, *len (may be NULL) excludes the NUL.
 * ROTQUANT_EINVAL for an id outside [0, n_vocab). */
ROTQUANT_API rotquant_status rotquant_detokenize(const rotquant_model *m, const int32_t *ids, int64_t n,
                                                 int skip_special, char **text, int64_t *len);
/* The bytes token `id` stands for in decoded text (not NUL-terminated: *len bytes; a
 * multi-byte character may be split over tokens). Valid while m is open; NULL for a bad id
 * or a model without a tokenizer. */
ROTQUANT_API const char *rotquant_token_piece(const rotquant_model *m, int32_t id, int64_t *len);
/* BOS / EOS ids, -1 when none (or no tokenizer). */
ROTQUANT_API int32_t rotquant_token_bos(const rotquant_model *m);
ROTQUANT_API int32_t rotquant_token_eos(const rotquant_model *m);
/* 1 when id ends a generation (EOS, end of turn, <|im_end|>, ...), else 0. */
ROTQUANT_API int rotquant_token_is_eog(const rotquant_model *m, int32_t id);

/* ---- chat ------------------------------------------------------------------------------- */

typedef struct rotquant_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated */
} rotquant_chat_message;

/* Render a conversation in the model's chat format (its tokenizer.chat_template, recognised as
 * ChatML or Gemma; Gemma models without a template get Gemma's), then the assistant's
 * generation prompt when add_generation_prompt is nonzero. Tokenize the result with
 * parse_special = 1 and add_bos = ROTQUANT_BOS_DEFAULT. *text (rotquant_free).
 * ROTQUANT_EUNSUPPORTED: no template or one of another format; ROTQUANT_EINVAL: an unknown
 * role, or roles out of the order the format requires. */
ROTQUANT_API rotquant_status rotquant_chat_apply(const rotquant_model *m, const rotquant_chat_message *msgs,
                                                 int64_t n_msgs, int add_generation_prompt, char **text);

/* ---- inference -------------------------------------------------------------------------- */

typedef struct rotquant_context rotquant_context;

typedef struct rotquant_context_params {
    size_t size;        /* sizeof(rotquant_context_params) */
    int64_t n_ctx;      /* KV cache positions; 0: the model's training context, at most 4096 */
    int64_t n_batch;    /* most tokens one forward call takes (longer inputs are split);
                         * 0: min(n_ctx, 512) */
    int all_logits;     /* nonzero: rotquant_eval keeps the logits of every token of its input
                         * (which must then fit one batch); 0: of the last token only */
} rotquant_context_params;

/* A run state with its KV cache, empty. The model must outlive it. params may be NULL. */
ROTQUANT_API rotquant_status rotquant_context_new(const rotquant_model *m, const rotquant_context_params *params,
                                                  rotquant_context **out);
ROTQUANT_API void rotquant_context_free(rotquant_context *c);
/* Positions the cache holds (the tokens evaluated so far), and its capacity. */
ROTQUANT_API int64_t rotquant_context_n_past(const rotquant_context *c);
ROTQUANT_API int64_t rotquant_context_n_ctx(const rotquant_context *c);
/* Forget positions n_past.. (0: all), so that the next rotquant_eval continues after the
 * first n_past tokens; the logits are dropped too. ROTQUANT_EINVAL for n_past outside
 * [0, current n_past]. */
ROTQUANT_API rotquant_status rotquant_context_truncate(rotquant_context *c, int64_t n_past);

/* Run tokens[0..n) at the positions after the cache's (n >= 1), in batches of n_batch; the
 * logits (rotquant_get_logits) are those of the last token, or of all n with all_logits.
 * ROTQUANT_EINVAL: n < 1, the cache would overflow n_ctx, a token id outside [0, n_vocab),
 * all_logits with n > n_batch. On an error the cache holds what it held before. */
ROTQUANT_API rotquant_status rotquant_eval(rotquant_context *c, const int32_t *tokens, int64_t n);
/* One-token decode step: rotquant_eval(c, &token, 1). */
ROTQUANT_API rotquant_status rotquant_decode(rotquant_context *c, int32_t token);
/* Logits of the last rotquant_eval: [*n_rows, n_vocab] row-major, float (n_rows = 1, or its n
 * with all_logits; n_rows may be NULL). Valid until the next call on c; NULL before the first
 * evaluation or after a failed one. */
ROTQUANT_API const float *rotquant_get_logits(const rotquant_context *c, int64_t *n_rows);
/* Vocabulary size (the length of a logits row). */
ROTQUANT_API int64_t rotquant_model_n_vocab(const rotquant_model *m);

/* ---- sampling --------------------------------------------------------------------------- */

typedef struct rotquant_sampler rotquant_sampler;

/* All zero: greedy. Order: the repetition penalty, top-k on the logits, softmax at the
 * temperature, top-p on the sorted probabilities, one seeded draw: the same seed, history and
 * logits give the same tokens on every machine (as `rotquant run`). */
typedef struct rotquant_sampler_params {
    size_t size;          /* sizeof(rotquant_sampler_params) */
    float temperature;    /* 0: greedy (the first largest logit); > 0: sampling */
    int32_t top_k;        /* 0: off; else keep the k largest logits */
    float top_p;          /* 0 or 1: off; else the smallest set of tokens with this much mass */
    uint64_t seed;
    float repeat_penalty; /* 0 or 1: off; else > 0: the logit of each distinct token among the
                           * last repeat_last_n accepted ones (rotquant_sampler_accept) divided
                           * by it when positive, multiplied when negative (llama.cpp's
                           * --repeat-penalty) */
    int32_t repeat_last_n; /* the history it looks at: 0 = 64, at most 1048576 */
} rotquant_sampler_params;

/* params may be NULL (greedy). ROTQUANT_EINVAL for a negative or non-finite temperature, a
 * negative top_k, top_p outside [0, 1], a negative or non-finite repeat_penalty, repeat_last_n
 * outside [0, 1048576]. */
ROTQUANT_API rotquant_status rotquant_sampler_new(const rotquant_model *m, const rotquant_sampler_params *params,
                                                  rotquant_sampler **out);
ROTQUANT_API void rotquant_sampler_free(rotquant_sampler *s);
/* Add a token to the history the repetition penalty reads: rotquant_generate adds the prompt
 * and every sampled token; a program running its own loop with rotquant_sample adds them
 * here. ROTQUANT_EINVAL for an id outside [0, n_vocab). */
ROTQUANT_API rotquant_status rotquant_sampler_accept(rotquant_sampler *s, int32_t token);
/* Draw a token from the last row of the context's logits (not added to the history).
 * ROTQUANT_EINVAL when the context has no logits or belongs to a model of another vocabulary
 * size. */
ROTQUANT_API rotquant_status rotquant_sample(rotquant_sampler *s, const rotquant_context *c, int32_t *token);
/* Draw a token from logits[n_vocab] (not modified; n_vocab of the sampler's model); -1 when s
 * or logits is NULL. */
ROTQUANT_API int32_t rotquant_sample_logits(rotquant_sampler *s, const float *logits);

/* Called with each generated token and the bytes it stands for (piece: *piece_len bytes, not
 * NUL-terminated; NULL without a tokenizer). Return nonzero to go on, 0 to stop (the token is
 * then not fed to the model). */
typedef int (*rotquant_token_callback)(void *user, int32_t token, const char *piece, int64_t piece_len);

/* flags of rotquant_generate */
enum { ROTQUANT_GENERATE_IGNORE_EOG = 1 }; /* do not stop at end-of-generation tokens */

/* Generate up to n_predict tokens after prompt[0..n_prompt), continuing the context (the
 * prompt is evaluated after what the cache holds: call rotquant_context_truncate(c, 0) to
 * start afresh): sample, pass to on_token (may be NULL), decode it, repeat. The prompt and
 * every sampled token are added to the sampler's history (rotquant_sampler_accept). Stops after
 * n_predict tokens, when on_token returns 0, at an end-of-generation token (not passed to
 * on_token; unless flags has ROTQUANT_GENERATE_IGNORE_EOG), or when the context is full.
 * Afterwards the cache holds the prompt and every passed token but the last. *n_generated
 * (may be NULL): tokens passed to on_token. n_prompt may be 0 to continue from the logits of
 * the last evaluation. From an empty context this samples exactly the tokens of `rotquant
 * run`'s generation loop with the same sampler settings. on_token must not use c or s (other
 * contexts, samplers and the model's functions are fine). */
ROTQUANT_API rotquant_status rotquant_generate(rotquant_context *c, rotquant_sampler *s, const int32_t *prompt,
                                               int64_t n_prompt, int64_t n_predict, unsigned flags,
                                               rotquant_token_callback on_token, void *user, int64_t *n_generated);

/* ---- perplexity ------------------------------------------------------------------------- */

enum {
    ROTQUANT_PPL_LLAMACPP = 0, /* llama-perplexity's protocol: windows of ctx tokens, BOS first
                                * when the model adds one, the second half of each scored */
    ROTQUANT_PPL_FULL = 1,     /* the GPTQ/QuaRot papers': non-overlapping windows, every token
                                * after the first scored */
};

typedef struct rotquant_ppl_params {
    size_t size;        /* sizeof(rotquant_ppl_params) */
    int protocol;       /* ROTQUANT_PPL_LLAMACPP (0) or ROTQUANT_PPL_FULL */
    int64_t ctx;        /* window in tokens; 0: 512 (llamacpp) or 2048 (full) */
    int64_t max_chunks; /* 0: every window */
    int progress;       /* nonzero: progress lines on stderr */
} rotquant_ppl_params;

typedef struct rotquant_ppl_result {
    size_t size;         /* sizeof(rotquant_ppl_result), set by the caller */
    double ppl;          /* exp(mean NLL) */
    double ppl_stderr;   /* llama.cpp's estimate of its standard error */
    double nll;          /* mean negative log-likelihood, nats */
    int64_t n_chunks;    /* windows evaluated */
    int64_t n_scored;    /* tokens scored */
    int64_t n_tokens;    /* tokens of the input */
    double seconds;
} rotquant_ppl_result;

/* Perplexity of a text (len < 0: NUL-terminated), tokenized as `rotquant ppl -f` does
 * (llamacpp: one trailing newline dropped; BOS first when the model adds one; special tokens
 * as plain text): the same figure as `rotquant ppl`. params may be NULL. ROTQUANT_EINVAL
 * when the text has fewer tokens than the protocol needs (the message says how many). */
ROTQUANT_API rotquant_status rotquant_perplexity(const rotquant_model *m, const char *text, int64_t len,
                                                 const rotquant_ppl_params *params, rotquant_ppl_result *result);
/* The same on token ids (like `rotquant ppl --tokens-file`). */
ROTQUANT_API rotquant_status rotquant_perplexity_tokens(const rotquant_model *m, const int32_t *ids, int64_t n,
                                                        const rotquant_ppl_params *params,
                                                        rotquant_ppl_result *result);

/* ---- quantize --------------------------------------------------------------------------- */

/* Rotations: 0 = the default of the slot. */
typedef enum rotquant_rotation {
    ROTQUANT_ROT_DEFAULT = 0,
    ROTQUANT_ROT_NONE = 1,
    ROTQUANT_ROT_HADAMARD = 2,   /* random-sign Hadamard (QuaRot) */
    ROTQUANT_ROT_WALSH = 3,      /* sequency-ordered Hadamard */
    ROTQUANT_ROT_GH = 4,         /* block-diagonal Hadamard blocks */
    ROTQUANT_ROT_GSR = 5,        /* block-diagonal Walsh blocks (GSR) */
    ROTQUANT_ROT_ORTHOGONAL = 6, /* seeded random orthogonal */
} rotquant_rotation;

typedef enum rotquant_method {
    ROTQUANT_METHOD_DEFAULT = 0, /* GPTQ */
    ROTQUANT_METHOD_RTN = 1,
    ROTQUANT_METHOD_GPTQ = 2,
} rotquant_method;

typedef enum rotquant_quantizer {
    ROTQUANT_QUANTIZER_DEFAULT = 0, /* uniform */
    ROTQUANT_QUANTIZER_UNIFORM = 1, /* asymmetric uniform, scale and zero per group */
    ROTQUANT_QUANTIZER_LUT = 2,     /* 4 levels per group (Lloyd-Max), wbits 2 */
} rotquant_quantizer;

/* The main options of `rotquant quantize`; 0 = its default (said beside each field). */
typedef struct rotquant_quantize_params {
    size_t size;                /* sizeof(rotquant_quantize_params) */
    int wbits;                  /* 2 (default), 3, 4, 8; 16 = keep float linears */
    int64_t group;              /* weights per group along the input (default 64) */
    rotquant_method method;     /* default GPTQ */
    rotquant_quantizer quantizer;
    rotquant_rotation rotation; /* R1, the residual rotation, folded (default GSR) */
    int64_t rotation_block;     /* block of GH/GSR R1 (default: the group) */
    rotquant_rotation rotation2; /* R2, per attention head on v/o, folded (default: Hadamard
                                  * when R1 is not none, else none) */
    int abits;                  /* per-token activation quantizer: 4, 8, or 16 = off (default) */
    int kvbits;                 /* KV cache: 4, or 16 = float (default) */
    const char *calib;          /* GPTQ calibration: NULL = "generate" (the model samples its
                                 * own text, needs its tokenizer) or a text file's path */
    const char *calib_ids;      /* or token ids from this file (rotquant quantize --calib-save);
                                 * then calib_n/calib_len must be 0 */
    int64_t calib_n;            /* calibration sequences (default 16) */
    int64_t calib_len;          /* tokens per sequence (default 512, at most the context) */
    uint64_t seed;              /* rotation signs and generated calibration text (default 0) */
    const char *embd_type;      /* token embedding / lm_head storage: NULL = "q8_0", "f16", "f32" */
    int progress;               /* nonzero: progress lines on stderr */
} rotquant_quantize_params;

typedef struct rotquant_quantize_result {
    size_t size;             /* sizeof(rotquant_quantize_result), set by the caller */
    double bits_per_weight;  /* of the quantized linears */
    int64_t calib_n, calib_len; /* the calibration used (0 without) */
    double seconds;
    char scheme[32];         /* "W2A16KV16" */
    char description[512];   /* one line: how the file was quantized */
} rotquant_quantize_result;

/* Quantize the float model at `in` (GGUF or Hugging Face directory) into a rotquant file at
 * `out` (written atomically: a failed run leaves no partial file): fold the rotations, calibrate,
 * RTN or GPTQ every linear, write. What `rotquant quantize` does with the same options.
 * params may be NULL (defaults); result may be NULL. Errors name the option as the CLI spells
 * it ("--wbits: 5 is not one of 2, 3, 4, 8, 16"). */
ROTQUANT_API rotquant_status rotquant_quantize(const char *in, const char *out, const rotquant_quantize_params *params,
                                               rotquant_quantize_result *result);

/* ---- export for llama.cpp ---------------------------------------------------------------- */

/* The main options of `rotquant export`; 0 / NULL = its default (said beside each field). */
typedef struct rotquant_export_params {
    size_t size;                /* sizeof(rotquant_export_params) */
    const char *type;           /* the linears' llama.cpp type, by its name as the CLI spells it:
                                 * NULL = "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "iq4_nl", or the
                                 * K types "q2_k", "q3_k", "q4_k", "q5_k", "q6_k" where a row is a
                                 * multiple of 256 (elsewhere llama.cpp's fallback per tensor) */
    const char *embd_type;      /* token embedding and lm_head: NULL = "q8_0", any type above,
                                 * "f16", "f32" */
    rotquant_method method;     /* default GPTQ */
    rotquant_rotation rotation; /* R1, folded (default GSR; a model with post-norms such as
                                 * Gemma-3 takes only ROTQUANT_ROT_NONE) */
    int64_t rotation_block;     /* block of GH/GSR R1 (default 32, llama.cpp's block) */
    rotquant_rotation rotation2; /* R2, per attention head on v/o, folded (default none) */
    const char *calib;          /* GPTQ calibration, as rotquant_quantize_params */
    const char *calib_ids;
    int64_t calib_n;            /* default 16 */
    int64_t calib_len;          /* default 512, at most the context */
    uint64_t seed;              /* rotation signs and generated calibration text (default 0) */
    int progress;               /* nonzero: progress lines on stderr */
} rotquant_export_params;

typedef struct rotquant_export_result {
    size_t size;             /* sizeof(rotquant_export_result), set by the caller */
    double bits_per_weight;  /* of the linears, as stored */
    int64_t n_linears;       /* linears written */
    int64_t n_fallback;      /* of them, in llama.cpp's fallback type */
    int64_t file_bytes;
    int64_t calib_n, calib_len; /* the calibration used (0 without) */
    double seconds;
    char types[160];         /* "210 Q4_0; embedding Q8_0, lm_head Q8_0" */
} rotquant_export_result;

/* Export the model at `in` (GGUF, float or llama.cpp-quantized, or Hugging Face directory;
 * not a rotquant file) as a standard GGUF at `out` that llama.cpp loads unchanged (written
 * atomically): R1/R2 folded into the weights, every linear solved by GPTQ (or RTN) directly
 * onto the llama.cpp type. What `rotquant export` does with the same options; the file opens
 * with rotquant_model_open too. params may be NULL (defaults); result may be NULL. Errors
 * name the option as the CLI spells it ("--type: 'q9_k' is not one of ..."); a row length
 * no type fits and an input that needs an online rotation are ROTQUANT_EINVAL and
 * ROTQUANT_EUNSUPPORTED. */
ROTQUANT_API rotquant_status rotquant_export(const char *in, const char *out, const rotquant_export_params *params,
                                             rotquant_export_result *result);

#ifdef __cplusplus
}
#endif

#endif
