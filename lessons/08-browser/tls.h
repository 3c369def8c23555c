/*
 * tls.h - one connection's TLS, without any I/O: ciphertext in, plaintext
 * out; plaintext in, ciphertext out.
 *
 * A TLS connection is a state machine over bytes. The handshake is a few
 * messages each way; after it, every record carries encrypted data, or an
 * alert, or a new key. None of that needs a socket: OpenSSL can read its
 * input from a memory buffer and write its output to another (memory
 * BIOs), and this module is that, for one connection, as Python's
 * SSLObject and the TLS of h2o and nng are. The driver feeds it what the
 * socket received (tls_feed()), takes the plaintext out (tls_read()) for
 * the session, gives it the session's replies (tls_write()), and sends
 * what it has to say (tls_output()): the loop moves bytes as before, and
 * the session sees only plaintext.
 *
 * Two things a loop must know (Redis's tls.c meets both):
 *   - plaintext can wait inside the TLS object: one receive may hold many
 *     records, decrypted as they are read; a driver that stops reading
 *     while some wait (its client must read first) must come back for
 *     them itself once it may (tls_has_input()): no socket event will say
 *     they are there.
 *   - the handshake has something to send before any plaintext exists,
 *     and a record the peer sent may ask for an answer (a key update):
 *     after every feed, there may be output.
 *
 * Built on OpenSSL 3 (libssl), on Linux and, built for MinGW-w64, on
 * Windows (scripts/build-mingw-openssl): Wine cannot be a Schannel server.
 */
#ifndef TLS_H
#define TLS_H

#include <stdbool.h>
#include <stddef.h>

/* What the connections of one side share: certificates, keys, what to verify (an SSL_CTX). */
struct tls_context;

struct tls_options {
    const char *cert_file; /* PEM: our certificate (chain); a server must have one, a client may */
    const char *key_file;  /* PEM: its private key */
    const char *ca_file;   /* PEM: the CAs to verify the peer with; a client without one uses the system's */
    bool verify_peer;      /* server: clients must show a certificate from ca_file; client: always */
};

/*
 * The context of a server, or of a client: TLS 1.2 and 1.3 only, no
 * renegotiation, no compression. Returns it, or NULL with the reason in
 * err (a missing file, a key that does not match its certificate, ...).
 */
struct tls_context *tls_context_server(const struct tls_options *options, char *err, size_t err_len);
struct tls_context *tls_context_client(const struct tls_options *options, char *err, size_t err_len);
void tls_context_free(struct tls_context *context);

/* One connection. */
struct tls;

/*
 * A server's side of a new connection, or a client's, which checks that
 * the server's certificate names host (a name, or an address). Returns
 * it, or NULL with the reason in err.
 */
struct tls *tls_accept(struct tls_context *context, char *err, size_t err_len);
struct tls *tls_connect(struct tls_context *context, const char *host, char *err, size_t err_len);
void tls_free(struct tls *tls);

/*
 * What the socket received from the peer. Runs the handshake as far as
 * these bytes take it (a client's first call may have no bytes: it
 * starts the handshake). Returns 0, or -1 when the stream is broken: a
 * bad record, a failed handshake, a certificate refused (tls_error()
 * says why, and tls_output() may hold the alert to send).
 */
int tls_feed(struct tls *tls, const char *bytes, size_t len);

/*
 * Up to cap bytes of the plaintext the peer sent. Returns how many (0:
 * none whole yet, or the peer ended the stream: see tls_peer_closed()),
 * or -1 when the stream is broken.
 */
long tls_read(struct tls *tls, char *buf, size_t cap);

/* Whether received bytes wait inside, that tls_read() may turn into plaintext without another receive. */
bool tls_has_input(const struct tls *tls);

/*
 * Encrypts plaintext for the peer, once the handshake is done. Returns
 * how many bytes it took (all of them), or -1 when the stream is broken.
 */
long tls_write(struct tls *tls, const char *bytes, size_t len);

/* Ciphertext to send: *len bytes (0: nothing). */
const char *tls_output(const struct tls *tls, size_t *len);

/* The first len bytes of tls_output() were sent. */
void tls_sent(struct tls *tls, size_t len);

/* Says goodbye the TLS way: queues a close_notify alert; nothing is written after it. */
void tls_close(struct tls *tls);

bool tls_handshake_done(const struct tls *tls);

/* Whether the peer said goodbye with a close_notify (and not simply by closing its socket). */
bool tls_peer_closed(const struct tls *tls);

/* Why the stream broke, or "" while it has not. */
const char *tls_error(const struct tls *tls);

/* The protocol agreed, "TLSv1.3" or "TLSv1.2" ("" before the handshake is done). */
const char *tls_version(const struct tls *tls);

#endif
