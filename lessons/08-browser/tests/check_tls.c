/*
 * check_tls.c - TLS without sockets: a client and a server TLS object of
 * this module talk through memory, the test carrying the bytes between
 * them, cut wherever it likes. The handshake finishes whatever the cuts;
 * plaintext goes both ways intact; a wrong name, a missing or foreign
 * client certificate and a damaged record each end the stream with a
 * reason; close_notify is told apart from a stream that was cut; and
 * plaintext that waits inside the object is said to wait.
 *
 * It uses the certificates `make certs` made in certs/ (make check makes
 * them first).
 */
#include "check_suites.h"
#include "tls.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static const struct tls_options server_options = {.cert_file = "certs/server.crt",
                                                  .key_file = "certs/server.key"};
static const struct tls_options client_options = {.ca_file = "certs/ca.crt"};

/* A server and a client context, made for each test. */
static struct tls_context *server_context, *client_context;

static struct tls_context *context(bool server, const struct tls_options *options)
{
    char err[256] = "";
    struct tls_context *made =
        server ? tls_context_server(options, err, sizeof err) : tls_context_client(options, err, sizeof err);
    ck_assert_msg(made != NULL, "cannot make the %s context: %s (did make certs run?)",
                  server ? "server" : "client", err);
    return made;
}

static void setup(void)
{
    server_context = context(true, &server_options);
    client_context = context(false, &client_options);
}

static void teardown(void)
{
    tls_context_free(server_context);
    tls_context_free(client_context);
}

/*
 * Carries what `from` has to send to `to`, at most `piece` bytes per feed
 * (0: all at once), as a socket would in receives of that size. Returns
 * the bytes carried, or -1 when `to` refused them.
 */
static long carry(struct tls *from, struct tls *to, size_t piece)
{
    size_t len;
    const char *bytes = tls_output(from, &len);
    long carried = 0;
    while (bytes != NULL && len > 0) {
        size_t take = piece == 0 || piece > len ? len : piece;
        if (tls_feed(to, bytes, take) != 0)
            return -1;
        tls_sent(from, take);
        carried += (long)take;
        bytes = tls_output(from, &len);
    }
    return carried;
}

/* Runs the handshake, carrying bytes both ways in pieces, until it ends. Returns 0, or -1 when one side
 * failed. */
static int handshake(struct tls *client, struct tls *server, size_t piece)
{
    if (tls_feed(client, NULL, 0) != 0) /* the client speaks first: its hello */
        return -1;
    for (int round = 0; round < 20; round++) {
        long there = carry(client, server, piece);
        long back = carry(server, client, piece);
        if (there < 0 || back < 0)
            return -1;
        if (tls_handshake_done(client) && tls_handshake_done(server) && there == 0 && back == 0)
            return 0;
    }
    ck_abort_msg("the handshake did not end in 20 rounds");
    return -1;
}

/* Reads all the plaintext that is whole at `tls` into buf (up to cap). Returns how many bytes. */
static size_t read_all(struct tls *tls, char *buf, size_t cap)
{
    size_t got = 0;
    long n;
    while (got < cap && (n = tls_read(tls, buf + got, cap - got)) > 0)
        got += (size_t)n;
    return got;
}

static struct tls *accept_one(void)
{
    char err[256] = "";
    struct tls *tls = tls_accept(server_context, err, sizeof err);
    ck_assert_msg(tls != NULL, "tls_accept: %s", err);
    return tls;
}

static struct tls *connect_one(struct tls_context *ctx, const char *host)
{
    char err[256] = "";
    struct tls *tls = tls_connect(ctx, host, err, sizeof err);
    ck_assert_msg(tls != NULL, "tls_connect: %s", err);
    return tls;
}

START_TEST(test_tls_handshake_ends_and_data_goes_both_ways)
{
    struct tls *server = accept_one(), *client = connect_one(client_context, "127.0.0.1");
    ck_assert_msg(handshake(client, server, 0) == 0, "handshake failed: client \"%s\", server \"%s\"",
                  tls_error(client), tls_error(server));
    ck_assert_str_eq(tls_version(server), "TLSv1.3");
    ck_assert_int_eq(tls_write(client, "PING\r\n", 6), 6);
    ck_assert_int_ge(carry(client, server, 0), 6);
    char buf[64];
    size_t got = read_all(server, buf, sizeof buf);
    ck_assert_msg(got == 6 && memcmp(buf, "PING\r\n", 6) == 0, "the server read \"%.*s\"", (int)got, buf);
    ck_assert_int_eq(tls_write(server, "+PONG\r\n", 7), 7);
    carry(server, client, 0);
    got = read_all(client, buf, sizeof buf);
    ck_assert_msg(got == 7 && memcmp(buf, "+PONG\r\n", 7) == 0, "the client read \"%.*s\"", (int)got, buf);
    tls_free(client);
    tls_free(server);
}
END_TEST

START_TEST(test_tls_handshake_and_a_record_survive_every_cut)
{
    /* Every receive size from one byte up: the records must come out the same however the socket cuts them.
     */
    for (size_t piece = 1; piece <= 64; piece += (piece < 8 ? 1 : 7)) {
        struct tls *server = accept_one(), *client = connect_one(client_context, "localhost");
        ck_assert_msg(handshake(client, server, piece) == 0, "cut into pieces of %zu bytes: %s / %s", piece,
                      tls_error(client), tls_error(server));
        char message[300];
        for (size_t i = 0; i < sizeof message; i++)
            message[i] = (char)('a' + i % 26);
        ck_assert_int_eq(tls_write(client, message, sizeof message), (long)sizeof message);
        carry(client, server, piece);
        char buf[400];
        size_t got = read_all(server, buf, sizeof buf);
        ck_assert_msg(got == sizeof message && memcmp(buf, message, got) == 0,
                      "cut into pieces of %zu bytes: %zu of %zu bytes came whole", piece, got,
                      sizeof message);
        tls_free(client);
        tls_free(server);
    }
}
END_TEST

START_TEST(test_tls_client_refuses_a_certificate_for_another_name)
{
    struct tls *server = accept_one(), *client = connect_one(client_context, "example.com");
    ck_assert_int_eq(handshake(client, server, 0), -1);
    ck_assert_msg(strstr(tls_error(client), "certificate verify failed") != NULL, "the client said \"%s\"",
                  tls_error(client));
    ck_assert_msg(strstr(tls_error(client), "hostname mismatch") != NULL, "the client said \"%s\"",
                  tls_error(client));
    tls_free(client);
    tls_free(server);
}
END_TEST

START_TEST(test_tls_server_that_wants_a_client_certificate_refuses_a_client_without_one)
{
    const struct tls_options wanting = {.cert_file = "certs/server.crt",
                                        .key_file = "certs/server.key",
                                        .ca_file = "certs/ca.crt",
                                        .verify_peer = true};
    struct tls_context *strict = context(true, &wanting);
    char err[256];
    struct tls *server = tls_accept(strict, err, sizeof err),
               *client = connect_one(client_context, "127.0.0.1");
    ck_assert_int_eq(handshake(client, server, 0), -1);
    ck_assert_msg(strstr(tls_error(server), "peer did not return a certificate") != NULL,
                  "the server said \"%s\"", tls_error(server));
    tls_free(client);
    tls_free(server);
    /* With its certificate, the same client is let in. */
    const struct tls_options showing = {
        .cert_file = "certs/client.crt", .key_file = "certs/client.key", .ca_file = "certs/ca.crt"};
    struct tls_context *known = context(false, &showing);
    server = tls_accept(strict, err, sizeof err);
    client = connect_one(known, "127.0.0.1");
    ck_assert_msg(handshake(client, server, 0) == 0, "%s / %s", tls_error(client), tls_error(server));
    tls_free(client);
    tls_free(server);
    tls_context_free(known);
    tls_context_free(strict);
}
END_TEST

START_TEST(test_tls_context_refuses_a_key_that_is_not_the_certificates)
{
    const struct tls_options mismatched = {.cert_file = "certs/server.crt", .key_file = "certs/client.key"};
    char err[256] = "";
    ck_assert_ptr_null(tls_context_server(&mismatched, err, sizeof err));
    ck_assert_msg(strstr(err, "the key does not match the certificate") != NULL, "it said \"%s\"", err);
    const struct tls_options missing = {.cert_file = "certs/none.crt", .key_file = "certs/server.key"};
    ck_assert_ptr_null(tls_context_server(&missing, err, sizeof err));
    ck_assert_msg(strstr(err, "certs/none.crt") != NULL, "it said \"%s\"", err);
}
END_TEST

START_TEST(test_tls_plaintext_on_the_tls_port_breaks_the_stream)
{
    struct tls *server = accept_one();
    ck_assert_int_eq(tls_feed(server, "PING\r\n", 6), -1);
    ck_assert_msg(tls_error(server)[0] != '\0', "no reason given");
    ck_assert_int_eq(tls_read(server, (char[8]){0}, 8), -1);
    tls_free(server);
}
END_TEST

START_TEST(test_tls_a_damaged_record_breaks_the_stream)
{
    struct tls *server = accept_one(), *client = connect_one(client_context, "127.0.0.1");
    ck_assert_int_eq(handshake(client, server, 0), 0);
    tls_write(client, "PING\r\n", 6);
    size_t len;
    const char *record = tls_output(client, &len);
    char damaged[256];
    ck_assert_uint_le(len, sizeof damaged);
    memcpy(damaged, record, len);
    damaged[len - 1] ^= 1; /* one bit of the authentication tag */
    tls_sent(client, len);
    ck_assert_int_eq(tls_feed(server, damaged, len), 0); /* kept; it is read next */
    char buf[16];
    ck_assert_int_eq(tls_read(server, buf, sizeof buf), -1);
    ck_assert_msg(strstr(tls_error(server), "bad record mac") != NULL || strstr(tls_error(server), "decrypt"),
                  "it said \"%s\"", tls_error(server));
    tls_free(client);
    tls_free(server);
}
END_TEST

START_TEST(test_tls_close_notify_is_told_apart_from_a_cut_stream)
{
    struct tls *server = accept_one(), *client = connect_one(client_context, "127.0.0.1");
    ck_assert_int_eq(handshake(client, server, 0), 0);
    tls_write(client, "QUIT\r\n", 6);
    tls_close(client);
    ck_assert_int_eq(tls_write(client, "more", 4), -1); /* nothing is written after goodbye */
    carry(client, server, 0);
    char buf[16];
    ck_assert_uint_eq(read_all(server, buf, sizeof buf), 6);
    ck_assert(tls_peer_closed(server));
    ck_assert_int_eq(tls_read(server, buf, sizeof buf), 0);
    ck_assert_str_eq(tls_error(server), "");
    tls_free(client);
    tls_free(server);
}
END_TEST

START_TEST(test_tls_says_when_plaintext_waits_inside)
{
    struct tls *server = accept_one(), *client = connect_one(client_context, "127.0.0.1");
    ck_assert_int_eq(handshake(client, server, 0), 0);
    tls_write(client, "PING\r\n", 6);
    tls_write(client, "ECHO hi\r\n", 9);
    carry(client, server, 0); /* two records in one receive */
    ck_assert(tls_has_input(server));
    char buf[6];
    ck_assert_int_eq(tls_read(server, buf, 4), 4); /* a reader that takes less than a record holds */
    ck_assert_msg(tls_has_input(server),
                  "the rest of the first record waits inside, decrypted, and must be said to");
    ck_assert_int_eq(tls_read(server, buf, sizeof buf), 2); /* the first record, to its end */
    ck_assert_msg(tls_has_input(server),
                  "the second record waits inside, not yet decrypted, and must be said to");
    char rest[32];
    ck_assert_uint_eq(read_all(server, rest, sizeof rest), 9);
    ck_assert(!tls_has_input(server));
    tls_free(client);
    tls_free(server);
}
END_TEST

Suite *make_tls_suite(void)
{
    Suite *suite = suite_create("tls");
    TCase *records = tcase_create("records"); /* step "records" */
    tcase_add_checked_fixture(records, setup, teardown);
    tcase_add_test(records, test_tls_handshake_ends_and_data_goes_both_ways);
    tcase_add_test(records, test_tls_handshake_and_a_record_survive_every_cut);
    tcase_add_test(records, test_tls_client_refuses_a_certificate_for_another_name);
    tcase_add_test(records, test_tls_server_that_wants_a_client_certificate_refuses_a_client_without_one);
    tcase_add_test(records, test_tls_context_refuses_a_key_that_is_not_the_certificates);
    tcase_add_test(records, test_tls_plaintext_on_the_tls_port_breaks_the_stream);
    tcase_add_test(records, test_tls_a_damaged_record_breaks_the_stream);
    tcase_add_test(records, test_tls_says_when_plaintext_waits_inside);
    suite_add_tcase(suite, records);
    TCase *goodbye = tcase_create("goodbye"); /* step "goodbye": tls_close() */
    tcase_add_checked_fixture(goodbye, setup, teardown);
    tcase_add_test(goodbye, test_tls_close_notify_is_told_apart_from_a_cut_stream);
    suite_add_tcase(suite, goodbye);
    return suite;
}
