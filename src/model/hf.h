/* Hugging Face checkpoints in: a directory with config.json, model.safetensors (or the
 * shards of model.safetensors.index.json), tokenizer.json and tokenizer_config.json,
 * turned into the GGUF that llama.cpp's converter would write for it, held in memory
 * (io/gguf.h, rq_gguf_writer_open_image). Every reader of a model (rq_model_load, the
 * tokenizer, the chat template, the quantize pipeline copying metadata) then works on a
 * checkpoint unchanged.
 *
 * Architectures:
 *   LLaMA (config.json model_type "llama"): hidden_size, intermediate_size,
 *   num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, rms_norm_eps,
 *   rope_theta, rope_scaling (none or linear), vocab_size, tie_word_embeddings (default
 *   false), max_position_embeddings -> llama.* keys; tensors
 *     model.embed_tokens.weight                 -> token_embd.weight
 *     model.norm.weight                         -> output_norm.weight
 *     lm_head.weight (untied only)              -> output.weight
 *     model.layers.N.input_layernorm.weight     -> blk.N.attn_norm.weight
 *     model.layers.N.self_attn.{q,k,v,o}_proj.weight -> blk.N.attn_{q,k,v,output}.weight
 *     model.layers.N.post_attention_layernorm.weight -> blk.N.ffn_norm.weight
 *     model.layers.N.mlp.{gate,up,down}_proj.weight  -> blk.N.ffn_{gate,up,down}.weight
 *   in their stored dtype (F32, F16 or BF16; others are refused). q_proj and k_proj rows
 *   are permuted as llama.cpp's converter does: HF applies RoPE to the halves (i, i + d/2)
 *   of each head, the GGUF layout to adjacent pairs (2i, 2i + 1), so GGUF row h·d + 2i + j
 *   is HF row h·d + j·d/2 + i (j = 0, 1; d = head_dim; per query head for q, per KV head
 *   for k), and the forward pass computes the same logits either way.
 *   Gemma-3 text models (model_type "gemma3_text"): the keys above (tie_word_embeddings
 *   default true) plus sliding_window, sliding_window_pattern or layer_types (one full-
 *   attention layer every P), rope_local_base_freq, query_pre_attn_scalar (must be what
 *   model.c computes), no soft-capping -> gemma3.* keys; tensors as LLaMA's but
 *   post_attention_layernorm -> post_attention_norm, pre_feedforward_layernorm ->
 *   ffn_norm, post_feedforward_layernorm -> post_ffw_norm, self_attn.{q,k}_norm ->
 *   attn_{q,k}_norm; q/k not permuted (Gemma's RoPE is the NEOX pairing in both); every
 *   norm scale w stored as float32 1 + w (llama.cpp's converter adds the 1, and model.c
 *   multiplies by the stored vector).
 * Every tensor's shape is checked against config.json ("config.json says [576, 576]"); a
 * missing tensor, an unused one (but rotary_emb.inv_freq), biases, and any other
 * architecture are clear errors. */
#ifndef RQ_MODEL_HF_H
#define RQ_MODEL_HF_H

#include "base/status.h"
#include "io/gguf.h"

#include <stdbool.h>

/* Convert the checkpoint in directory `dir`; *out (rq_gguf_close) is named `dir` in
 * messages. The tokenizer keys are set when dir/tokenizer.json exists. */
rq_status rq_hf_open(const char *dir, rq_gguf **out);

/* True when path is a directory (a checkpoint), false for anything else. */
bool rq_hf_is_dir(const char *path);

/* The model input of every command: a directory is read as a Hugging Face checkpoint
 * (rq_hf_open), anything else as a GGUF file (rq_gguf_open). */
rq_status rq_model_open(const char *path, rq_gguf **out);

#endif
