/*
 * tls.c - see tls.h. An SSL object between two memory BIOs: `in` holds
 * what the peer sent and SSL has not read yet, `out` what SSL wrote for
 * the peer; after each call into SSL, `out` is emptied into the output
 * buffer, where the driver finds it. SSL never sees a socket.
 *
 * OpenSSL keeps its errors in a queue per thread: each call here clears it
 * first and reads it after, so that an error is the one this connection
 * caused, worded for the log.
 */
#include "tls.h"

#include "outbuf.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_context {
    SSL_CTX *ctx;
};

struct tls {
    SSL *ssl;
    BIO *in;              /* the ciphertext received, which SSL reads (its read BIO) */
    BIO *out;             /* the ciphertext SSL writes (its write BIO), moved to output after each call */
    struct outbuf output; /* ciphertext for the driver to send */
    bool broken;          /* a fatal error: nothing more is read or written */
    bool peer_closed;     /* the peer sent close_notify */
    char why[192];
};

/* --- errors ------------------------------------------------------------------------------------- */

/* The reason of OpenSSL's first queued error ("certificate verify failed"), and the queue emptied. */
static void take_error(char *why, size_t len, const char *doing)
{
    unsigned long code = ERR_get_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    snprintf(why, len, "%s: %s", doing, reason != NULL ? reason : "failed");
    ERR_clear_error();
}

/* Marks the stream broken, with why; a certificate refused says what was wrong with it. */
static void fail(struct tls *tls, const char *doing)
{
    tls->broken = true;
    take_error(tls->why, sizeof tls->why, doing);
    long verified = SSL_get_verify_result(tls->ssl);
    if (verified != X509_V_OK) {
        size_t used = strlen(tls->why);
        snprintf(tls->why + used, sizeof tls->why - used, " (%s)", X509_verify_cert_error_string(verified));
    }
}

/* --- contexts ----------------------------------------------------------------------------------- */

/* The settings both sides share: TLS 1.2 and 1.3, no renegotiation, no compression, small idle buffers. */
static SSL_CTX *new_context(const SSL_METHOD *method, char *err, size_t err_len)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        take_error(err, err_len, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* TLS 1.2 with forward secrecy and AEAD only: testssl.sh flagged the CBC suites of OpenSSL's default list
     * (LUCKY13). TLS 1.3's suites are all AEAD, and stay as they are. */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
        take_error(err, err_len, "cannot choose the TLS 1.2 cipher suites");
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* An idle connection gives its read and write buffers back (about 34 KiB each): memory per idle client.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

/* Loads our certificate chain and its key, and checks that they belong together. Returns 0, or -1. */
static int load_identity(SSL_CTX *ctx, const struct tls_options *options, char *err, size_t err_len)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, options->cert_file) != 1) {
        take_error(err, err_len, options->cert_file);
        return -1;
    }
    /* OpenSSL checks there that the key is the certificate's own: the likeliest mistake, said in words. */
    if (SSL_CTX_use_PrivateKey_file(ctx, options->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, err_len, "%s: the key does not match the certificate %s", options->key_file,
                     options->cert_file);
            ERR_clear_error();
        } else {
            take_error(err, err_len, options->key_file);
        }
        return -1;
    }
    return 0;
}

struct tls_context *tls_context_server(const struct tls_options *options, char *err, size_t err_len)
{
    struct tls_context *context = calloc(1, sizeof *context);
    if (context == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    context->ctx = new_context(TLS_server_method(), err, err_len);
    int result = context->ctx != NULL ? load_identity(context->ctx, options, err, err_len) : -1;
    if (result == 0 && options->verify_peer) {
        /* Clients must show a certificate signed by one of these CAs, whose names the server announces. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(options->ca_file);
        if (names == NULL || SSL_CTX_load_verify_locations(context->ctx, options->ca_file, NULL) != 1) {
            take_error(err, err_len, options->ca_file);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            result = -1;
        } else {
            SSL_CTX_set_client_CA_list(context->ctx, names);
            SSL_CTX_set_verify(context->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
    }
    /* No resumption, in either version: no session cache, and tickets that are only keys into it (stateful,
     * SSL_OP_NO_TICKET), so that none can resume. Yet one TLS 1.3 ticket is sent after each handshake: the
     * client speaks last there (its Finished), and with nothing to answer, our kernel would delay its ACK by
     * 40 ms, which a client with Nagle on waits for before its first request. The ticket carries that ACK.
     * The server's order of cipher suites wins over the client's. */
    if (result == 0) {
        SSL_CTX_set_num_tickets(context->ctx, 1);
        SSL_CTX_set_options(context->ctx, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_session_cache_mode(context->ctx, SSL_SESS_CACHE_OFF);
    }
    if (result != 0) {
        tls_context_free(context);
        return NULL;
    }
    return context;
}

struct tls_context *tls_context_client(const struct tls_options *options, char *err, size_t err_len)
{
    struct tls_context *context = calloc(1, sizeof *context);
    if (context == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    context->ctx = new_context(TLS_client_method(), err, err_len);
    int result = context->ctx != NULL ? 0 : -1;
    if (result == 0 && options->cert_file != NULL)
        result = load_identity(context->ctx, options, err, err_len);
    if (result == 0) {
        int loaded = options->ca_file != NULL
                         ? SSL_CTX_load_verify_locations(context->ctx, options->ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(context->ctx);
        if (loaded != 1) {
            take_error(err, err_len, options->ca_file != NULL ? options->ca_file : "the system's CAs");
            result = -1;
        }
    }
    if (result != 0) {
        tls_context_free(context);
        return NULL;
    }
    /* A client always checks the server: a certificate that does not verify, or names another host, ends it.
     */
    SSL_CTX_set_verify(context->ctx, SSL_VERIFY_PEER, NULL);
    return context;
}

void tls_context_free(struct tls_context *context)
{
    if (context == NULL)
        return;
    SSL_CTX_free(context->ctx);
    free(context);
}

/* --- connections -------------------------------------------------------------------------------- */

/* Moves what SSL wrote into the output buffer. Returns 0, or -1 (and the stream broken) when out of memory.
 */
static int drain(struct tls *tls)
{
    char *bytes;
    long len = BIO_get_mem_data(tls->out, &bytes);
    if (len <= 0)
        return 0;
    int result = outbuf_append(&tls->output, bytes, (size_t)len);
    (void)BIO_reset(tls->out);
    if (result != 0) {
        tls->broken = true;
        snprintf(tls->why, sizeof tls->why, "out of memory for what TLS has to send");
    }
    return result;
}

/* An SSL object between two memory BIOs, for either side. Returns it, or NULL. */
static struct tls *new_tls(struct tls_context *context, char *err, size_t err_len)
{
    struct tls *tls = calloc(1, sizeof *tls);
    if (tls == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    tls->output = (struct outbuf)OUTBUF_EMPTY;
    ERR_clear_error();
    tls->ssl = SSL_new(context->ctx);
    tls->in = BIO_new(BIO_s_mem());
    tls->out = BIO_new(BIO_s_mem());
    if (tls->ssl == NULL || tls->in == NULL || tls->out == NULL) {
        take_error(err, err_len, "cannot make a TLS connection");
        BIO_free(tls->in);
        BIO_free(tls->out);
        SSL_free(tls->ssl);
        free(tls);
        return NULL;
    }
    /* An empty `in` means "more to come", not the end of the stream: SSL then asks for more (WANT_READ). */
    BIO_set_mem_eof_return(tls->in, -1);
    SSL_set_bio(tls->ssl, tls->in, tls->out); /* SSL owns them now */
    return tls;
}

struct tls *tls_accept(struct tls_context *context, char *err, size_t err_len)
{
    struct tls *tls = new_tls(context, err, err_len);
    if (tls != NULL)
        SSL_set_accept_state(tls->ssl);
    return tls;
}

struct tls *tls_connect(struct tls_context *context, const char *host, char *err, size_t err_len)
{
    struct tls *tls = new_tls(context, err, err_len);
    if (tls == NULL)
        return NULL;
    SSL_set_connect_state(tls->ssl);
    /* The certificate must name the host: an address (127.0.0.1, ::1) is checked as one, a name as a name. */
    int named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls->ssl), host);
    if (named != 1)
        named = SSL_set1_host(tls->ssl, host) == 1 && SSL_set_tlsext_host_name(tls->ssl, host) == 1;
    if (named != 1) {
        take_error(err, err_len, "cannot check the server's name");
        tls_free(tls);
        return NULL;
    }
    return tls;
}

void tls_free(struct tls *tls)
{
    if (tls == NULL)
        return;
    SSL_free(tls->ssl); /* and both BIOs */
    outbuf_release(&tls->output);
    free(tls);
}

/* The handshake, as far as the bytes received take it. Returns 0, or -1 when it failed. */
static int handshake(struct tls *tls)
{
    int done = SSL_do_handshake(tls->ssl);
    if (done != 1 && SSL_get_error(tls->ssl, done) != SSL_ERROR_WANT_READ)
        fail(tls, "TLS handshake");
    return drain(tls) != 0 || tls->broken ? -1 : 0;
}

int tls_feed(struct tls *tls, const char *bytes, size_t len)
{
    if (tls->broken)
        return -1;
    ERR_clear_error();
    /* A memory BIO takes all it is given; it grows as it must. */
    if (len > 0 && BIO_write(tls->in, bytes, (int)len) != (int)len) {
        fail(tls, "cannot keep what was received");
        return -1;
    }
    return SSL_is_init_finished(tls->ssl) ? 0 : handshake(tls);
}

long tls_read(struct tls *tls, char *buf, size_t cap)
{
    if (tls->broken)
        return -1;
    if (!SSL_is_init_finished(tls->ssl) || tls->peer_closed)
        return 0;
    ERR_clear_error();
    int got = SSL_read(tls->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (got <= 0) {
        switch (SSL_get_error(tls->ssl, got)) {
        case SSL_ERROR_WANT_READ: /* no whole record yet */
            break;
        case SSL_ERROR_ZERO_RETURN: /* close_notify: the peer said goodbye */
            tls->peer_closed = true;
            break;
        default:
            fail(tls, "TLS");
            break;
        }
        got = 0;
    }
    /* A record may ask for an answer (a key update): it is output like any other. */
    if (drain(tls) != 0 || tls->broken)
        return -1;
    return got;
}

bool tls_has_input(const struct tls *tls)
{
    return !tls->broken && (SSL_pending(tls->ssl) > 0 || BIO_ctrl_pending(tls->in) > 0);
}

long tls_write(struct tls *tls, const char *bytes, size_t len)
{
    if (tls->broken || !SSL_is_init_finished(tls->ssl) || (SSL_get_shutdown(tls->ssl) & SSL_SENT_SHUTDOWN))
        return -1; /* nothing is written after our close_notify */
    ERR_clear_error();
    size_t taken = 0;
    while (taken < len) {
        size_t piece = len - taken > INT_MAX ? INT_MAX : len - taken;
        int wrote = SSL_write(tls->ssl, bytes + taken, (int)piece);
        if (wrote <= 0) {
            fail(tls, "TLS");
            return -1;
        }
        taken += (size_t)wrote;
    }
    return drain(tls) != 0 ? -1 : (long)taken;
}

const char *tls_output(const struct tls *tls, size_t *len)
{
    *len = outbuf_pending(&tls->output);
    return outbuf_data(&tls->output);
}

void tls_sent(struct tls *tls, size_t len)
{
    outbuf_consume(&tls->output, len);
}

void tls_close(struct tls *tls)
{
    if (tls->broken || !SSL_is_init_finished(tls->ssl))
        return;
    ERR_clear_error();
    SSL_shutdown(tls->ssl); /* queues close_notify; the peer's own, if it comes, is not waited for */
    drain(tls);
}

bool tls_handshake_done(const struct tls *tls)
{
    return SSL_is_init_finished(tls->ssl);
}

bool tls_peer_closed(const struct tls *tls)
{
    return tls->peer_closed;
}

const char *tls_error(const struct tls *tls)
{
    return tls->broken ? tls->why : "";
}

const char *tls_version(const struct tls *tls)
{
    return SSL_is_init_finished(tls->ssl) ? SSL_get_version(tls->ssl) : "";
}
