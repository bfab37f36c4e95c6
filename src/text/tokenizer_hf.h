/* Hugging Face tokenizers (tokenizer.json, tokenizer_config.json) read into the
 * tokenizer.ggml.* keys of a GGUF, the form llama.cpp's converter gives them, so that the
 * one tokenizer of text/tokenizer.h (built from GGUF metadata) serves both inputs:
 *
 *   tokenizer.ggml.model      "gpt2" (model.type "BPE" without byte fallback, the
 *                             ByteLevel pre-tokenizer and no normalizer), or "llama"
 *                             (SentencePiece-style: BPE with byte_fallback, spaces
 *                             replaced by U+2581 by the normalizer, optionally after a
 *                             prepended U+2581, or by a non-splitting Metaspace)
 *   tokenizer.ggml.pre        "smollm" for Sequence[Digits(individual_digits), ByteLevel(use_regex)],
 *                             "gpt-2" for ByteLevel(use_regex) alone, "default" for
 *                             SentencePiece; anything else is RQ_EUNSUPPORTED (the
 *                             message names what was found)
 *   tokenizer.ggml.tokens     model.vocab and added_tokens by id; ids below n_vocab that
 *                             none names become "[PAD<id>]"
 *   tokenizer.ggml.token_type added tokens CONTROL when "special", else USER_DEFINED;
 *                             padding UNUSED; SentencePiece: "<0xNN>" BYTE, model.unk_token
 *                             UNKNOWN (when not an added token); the rest NORMAL
 *   tokenizer.ggml.merges     byte-level BPE: model.merges ("a b" strings or ["a", "b"] pairs)
 *   tokenizer.ggml.scores     SentencePiece: the piece made by merge r scores -r (its first
 *                             merge), pieces no merge makes score below all: llama.cpp's
 *                             tokenizer merges the highest-scoring pair first, which is
 *                             the merge of lowest rank
 *   tokenizer.ggml.add_space_prefix  whether U+2581 is prepended (false for byte-level BPE)
 *   bos/eos/unknown/padding_token_id, add_bos_token, chat_template from
 *                             tokenizer_config.json (bos_token, ... as a string or an
 *                             {"content": ...} object; chat_template a string, a list of
 *                             {"name", "template"} (the "default" one), or the file
 *                             chat_template.jinja beside it); unk_token also from
 *                             model.unk_token
 *
 * Every count and id is checked: a malformed file is RQ_EFORMAT with a
 * message naming the file and the entry. */
#ifndef RQ_TEXT_TOKENIZER_HF_H
#define RQ_TEXT_TOKENIZER_HF_H

#include "base/status.h"
#include "io/gguf.h"

#include <stdint.h>

/* Read dir/tokenizer.json (required) and dir/tokenizer_config.json (optional) and set the
 * keys above in w. n_vocab > 0: the model's vocabulary size (config.json's vocab_size):
 * the token list is padded to it, and an id at or past it is an error; 0: the size the
 * tokenizer gives. */
rq_status rq_tokenizer_hf_to_gguf(const char *dir, int64_t n_vocab, rq_gguf_writer *w);

/* Convenience (tests, tools): the tokenizer of a checkpoint directory, through
 * rq_tokenizer_hf_to_gguf and rq_tokenizer_load. *out owned by the caller
 * (rq_tokenizer_free). */
typedef struct rq_tokenizer rq_tokenizer;
rq_status rq_tokenizer_load_hf(const char *dir, rq_tokenizer **out);

#endif
