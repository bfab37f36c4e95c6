/* rotquant CLI: parses arguments, calls the library, prints progress. One function per
 * command; commands living in other tools/cmd_*.c files are declared in tools/cli.h. */
#include "cli.h"

#include "base/mpi.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"quantize", cmd_quantize, "rotate and quantize a model (GSR/Hadamard/..., RTN/GPTQ, 2-8 bits)"},
    {"export", cmd_export, "a llama.cpp GGUF: rotations folded, GPTQ onto llama.cpp's block types (Q4_0, IQ4_NL, Q4_K, ...)"},
    {"eval", cmd_eval, "zero-shot tasks (ARC, PIQA, WinoGrande, LAMBADA, BoolQ), lm-eval-harness scoring"},
    {"info", cmd_info, "print what a model file holds: metadata, tensors, bits per weight"},
    {"ppl", cmd_ppl, "perplexity of a text file (llama.cpp's protocol or the papers' full windows)"},
    {"run", cmd_run, "generate text from a prompt"},
    {"train", cmd_train, "fine-tune, or distill into a fake-quantized copy (QAT), with AdamW"},
    {"qat", cmd_qat, "2-bit quantization-aware training (RCP: rotation, LDP, self-distillation) into a packed file"},
    {"rotlearn", cmd_rotlearn, "learn rotations R1/R2 by Cayley SGD on the fake-quantized model (SpinQuant)"},
    {"detok", cmd_detok, "token ids back to text (e.g. calibration sequences)"},
    {"logits", cmd_logits, "(testing) logits and greedy ids of given token ids"},
    {"version", cmd_version, "print the version and the CPU kernel level"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: rotquant <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nMODEL (-m) is a GGUF file or a Hugging Face checkpoint directory (config.json, safetensors,\n"
               "tokenizer.json: LLaMA family).\n'rotquant <command> --help' shows a command's options.\n");
}

static int run(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "rotquant: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

/* Under mpirun every rank runs the same command on its share of the work (base/mpi.h):
 * only rank 0 prints results (the others' stdout goes to /dev/null) and writes files; a
 * rank that fails prints its error with its rank and ends the whole job. */
int main(int argc, char **argv) {
    if (rq_mpi_init(&argc, &argv) != RQ_OK) return cli_fail_status();
    if (rq_mpi_rank() != 0 && !freopen("/dev/null", "w", stdout)) rq_mpi_abort(cli_fail("cannot send stdout to /dev/null"));
    int rc = run(argc, argv);
    if (rc != 0 && rq_mpi_size() > 1) rq_mpi_abort(rc);
    rq_mpi_finalize();
    return rc;
}
