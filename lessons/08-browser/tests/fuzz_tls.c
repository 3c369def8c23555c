/*
 * fuzz_tls.c - libFuzzer on the server's side of tls.c: whatever bytes a
 * client sends, cut into receives wherever the input says, the TLS object
 * must end the stream with a reason or go on, never crash, leak, read past
 * what it was given, or hang. What libFuzzer finds is OpenSSL's parser as
 * much as this module's glue; the glue (the memory BIOs, the output buffer,
 * the error paths) is what the course wrote.
 *
 * Run: make fuzz at the top of the course (it makes lessons/07-tls/certs
 * first); the seeds are in tests/fuzz-tls-corpus (a real ClientHello).
 */
#include "tls.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct tls_context *context;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *certs = getenv("FUZZ_TLS_CERTS") ? getenv("FUZZ_TLS_CERTS") : "lessons/07-tls/certs";
    char cert[512], key[512], err[256];
    snprintf(cert, sizeof cert, "%s/server.crt", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    const struct tls_options options = {.cert_file = cert, .key_file = key};
    context = tls_context_server(&options, err, sizeof err);
    if (context == NULL) {
        fprintf(stderr, "fuzz_tls: %s (run make certs in lessons/07-tls)\n", err);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct tls *tls = tls_accept(context, err, sizeof err);
    if (tls == NULL || size == 0) {
        tls_free(tls);
        return 0;
    }
    /* The first byte says how the rest is cut into receives: 1 to 256 bytes each. */
    size_t piece = (size_t)data[0] + 1;
    char plain[4096];
    for (size_t at = 1; at < size; at += piece) {
        size_t len = size - at < piece ? size - at : piece;
        if (tls_feed(tls, (const char *)data + at, len) != 0)
            break;
        while (tls_read(tls, plain, sizeof plain) > 0)
            tls_write(tls, "+PONG\r\n", 7);
        size_t out;
        tls_output(tls, &out);
        tls_sent(tls, out);
    }
    tls_close(tls);
    tls_free(tls);
    return 0;
}
