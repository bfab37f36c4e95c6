/* Training checkpoints (train/checkpoint.h). */
#include "train/checkpoint.h"

#include "format/format.h"
#include "io/gguf.h"

#include <stdio.h>
#include <string.h>

static rq_status add_f32(rq_gguf_writer *w, const char *prefix, const rq_param *e, const float *data) {
    char name[96];
    snprintf(name, sizeof name, "%s%s", prefix, e->name);
    int64_t ne[2] = {e->ne[0], e->ne[1]};
    return rq_gguf_writer_add_tensor(w, name, RQ_TYPE_F32, e->ne[1] == 1 ? 1 : 2, ne, data, e->n * 4);
}

rq_status rq_checkpoint_save(const char *path, const rq_model *m, const rq_params *p, const rq_adamw *o,
                             const rq_rng *rng) {
    char desc[512];
    rq_model_config_describe(&m->cfg, desc, sizeof desc);
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    rq_gguf_writer_set_u32(w, "rotquant.train.version", RQ_CHECKPOINT_VERSION);
    rq_gguf_writer_set_str(w, "rotquant.train.model", desc);
    rq_gguf_writer_set_u64(w, "rotquant.train.step", (uint64_t)o->t);
    rq_gguf_writer_set_arr(w, "rotquant.train.rng", RQ_GGUF_U64, rng->s, 4);
    rq_status s = RQ_OK;
    for (int64_t i = 0; i < p->count && s == RQ_OK; i++) {
        s = add_f32(w, "", &p->p[i], p->p[i].data);
        if (s == RQ_OK) s = add_f32(w, "adam_m.", &p->p[i], o->m.p[i].data);
        if (s == RQ_OK) s = add_f32(w, "adam_v.", &p->p[i], o->v.p[i].data);
    }
    if (s == RQ_OK) s = rq_gguf_writer_write(w, path);
    rq_gguf_writer_free(w);
    return s;
}

/* the tensor prefix+name as float32 with e's shape, or an error naming it */
static rq_status find_f32(const rq_gguf *g, const char *path, const char *prefix, const rq_param *e,
                          const float **out) {
    char name[96];
    snprintf(name, sizeof name, "%s%s", prefix, e->name);
    const rq_gguf_tensor *t = rq_gguf_find_tensor(g, name);
    if (!t) return rq_errorf(RQ_EFORMAT, "%s: checkpoint has no tensor '%s' (from another model?)", path, name);
    if (t->type != RQ_TYPE_F32 || t->ne[0] != e->ne[0] || t->n_elements != e->n)
        return rq_errorf(RQ_EFORMAT, "%s: tensor '%s' is not float32 [%lld, %lld] (from another model?)", path, name,
                         (long long)e->ne[0], (long long)e->ne[1]);
    *out = t->data;
    return RQ_OK;
}

rq_status rq_checkpoint_load(const char *path, const rq_model *m, rq_params *p, rq_adamw *o, rq_rng *rng) {
    rq_gguf *g;
    RQ_TRY(rq_gguf_open(path, &g));
    rq_status s = RQ_OK;
    uint32_t ver = 0;
    uint64_t step = 0;
    rq_gguf_str model;
    const rq_gguf_kv *rk = NULL;
    char desc[512];
    rq_model_config_describe(&m->cfg, desc, sizeof desc);
    if (rq_gguf_get_u32(g, "rotquant.train.version", &ver) != RQ_OK)
        s = rq_errorf(RQ_EFORMAT, "%s: not a rotquant training checkpoint (no rotquant.train.version)", path);
    else if (ver != RQ_CHECKPOINT_VERSION)
        s = rq_errorf(RQ_EFORMAT, "%s: checkpoint version %u, this build reads %d", path, ver, RQ_CHECKPOINT_VERSION);
    else if (rq_gguf_get_str(g, "rotquant.train.model", &model) != RQ_OK || model.len != strlen(desc) ||
             memcmp(model.ptr, desc, model.len) != 0)
        s = rq_errorf(RQ_EFORMAT, "%s: checkpoint is from another model (it records '%.*s'; this model is '%s')", path,
                      (int)(model.len < 300 ? model.len : 300), model.ptr ? model.ptr : "", desc);
    else {
        int64_t st = 0;
        if (rq_gguf_get_i64(g, "rotquant.train.step", &st) != RQ_OK || st < 0)
            s = rq_errorf(RQ_EFORMAT, "%s: missing or bad rotquant.train.step", path);
        step = (uint64_t)st;
        if (s == RQ_OK && (rq_gguf_get_arr(g, "rotquant.train.rng", RQ_GGUF_U64, &rk) != RQ_OK || rk->arr_n != 4))
            s = rq_errorf(RQ_EFORMAT, "%s: missing or bad rotquant.train.rng", path);
    }
    /* validate every tensor before writing anything */
    const float **src = s == RQ_OK ? rq_alloc(3 * p->count * (int64_t)sizeof(float *)) : NULL;
    if (s == RQ_OK && !src) s = RQ_ENOMEM;
    for (int64_t i = 0; i < p->count && s == RQ_OK; i++) {
        s = find_f32(g, path, "", &p->p[i], &src[3 * i]);
        if (s == RQ_OK) s = find_f32(g, path, "adam_m.", &p->p[i], &src[3 * i + 1]);
        if (s == RQ_OK) s = find_f32(g, path, "adam_v.", &p->p[i], &src[3 * i + 2]);
    }
    if (s == RQ_OK) {
        for (int64_t i = 0; i < p->count; i++) {
            size_t nb = (size_t)p->p[i].n * sizeof(float);
            memcpy(p->p[i].data, src[3 * i], nb);
            memcpy(o->m.p[i].data, src[3 * i + 1], nb);
            memcpy(o->v.p[i].data, src[3 * i + 2], nb);
        }
        o->t = (int64_t)step;
        for (int k = 0; k < 4; k++) rng->s[k] = (uint64_t)rq_gguf_arr_int(rk, (uint64_t)k);
    }
    rq_free(src);
    rq_gguf_close(g);
    return s;
}

rq_status rq_train_export(const rq_gguf *src, const rq_params *p, const char *path) {
    rq_gguf_writer *w = rq_gguf_writer_new(0);
    for (int64_t i = 0; i < rq_gguf_n_kv(src); i++) rq_gguf_writer_copy_kv(w, rq_gguf_kv_at(src, i));
    rq_gguf_writer_set_u32(w, "general.file_type", 0); /* ALL_F32 (the trained entries are) */
    rq_status s = RQ_OK;
    for (int64_t i = 0; i < rq_gguf_n_tensors(src) && s == RQ_OK; i++) {
        const rq_gguf_tensor *t = rq_gguf_tensor_at(src, i);
        int64_t k = rq_params_find_name(p, t->name);
        if (k >= 0 && p->p[k].n == t->n_elements)
            s = add_f32(w, "", &p->p[k], p->p[k].data);
        else
            s = rq_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->n_bytes);
    }
    if (s == RQ_OK) s = rq_gguf_writer_write(w, path);
    rq_gguf_writer_free(w);
    return s;
}
