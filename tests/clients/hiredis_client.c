/*
 * hiredis_client.c - drives a server with hiredis, Redis's own C client
 * library (Debian's libhiredis-dev), as a C program would: single
 * commands, a pipeline, a transaction, and publish/subscribe on a second
 * connection. Built and run by tests/test_clients.py:
 *
 *   cc -o hiredis_client hiredis_client.c -lhiredis && ./hiredis_client HOST PORT
 *
 * Prints one line per step, then "ok"; on a failure, the step and why,
 * and exits 1. Every reply is waited for at most 5 s.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Ends the run: what failed, and why. */
static void fail(const char *step, const char *why)
{
    printf("FAIL %s: %s\n", step, why);
    exit(1);
}

/* Checks one reply: its type, and its text (status, error or string) or its integer. */
static void expect(const char *step, redisReply *reply, int type, const char *text, long long integer)
{
    char why[256];
    if (reply == NULL)
        fail(step, "no reply (the connection broke, or 5 s passed)");
    if (reply->type != type) {
        snprintf(why, sizeof why, "reply of type %d, expected %d (\"%.*s\")", reply->type, type,
                 reply->str != NULL ? (int)reply->len : 0, reply->str != NULL ? reply->str : "");
        fail(step, why);
    }
    if (text != NULL && (reply->len != strlen(text) || memcmp(reply->str, text, reply->len) != 0)) {
        snprintf(why, sizeof why, "\"%.*s\", expected \"%s\"", (int)reply->len, reply->str, text);
        fail(step, why);
    }
    if (type == REDIS_REPLY_INTEGER && reply->integer != integer) {
        snprintf(why, sizeof why, "%lld, expected %lld", reply->integer, integer);
        fail(step, why);
    }
    printf("%s: ok\n", step);
}

static redisContext *connect_to(const char *host, int port)
{
    struct timeval wait = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, wait);
    if (c == NULL || c->err)
        fail("connect", c != NULL ? c->errstr : "out of memory");
    redisSetTimeout(c, wait);
    return c;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        fail("arguments", "usage: hiredis_client HOST PORT");
    redisContext *c = connect_to(argv[1], atoi(argv[2]));
    redisReply *r = redisCommand(c, "PING");
    expect("PING", r, REDIS_REPLY_STATUS, "PONG", 0);
    freeReplyObject(r);
    r = redisCommand(c, "ECHO %b", "a\0b", (size_t)3);
    expect("ECHO of binary bytes", r, REDIS_REPLY_STRING, NULL, 0);
    if (r->len != 3 || memcmp(r->str, "a\0b", 3) != 0)
        fail("ECHO of binary bytes", "not the three bytes sent");
    freeReplyObject(r);

    /* A pipeline: three commands in one write, then their three replies. */
    redisAppendCommand(c, "ECHO %s", "one");
    redisAppendCommand(c, "PING");
    redisAppendCommand(c, "CLIENT GETNAME");
    const char *want[] = {"one", "PONG", NULL};
    int types[] = {REDIS_REPLY_STRING, REDIS_REPLY_STATUS, REDIS_REPLY_NIL};
    for (int i = 0; i < 3; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            fail("pipeline", c->errstr);
        expect("pipelined reply", r, types[i], want[i], 0);
        freeReplyObject(r);
    }

    r = redisCommand(c, "MULTI");
    expect("MULTI", r, REDIS_REPLY_STATUS, "OK", 0);
    freeReplyObject(r);
    r = redisCommand(c, "ECHO %s", "queued");
    expect("a queued command", r, REDIS_REPLY_STATUS, "QUEUED", 0);
    freeReplyObject(r);
    r = redisCommand(c, "EXEC");
    expect("EXEC", r, REDIS_REPLY_ARRAY, NULL, 0);
    if (r->elements != 1)
        fail("EXEC", "not one reply for the one queued command");
    expect("EXEC's reply", r->element[0], REDIS_REPLY_STRING, "queued", 0);
    freeReplyObject(r);

    r = redisCommand(c, "SUBSCRIBE %s", "news");
    expect("SUBSCRIBE", r, REDIS_REPLY_ARRAY, NULL, 0);
    freeReplyObject(r);
    redisContext *publisher = connect_to(argv[1], atoi(argv[2]));
    r = redisCommand(publisher, "PUBLISH %s %s", "news", "hello all");
    expect("PUBLISH", r, REDIS_REPLY_INTEGER, NULL, 1);
    freeReplyObject(r);
    if (redisGetReply(c, (void **)&r) != REDIS_OK)
        fail("message", c->errstr);
    expect("message", r, REDIS_REPLY_ARRAY, NULL, 0);
    if (r->elements != 3)
        fail("message", "not [\"message\", channel, text]");
    expect("the message's text", r->element[2], REDIS_REPLY_STRING, "hello all", 0);
    freeReplyObject(r);
    redisFree(publisher);
    redisFree(c);
    printf("ok\n");
    return 0;
}
