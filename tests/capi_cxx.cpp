// The public header from C++ (tests/capi_cxx.sh compiles this with -std=c++11 -Wall -Wextra
// -pedantic -Werror and links it to librotquant.so): it must compile cleanly, its functions
// must link with C names, and the struct idiom of C++ (value-initialization) must work.
#include <rotquant.h>

#include <cstdio>
#include <cstring>

static int failures = 0;
#define CHECK(c) ((c) ? (void)0 : (std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c), (void)failures++))

int main(int argc, char **argv) {
    CHECK(rotquant_version() == ROTQUANT_API_VERSION);
    CHECK(std::strlen(rotquant_version_string()) >= 5);
    rotquant_model_params mp{};
    mp.size = sizeof mp;
    rotquant_model *m = nullptr;
    CHECK(rotquant_model_open("/nonexistent/model.gguf", &mp, &m) == ROTQUANT_EIO && m == nullptr);
    CHECK(std::strstr(rotquant_last_error(), "/nonexistent/model.gguf") != nullptr);
    CHECK(std::strcmp(rotquant_status_name(ROTQUANT_EINVAL), "invalid argument") == 0);
    if (argc > 1) { // a model given: open it, tokenize, run one token
        CHECK(rotquant_model_open(argv[1], nullptr, &m) == ROTQUANT_OK);
        rotquant_model_info info{};
        info.size = sizeof info;
        CHECK(m && rotquant_model_get_info(m, &info) == ROTQUANT_OK && info.n_vocab > 0);
        int32_t *ids = nullptr;
        int64_t n = 0;
        CHECK(m && rotquant_tokenize(m, "the", -1, ROTQUANT_BOS_DEFAULT, 0, &ids, &n) == ROTQUANT_OK && n >= 1);
        rotquant_context *c = nullptr;
        CHECK(m && rotquant_context_new(m, nullptr, &c) == ROTQUANT_OK);
        int64_t rows = 0;
        CHECK(c && n >= 1 && rotquant_eval(c, ids, n) == ROTQUANT_OK && rotquant_get_logits(c, &rows) && rows == 1);
        rotquant_free(ids);
        rotquant_context_free(c);
        rotquant_model_close(m);
    }
    std::printf("%s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
