/* The bit widths of the run-time quantizers: one encoding per setting, one check each.
 *   abits  (the per-token quantizer of every block linear's input): 4, 8, or 16 = off (float);
 *   kvbits (the KV cache): 4, or 16 = off (float).
 * 16 = off is the encoding of the settings: what the CLI takes (--abits, --kvbits), what a
 * rotquant file stores (rotquant.abits, rotquant.kvbits), what rq_qinfo, the option structs
 * (rq_quant_opts, rq_rcp_opts) and rq_model_set_act_bits hold. The run-time structs the
 * forward pass reads hold the quantizer's width instead, 0 when there is none, so that a
 * zero-initialized configuration is "off": rq_actq.bits, rq_online_cfg.kv_bits,
 * rq_linear.act_bits. rq_bits_to_runtime / rq_bits_from_runtime convert between the two;
 * nothing else does. */
#ifndef RQ_FORMAT_ABITS_H
#define RQ_FORMAT_ABITS_H

#include "base/status.h"

#include <stdint.h>

#define RQ_BITS_OFF 16

/* abits is 4, 8 or 16; otherwise RQ_EINVAL "WHAT: N is not one of 4, 8, 16" (what names
 * the input: "--abits", "rotquant.abits", "activation bits"). */
rq_status rq_abits_check(int64_t abits, const char *what);
/* kvbits is 4 or 16; otherwise RQ_EINVAL "WHAT: N is not 4 or 16". */
rq_status rq_kvbits_check(int64_t kvbits, const char *what);

/* a setting (16 = off) as the run-time structs hold it (0 = off), and back */
static inline int rq_bits_to_runtime(int64_t bits) { return bits == RQ_BITS_OFF ? 0 : (int)bits; }
static inline int rq_bits_from_runtime(int bits) { return bits == 0 ? RQ_BITS_OFF : bits; }

#endif
