/* Training checkpoints: the parameter list, AdamW's moments and step, and the RNG state, in
 * one GGUF v3 file written atomically (rq_gguf_writer_write: a temporary renamed onto the
 * path), so that a run stopped and resumed continues exactly as if it had not stopped.
 *
 * Layout: metadata
 *   rotquant.train.version  u32   RQ_CHECKPOINT_VERSION (readers refuse others)
 *   rotquant.train.model    str   the model's configuration line (rq_model_config_describe)
 *   rotquant.train.step     u64   optimizer updates taken (rq_adamw.t)
 *   rotquant.train.rng      u64[4] the run's RNG state
 * and float32 tensors: each entry of the list under its name, with its shape, and AdamW's
 * moments as "adam_m.<name>" and "adam_v.<name>". */
#ifndef RQ_TRAIN_CHECKPOINT_H
#define RQ_TRAIN_CHECKPOINT_H

#include "base/rng.h"
#include "base/status.h"
#include "io/gguf.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/params.h"

#define RQ_CHECKPOINT_VERSION 1

rq_status rq_checkpoint_save(const char *path, const rq_model *m, const rq_params *p, const rq_adamw *o,
                             const rq_rng *rng);
/* Read a checkpoint into the parameters, the optimizer (moments, t) and the RNG. Everything
 * is validated before anything is written (so on an error nothing is changed): the version,
 * the model's configuration line, every entry present as float32 with its shape. Errors
 * (RQ_EFORMAT, naming the file): not a checkpoint, another model, a missing or misshapen
 * tensor, a truncated file (from the GGUF reader). */
rq_status rq_checkpoint_load(const char *path, const rq_model *m, rq_params *p, rq_adamw *o, rq_rng *rng);

/* Write the trained model as a GGUF file (atomic): every key of the source file, and every
 * tensor of it, the entries of p (the model's list) as float32 from their data, the others
 * copied as stored. The result loads as a float model. */
rq_status rq_train_export(const rq_gguf *src, const rq_params *p, const char *path);

#endif
