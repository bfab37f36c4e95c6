/* The checks of the run-time quantizers' bit widths (format/abits.h). */
#include "format/abits.h"

rq_status rq_abits_check(int64_t abits, const char *what) {
    if (abits == 4 || abits == 8 || abits == RQ_BITS_OFF) return RQ_OK;
    return rq_errorf(RQ_EINVAL, "%s: %lld is not one of 4, 8, 16", what, (long long)abits);
}

rq_status rq_kvbits_check(int64_t kvbits, const char *what) {
    if (kvbits == 4 || kvbits == RQ_BITS_OFF) return RQ_OK;
    return rq_errorf(RQ_EINVAL, "%s: %lld is not 4 or 16", what, (long long)kvbits);
}
