/*
 * Streams a completion from an AX650 model package through the C ABI.
 *
 *   complete <model dir> <prompt> [max tokens]
 *
 * Greedy sampling, so the output is reproducible. The runtime library is
 * $AXLLM_AXCL_LIB when set (the simulator, without a card), else the
 * library's default search. Build against the static
 * library (see README, "C API"):
 *   cc -Wall -Wextra -Werror -I include examples/c/main.c target/release/libaxllm.a \
 *      -ldl -lgcc_s -lutil -lrt -lpthread -lm -lc -o complete
 */
#include "axllm.h"

#include <stdio.h>
#include <stdlib.h>

static void on_progress(void *user_data, uint32_t loaded, uint32_t total) {
    (void)user_data;
    fprintf(stderr, "\rloading %u/%u", loaded, total);
}

static int fail(const char *what, axllm_status status) {
    fprintf(stderr, "%s failed (%d): %s\n", what, (int)status, axllm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s <model dir> <prompt> [max tokens]\n", argv[0]);
        return 2;
    }
    axllm_load_params load;
    axllm_status st = axllm_load_default_params(&load, sizeof load);
    if (st != AXLLM_OK) {
        return fail("axllm_load_default_params", st);
    }
    load.runtime_library = getenv("AXLLM_AXCL_LIB"); /* NULL: the default search */
    load.progress = on_progress;
    axllm_model *model = NULL;
    st = axllm_model_load(argv[1], &load, &model);
    fprintf(stderr, "\n");
    if (st != AXLLM_OK) {
        return fail("axllm_model_load", st);
    }

    axllm_generate_params params;
    st = axllm_generate_default_params(&params, sizeof params);
    if (st != AXLLM_OK) {
        axllm_model_free(model);
        return fail("axllm_generate_default_params", st);
    }
    params.temperature = 0.0f; /* greedy */
    params.num_predict = argc > 3 ? atoi(argv[3]) : 32;

    axllm_generation *gen = NULL;
    st = axllm_generation_begin(model, argv[2], &params, &gen);
    if (st != AXLLM_OK) {
        axllm_model_free(model);
        return fail("axllm_generation_begin", st);
    }

    size_t cap = 4; /* deliberately small: grows on AXLLM_ERR_BUFFER_TOO_SMALL */
    char *buf = (char *)malloc(cap);
    int rc = 0;
    for (;;) {
        size_t len = 0;
        axllm_done_reason done = AXLLM_DONE_NONE;
        st = axllm_generation_next(gen, buf, cap, &len, &done);
        if (st == AXLLM_ERR_BUFFER_TOO_SMALL) {
            cap = len + 1;
            char *bigger = (char *)realloc(buf, cap);
            if (!bigger) {
                rc = 1;
                break;
            }
            buf = bigger;
            continue; /* the piece was kept for us */
        }
        if (st != AXLLM_OK) {
            rc = fail("axllm_generation_next", st);
            break;
        }
        if (done != AXLLM_DONE_NONE) {
            axllm_stats stats;
            if (axllm_generation_stats(gen, &stats) == AXLLM_OK) {
                fprintf(stderr, "\n[done %d: %u prompt tokens, %u generated]\n", (int)done, stats.prompt_tokens,
                        stats.generated_tokens);
            }
            break;
        }
        fwrite(buf, 1, len, stdout);
        fflush(stdout);
    }
    free(buf);
    axllm_generation_end(gen);
    axllm_generation_end(gen); /* ending twice is a no-op */
    axllm_model_free(model);
    axllm_model_free(model); /* freeing twice is a no-op */
    return rc;
}
