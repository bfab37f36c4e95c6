/* Data-parallel training steps over MPI ranks (base/mpi.h), with results that do not depend
 * on the rank count.
 *
 * A batch of n_seq windows is split by window (rq_mpi_share: contiguous shares in window
 * order). Each window's forward, loss and backward run alone (a context of one window), so
 * a window's gradient does not depend on which other windows share its batch or its rank;
 * the float32 gradients of the windows are added into float64 pairs (base/exact_sum.h) that
 * hold their exact sum, the pairs are summed exactly over the ranks (rq_mpi_sum_exact), and
 * the batch gradient is that sum rounded once, divided by n_seq. The batch loss (a mean of
 * per-token losses with the same count of scored tokens in every window) is the mean of the
 * per-window means, gathered and added in window order. One process runs the same code, so
 * a run at any rank count computes bit for bit the same gradients, losses and updates as one
 * process (at the same -t: the thread count moves last bits of the forward), under
 * exact_sum.h's condition (a gradient element's window terms within 2^62 of one another in
 * magnitude; beyond it the pair's low word rounds at 2^-106 relative, which could move the
 * float32 gradient by one unit only when it lies that close to a rounding boundary).
 *
 * Every rank then applies the identical update, so the ranks' parameters stay identical
 * without being sent. Communication per step: 16 bytes per trainable element (the pairs'
 * all-reduce) plus 8 bytes per window of the batch (the losses). */
#ifndef RQ_TRAIN_DP_H
#define RQ_TRAIN_DP_H

#include "model/model.h"
#include "train/backward.h"
#include "train/params.h"

/* The exact gradient accumulator of a set of entries of a parameter list. */
typedef struct rq_dp_sum {
    double *pair;  /* [cap, 2] (hi, lo) per selected element, entries in list order */
    int64_t cap;   /* elements allocated: the trainable elements of the list at init */
    int64_t n;     /* elements selected */
    int64_t *ent;  /* [n_ent] indices of the selected entries */
    int64_t n_ent, max_ent;
} rq_dp_sum;

/* Room for the trainable entries of p (the list the backward fills gradients for), all
 * selected. Errors: ENOMEM. */
rq_status rq_dp_sum_init(rq_dp_sum *s, const rq_params *p);
/* Select the trainable entries of p whose name starts with prefix (NULL: all trainable);
 * RQ_EINVAL if they outgrow the room of init. */
rq_status rq_dp_sum_select(rq_dp_sum *s, const rq_params *p, const char *prefix);
void rq_dp_sum_free(rq_dp_sum *s);
/* pairs ← 0 */
void rq_dp_sum_zero(rq_dp_sum *s);
/* the selected entries of g (a mirror of p) ← 0 */
void rq_dp_sum_clear(const rq_dp_sum *s, rq_params *g);
/* pairs += the selected entries of g (exact) */
void rq_dp_sum_add(rq_dp_sum *s, const rq_params *g);
/* Collective: the pairs summed over the ranks, then the selected entries of g ← the sum
 * rounded once, divided by count. Errors: from MPI. */
rq_status rq_dp_sum_finish(rq_dp_sum *s, rq_params *g, int64_t count);
/* Bytes each rank sends into the all-reduce of one rq_dp_sum_finish. */
int64_t rq_dp_sum_bytes(const rq_dp_sum *s);

/* Collective: v [n] with this rank's share (rq_mpi_share) filled in; *mean ← Σ v / n added
 * in index order (the same on every rank, whatever the rank count). v is overwritten with
 * every rank's values. */
rq_status rq_dp_mean(double *v, int64_t n, double *mean);

/* Collective. The gradient of the batch tokens [n_seq, T] (c: a context of one window of T
 * tokens; T = c->T): each rank runs its share of the windows, one at a time: the teacher's
 * logits when tst is not NULL (a state of the teacher with c->n rows and segments of T), the
 * forward, the loss (rq_train_loss with teacher and gamma), the backward (into g, a mirror
 * of p) added into s; then g's selected entries ← the batch's mean gradient and *loss ← the
 * batch's mean loss, identical on every rank. Errors: a token id out of range, MPI. */
rq_status rq_dp_grads(rq_train_ctx *c, rq_state *tst, const rq_params *p, rq_params *g, rq_dp_sum *s,
                      const int32_t *tokens, int64_t n_seq, double gamma, double *loss);
/* Collective: the mean loss over the windows tokens [n_win, T] (no gradient), split by
 * window over the ranks as rq_dp_grads. */
rq_status rq_dp_loss(rq_train_ctx *c, rq_state *tst, const int32_t *tokens, int64_t n_win, double gamma,
                     double *loss);

#endif
