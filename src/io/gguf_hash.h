/* A fingerprint of a GGUF model (base/hash.h over every key, its type and scalar or
 * string value, array lengths, and every tensor's name, type, shape and data): the ranks of
 * an MPI job compare it (rq_mpi_check_same) so that a rank that opened another file, or
 * the same path holding another file on another machine, is an error naming the rank. */
#ifndef RQ_IO_GGUF_HASH_H
#define RQ_IO_GGUF_HASH_H

#include "io/gguf.h"

uint64_t rq_gguf_hash(const rq_gguf *g);

#endif
