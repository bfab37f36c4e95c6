/* Chat prompts: a conversation rendered in the model's chat format.
 *
 * We do not run Jinja. The model's tokenizer.chat_template is recognised as one of the
 * formats below and rendered by hand, reproducing what the template would produce:
 *
 *   ChatML (SmolLM2, Qwen, ...):  <|im_start|>ROLE\nCONTENT<|im_end|>\n per message; when
 *       the conversation has no system message and the template inserts a default one
 *       (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
 *       that block comes first. Generation prompt: <|im_start|>assistant\n
 *   Gemma (Gemma 2/3):  <start_of_turn>user\nCONTENT<end_of_turn>\n, the assistant's role
 *       is "model", content is trimmed, a system message is put before the first user
 *       message followed by a blank line, roles must alternate user/model.
 *       Generation prompt: <start_of_turn>model\n
 *       The template's leading {{ bos_token }} is left out: pass add_bos to
 *       rq_tokenizer_encode instead, so that BOS is not doubled.
 *
 * Any other template gives RQ_EUNSUPPORTED. Tokenize the result with parse_special =
 * true so that the markers become their control tokens. */
#ifndef RQ_TEXT_CHAT_H
#define RQ_TEXT_CHAT_H

#include "base/status.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct rq_gguf rq_gguf; /* io/gguf.h */

typedef enum rq_chat_style {
    RQ_CHAT_CHATML = 1,
    RQ_CHAT_GEMMA = 2,
} rq_chat_style;

typedef struct rq_chat_template {
    rq_chat_style style;
    char *default_system; /* ChatML: system prompt inserted when none is given, or NULL; owned */
} rq_chat_template;

typedef struct rq_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated */
} rq_chat_message;

/* Recognise a template text (len bytes). On success *out holds owned memory: release
 * with rq_chat_template_clear. */
rq_status rq_chat_template_parse(const char *text, int64_t len, rq_chat_template *out);
/* From a model: tokenizer.chat_template if present; otherwise Gemma for
 * general.architecture gemma/gemma2/gemma3 (whose base models ship without a template);
 * otherwise RQ_EUNSUPPORTED. */
rq_status rq_chat_template_from_gguf(const rq_gguf *g, rq_chat_template *out);
void rq_chat_template_clear(rq_chat_template *t);

/* Render n messages, then the generation prompt if add_generation_prompt. *out (rq_free)
 * is NUL-terminated. RQ_EINVAL for an unknown role or (Gemma) roles out of order. */
rq_status rq_chat_render(const rq_chat_template *t, const rq_chat_message *msgs, int64_t n, bool add_generation_prompt,
                         char **out);

/* One turn: an optional system prompt (NULL: the template's default, if any) and a user
 * message, rendered with the model's template and the generation prompt appended.
 * *out (rq_free). */
rq_status rq_chat_format(const rq_gguf *g, const char *system, const char *user, char **out);

#endif
