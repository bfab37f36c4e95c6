/* Shared helpers of the CLI commands. */
#ifndef RQ_TOOLS_CLI_H
#define RQ_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#define RQ_VERSION "0.1.0"

int cmd_version(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* Print "rotquant: error: <msg>" to stderr and return exit code 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the library's last error as "rotquant: error: ..." and return 1. */
int cli_fail_status(void);
/* Strict number parsing of an option's value; false (with an error printed) if bad. */
bool cli_parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool cli_parse_float(const char *opt, const char *s, double lo, double hi, double *out);

#endif
