/*
 * commands.c - see commands.h. One table names each command, how many
 * arguments it takes, what it may do, and its function; a command with
 * subcommands (CLIENT, COMMAND) has a table of its own, looked up the same
 * way, so that every name an error shows ('client|setname') comes from
 * one place. Names are matched without regard to case, as Redis does, and
 * errors are worded as Redis words them, so that redis-cli and client
 * libraries understand them.
 */
#include "commands.h"

#include "reply.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef enum session_verdict (*command_fn)(struct session *session, const struct resp_arg *args, size_t argc,
                                           long long now);

/* What a command may do, besides its reply. */
enum {
    SUBSCRIBED = 1, /* allowed while the client is subscribed to a channel (subscribe mode) */
    AT_ONCE = 2,    /* run at once between MULTI and EXEC, never queued */
    SLOW = 4,       /* its reply is a job's, run off the loop: refused between MULTI and EXEC */
};

/* The most arguments a queued command may have, as the session's parser allows. */
#define COMMANDS_ARGS_MAX 1024

/* The Redis version this server answers like, for clients that ask (HELLO, INFO): RESP2 and RESP3 of 7.0. */
#define COMMANDS_REDIS_VERSION "7.0.0"

/* An argument as "%.*s" wants it: at most 128 bytes, as Redis quotes one. */
#define SHOWN(arg) (int)((arg).len < 128 ? (arg).len : 128), (arg).bytes

struct command {
    const char *name; /* in lower case, as errors show it: "client|setname" for a subcommand */
    int arity;        /* n: exactly n arguments, the name(s) included; -n: at least n */
    unsigned flags;   /* SUBSCRIBED, AT_ONCE, SLOW */
    command_fn run;   /* for a container, what it does without a subcommand (NULL: nothing) */
    const struct command *subcommands; /* a container's table, ended by a NULL name */
    /* For COMMAND DOCS, from which redis-cli makes its help and its hints: */
    const char *summary, *since, *group;
    const char *arguments; /* each "name:type" or "name:type:flag,flag", separated by spaces */
};

/* Whether the argument is this word, in any case. */
static bool is(const struct resp_arg *arg, const char *word)
{
    return arg->len == strlen(word) && strncasecmp(arg->bytes, word, arg->len) == 0;
}

/* The entry of a table whose name (after "container|", if any) is this argument, or NULL. */
static const struct command *look_up(const struct command *table, const struct resp_arg *arg)
{
    for (const struct command *c = table; c->name != NULL; c++) {
        const char *bar = strchr(c->name, '|');
        if (is(arg, bar != NULL ? bar + 1 : c->name))
            return c;
    }
    return NULL;
}

static enum session_verdict wrong_arity(struct session *session, const char *name)
{
    reply_error(&session->out, "ERR wrong number of arguments for '%s' command", name);
    return SESSION_OPEN;
}

/* --- the commands ----------------------------------------------------------------------------- */

/* PING [message]: +PONG, or the message. A RESP2 subscriber gets ["pong", message], as in Redis. */
static enum session_verdict ping(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now)
{
    (void)now;
    if (argc > 2)
        return wrong_arity(session, "ping");
    if (session->channel_count > 0 && session->resp == RESP2) {
        reply_array(&session->out, 2);
        reply_bulk(&session->out, "pong", 4);
        reply_bulk(&session->out, argc == 2 ? args[1].bytes : "", argc == 2 ? args[1].len : 0);
    } else if (argc == 2) {
        reply_bulk(&session->out, args[1].bytes, args[1].len);
    } else {
        reply_simple(&session->out, "PONG");
    }
    return SESSION_OPEN;
}

/* ECHO message: the message, byte for byte. */
static enum session_verdict echo(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now)
{
    (void)argc, (void)now;
    reply_bulk(&session->out, args[1].bytes, args[1].len);
    return SESSION_OPEN;
}

/* TIME: [seconds, microseconds] since 1970, as two bulk strings: the wall clock the driver read. */
static enum session_verdict time_now(struct session *session, const struct resp_arg *args, size_t argc,
                                     long long now)
{
    (void)args, (void)argc, (void)now;
    long long us = session->hub->wall_clock_us;
    char seconds[24], micros[24];
    snprintf(seconds, sizeof seconds, "%lld", us / 1000000);
    snprintf(micros, sizeof micros, "%lld", us % 1000000);
    reply_array(&session->out, 2);
    reply_bulk_text(&session->out, seconds);
    reply_bulk_text(&session->out, micros);
    return SESSION_OPEN;
}

/* QUIT: +OK, then the server closes the connection. */
static enum session_verdict quit(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now)
{
    (void)args, (void)argc, (void)now;
    reply_simple(&session->out, "OK");
    return SESSION_DONE;
}

/* exit: the original protocol's goodbye; the connection closes without a reply. */
static enum session_verdict leave(struct session *session, const struct resp_arg *args, size_t argc,
                                  long long now)
{
    (void)session, (void)args, (void)argc, (void)now;
    return SESSION_DONE;
}

/* A client's name: printable, no spaces (CLIENT LIST separates fields with them). */
static bool valid_name(const struct resp_arg *name)
{
    for (size_t i = 0; i < name->len; i++)
        if (name->bytes[i] < '!' || name->bytes[i] > '~')
            return false;
    return true;
}

/* CLIENT SETNAME name: an empty name removes it. */
static enum session_verdict client_setname(struct session *session, const struct resp_arg *args, size_t argc,
                                           long long now)
{
    (void)argc, (void)now;
    if (!valid_name(&args[2])) {
        reply_error(&session->out, "ERR Client names cannot contain spaces, newlines or special characters.");
    } else if (args[2].len > SESSION_NAME_MAX) {
        reply_error(&session->out, "ERR Client names are limited to %d bytes", SESSION_NAME_MAX);
    } else {
        memcpy(session->name, args[2].bytes, args[2].len);
        session->name[args[2].len] = '\0';
        reply_simple(&session->out, "OK");
    }
    return SESSION_OPEN;
}

/* CLIENT GETNAME: the name, or null. */
static enum session_verdict client_getname(struct session *session, const struct resp_arg *args, size_t argc,
                                           long long now)
{
    (void)args, (void)argc, (void)now;
    if (session->name[0] == '\0')
        reply_null(&session->out, session->resp);
    else
        reply_bulk_text(&session->out, session->name);
    return SESSION_OPEN;
}

/* CLIENT ID: 1, 2, ... in the order clients came. */
static enum session_verdict client_id(struct session *session, const struct resp_arg *args, size_t argc,
                                      long long now)
{
    (void)args, (void)argc, (void)now;
    reply_integer(&session->out, (long long)session->id);
    return SESSION_OPEN;
}

/* One line of CLIENT LIST about one session, appended to list. */
static void describe(const struct session *s, long long now, struct outbuf *list)
{
    char line[256];
    int len = snprintf(line, sizeof line, "id=%llu addr=%s name=%s age=%lld idle=%lld sub=%zu cmd=%s\n",
                       s->id, s->peer, s->name, (now - s->started) / 1000, (now - s->last_request) / 1000,
                       s->channel_count, s->last_command[0] != '\0' ? s->last_command : "NULL");
    if (len > 0)
        outbuf_append(list, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
}

/* CLIENT LIST [TYPE normal|pubsub]: a line per client, newest first; of one type (subscribers or not). */
static enum session_verdict client_list(struct session *session, const struct resp_arg *args, size_t argc,
                                        long long now)
{
    int only = -1; /* the subscribers (1), the others (0), or all (-1) */
    if (argc == 4 && is(&args[2], "type") && (is(&args[3], "normal") || is(&args[3], "pubsub"))) {
        only = is(&args[3], "pubsub");
    } else if (argc == 4 && is(&args[2], "type")) {
        reply_error(&session->out, "ERR Unknown client type '%.*s'", SHOWN(args[3]));
        return SESSION_OPEN;
    } else if (argc > 2) { /* Redis's ID filter is not here */
        reply_error(&session->out, "ERR syntax error");
        return SESSION_OPEN;
    }
    struct outbuf list = OUTBUF_EMPTY;
    for (const struct session *s = session->hub->first; s != NULL; s = s->next)
        if (only < 0 || only == (s->channel_count > 0))
            describe(s, now, &list);
    if (outbuf_failed(&list))
        reply_error(&session->out, "ERR out of memory");
    else
        reply_verbatim(&session->out, session->resp, outbuf_data(&list) != NULL ? outbuf_data(&list) : "",
                       outbuf_pending(&list));
    outbuf_release(&list);
    return SESSION_OPEN;
}

/* CLIENT SETINFO LIB-NAME name | LIB-VER version: what a client library says of itself (accepted, not kept).
 */
static enum session_verdict client_setinfo(struct session *session, const struct resp_arg *args, size_t argc,
                                           long long now)
{
    (void)argc, (void)now;
    if (!is(&args[2], "lib-name") && !is(&args[2], "lib-ver"))
        reply_error(&session->out, "ERR Unrecognized option '%.*s'", (int)args[2].len, args[2].bytes);
    else if (!valid_name(&args[3]))
        reply_error(&session->out, "ERR %.*s cannot contain spaces, newlines or special characters.",
                    (int)args[2].len, args[2].bytes);
    else
        reply_simple(&session->out, "OK");
    return SESSION_OPEN;
}

/* Whether INFO's arguments ask for this section: by its name, or as default, all or everything. */
static bool section_wanted(const struct resp_arg *args, size_t argc, const char *section)
{
    bool wanted = argc == 1;
    for (size_t i = 1; i < argc; i++)
        wanted |= is(&args[i], section) || is(&args[i], "default") || is(&args[i], "all") ||
                  is(&args[i], "everything");
    return wanted;
}

/*
 * INFO [section ...]: the server's counters, as "name:value" lines under
 * "# Server" and "# Jobs", Redis's format; the sections asked for (by
 * name, or as default, all or everything), else nothing, as Redis answers.
 */
static enum session_verdict info(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now)
{
    const struct hub *hub = session->hub;
    char text[768];
    int len = 0;
    if (section_wanted(args, argc, "server"))
        len = snprintf(text, sizeof text,
                       "# Server\r\n"
                       "uptime_in_seconds:%lld\r\n"
                       "connected_clients:%zu\r\n"
                       "total_connections_received:%llu\r\n"
                       "total_commands_processed:%llu\r\n"
                       "pubsub_channels:%zu\r\n"
                       "pubsub_messages_delivered:%llu\r\n",
                       (now - hub->started_ms) / 1000, hub->clients, hub->connections_received,
                       hub->commands_processed, hub->channels.count, hub->messages_delivered);
    struct job_counts jobs = {0};
    if (hub->job_counts != NULL)
        hub->job_counts(hub->driver, &jobs);
    if (section_wanted(args, argc, "jobs") && len >= 0 && (size_t)len < sizeof text)
        len += snprintf(text + len, sizeof text - (size_t)len,
                        "%s# Jobs\r\n"
                        "jobs_workers:%d\r\n"
                        "jobs_queued:%zu\r\n"
                        "jobs_running:%zu\r\n"
                        "jobs_finished:%llu\r\n"
                        "jobs_refused:%llu\r\n",
                        len > 0 ? "\r\n" : "", jobs.workers, jobs.queued, jobs.running, jobs.finished,
                        jobs.refused);
    reply_verbatim(&session->out, session->resp, text,
                   len > 0 && (size_t)len < sizeof text ? (size_t)len : 0);
    return SESSION_OPEN;
}

/* --- the slow commands: their reply is a job's -------------------------------------------------- */

/* Hands the job to the session, whose reply it will be; or, when there is none, replies with why. */
static enum session_verdict defer(struct session *session, struct job *job, const char *why)
{
    if (job == NULL)
        reply_error(&session->out, "ERR %s", why);
    else
        session_defer(session, job);
    return SESSION_OPEN;
}

/* DEBUG SLEEP seconds: "+OK" once they have passed, as Redis; which sleeps on its only thread, and here a
 * worker does. The one subcommand of DEBUG here. */
static enum session_verdict debug(struct session *session, const struct resp_arg *args, size_t argc,
                                  long long now)
{
    (void)now;
    if (argc != 3 || !is(&args[1], "sleep")) {
        reply_error(&session->out,
                    "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try DEBUG HELP.",
                    SHOWN(args[1]));
        return SESSION_OPEN;
    }
    char why[64];
    return defer(session, job_sleep(args[2].bytes, args[2].len, session->id, why, sizeof why), why);
}

/* PRIMES n: the number of primes below n, as an integer; work for the CPU (this course's, not Redis's). */
static enum session_verdict primes(struct session *session, const struct resp_arg *args, size_t argc,
                                   long long now)
{
    (void)argc, (void)now;
    char why[64];
    return defer(session, job_primes(args[1].bytes, args[1].len, session->id, why, sizeof why), why);
}

/* The reply to (UN)SUBSCRIBE for one channel: [kind, channel, count], a push in RESP3 as in Redis. */
static void confirm(struct session *session, const char *kind, const char *name, size_t len, size_t count)
{
    reply_push(&session->out, session->resp, 3);
    reply_bulk_text(&session->out, kind);
    if (name != NULL)
        reply_bulk(&session->out, name, len);
    else
        reply_null(&session->out, session->resp);
    reply_integer(&session->out, (long long)count);
}

/* SUBSCRIBE channel [channel ...]: one confirmation per channel; the client is now in subscribe mode. */
static enum session_verdict subscribe(struct session *session, const struct resp_arg *args, size_t argc,
                                      long long now)
{
    (void)now;
    for (size_t i = 1; i < argc; i++) {
        switch (hub_subscribe(session->hub, session, args[i].bytes, args[i].len,
                              session->limits->max_subscriptions)) {
        case HUB_ADDED:
        case HUB_ALREADY:
            confirm(session, "subscribe", args[i].bytes, args[i].len, session->channel_count);
            break;
        case HUB_FULL:
            reply_error(&session->out, "ERR max number of subscriptions per client reached");
            break;
        case HUB_NO_MEMORY:
            reply_error(&session->out, "ERR out of memory");
            break;
        }
    }
    return SESSION_OPEN;
}

/* UNSUBSCRIBE [channel ...]: from those channels, or from all; one confirmation each. */
static enum session_verdict unsubscribe(struct session *session, const struct resp_arg *args, size_t argc,
                                        long long now)
{
    (void)now;
    for (size_t i = 1; i < argc; i++) {
        hub_unsubscribe(session->hub, session, args[i].bytes, args[i].len);
        confirm(session, "unsubscribe", args[i].bytes, args[i].len, session->channel_count);
    }
    if (argc == 1 && session->channel_count == 0)
        confirm(session, "unsubscribe", NULL, 0, 0); /* from nothing: Redis answers with a null channel */
    size_t len;
    const char *name;
    while (argc == 1 && (name = hub_oldest_channel(session, &len)) != NULL) {
        confirm(session, "unsubscribe", name, len, session->channel_count - 1); /* before the name is freed */
        hub_unsubscribe(session->hub, session, name, len);
    }
    return SESSION_OPEN;
}

/* PUBLISH channel message: the number of subscribers it reached. */
static enum session_verdict publish(struct session *session, const struct resp_arg *args, size_t argc,
                                    long long now)
{
    (void)argc, (void)now;
    reply_integer(&session->out,
                  hub_publish(session->hub, args[1].bytes, args[1].len, args[2].bytes, args[2].len));
    return SESSION_OPEN;
}

/* HELLO [protover [AUTH username password] [SETNAME name]]: the protocol, 2 or 3, and who the server is. */
static enum session_verdict hello(struct session *session, const struct resp_arg *args, size_t argc,
                                  long long now)
{
    (void)now;
    long long version = session->resp;
    size_t next = 1;
    if (argc >= 2) {
        if (!resp_integer(args[1].bytes, args[1].len, &version)) {
            reply_error(&session->out, "ERR Protocol version is not an integer or out of range");
            return SESSION_OPEN;
        }
        if (version != RESP2 && version != RESP3) {
            reply_error(&session->out, "NOPROTO unsupported protocol version");
            return SESSION_OPEN;
        }
        next = 2;
    }
    const struct resp_arg *name = NULL;
    for (; next < argc; next++) {
        size_t more = argc - 1 - next;
        if (is(&args[next], "auth") && more >= 2) {
            /* No users here, so no password is right: Redis's words for a wrong one. */
            reply_error(&session->out, "WRONGPASS invalid username-password pair or user is disabled.");
            return SESSION_OPEN;
        } else if (is(&args[next], "setname") && more >= 1) {
            name = &args[++next];
        } else {
            reply_error(&session->out, "ERR Syntax error in HELLO option '%.*s'", SHOWN(args[next]));
            return SESSION_OPEN;
        }
    }
    if (name != NULL && !valid_name(name)) {
        reply_error(&session->out, "ERR Client names cannot contain spaces, newlines or special characters.");
        return SESSION_OPEN;
    }
    if (name != NULL && name->len <= SESSION_NAME_MAX) {
        memcpy(session->name, name->bytes, name->len);
        session->name[name->len] = '\0';
    }
    session->resp = version == RESP3 ? RESP3 : RESP2;
    struct outbuf *out = &session->out;
    reply_map(out, session->resp, 7);
    reply_bulk_text(out, "server");
    reply_bulk_text(out, "redis");
    reply_bulk_text(out, "version");
    reply_bulk_text(out, COMMANDS_REDIS_VERSION);
    reply_bulk_text(out, "proto");
    reply_integer(out, version);
    reply_bulk_text(out, "id");
    reply_integer(out, (long long)session->id);
    reply_bulk_text(out, "mode");
    reply_bulk_text(out, "standalone");
    reply_bulk_text(out, "role");
    reply_bulk_text(out, "master");
    reply_bulk_text(out, "modules");
    reply_array(out, 0);
    return SESSION_OPEN;
}

/* Forgets the transaction, queued commands and all. */
static void end_multi(struct session *session)
{
    session->in_multi = false;
    session->multi_failed = false;
    session->queued_count = 0;
    outbuf_release(&session->queued);
}

/* MULTI: the commands that follow are queued, and EXEC runs them all at once. */
static enum session_verdict multi(struct session *session, const struct resp_arg *args, size_t argc,
                                  long long now)
{
    (void)args, (void)argc, (void)now;
    if (session->in_multi) {
        reply_error(&session->out, "ERR MULTI calls can not be nested");
        return SESSION_OPEN;
    }
    session->in_multi = true;
    reply_simple(&session->out, "OK");
    return SESSION_OPEN;
}

/* DISCARD: forgets the queued commands. */
static enum session_verdict discard(struct session *session, const struct resp_arg *args, size_t argc,
                                    long long now)
{
    (void)args, (void)argc, (void)now;
    if (!session->in_multi) {
        reply_error(&session->out, "ERR DISCARD without MULTI");
        return SESSION_OPEN;
    }
    end_multi(session);
    reply_simple(&session->out, "OK");
    return SESSION_OPEN;
}

static enum session_verdict dispatch(struct session *session, const struct resp_arg *args, size_t argc,
                                     long long now);

/*
 * EXEC: runs the queued commands, their replies in one array; or none of
 * them, if one could not be queued. They were queued as RESP arrays (the
 * reply functions write a request's framing too), and are parsed again.
 */
static enum session_verdict exec(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now)
{
    (void)args, (void)argc;
    if (!session->in_multi) {
        reply_error(&session->out, "ERR EXEC without MULTI");
        return SESSION_OPEN;
    }
    if (session->multi_failed) {
        end_multi(session);
        reply_error(&session->out, "EXECABORT Transaction discarded because of previous errors.");
        return SESSION_OPEN;
    }
    struct outbuf queued = session->queued;
    size_t count = session->queued_count;
    session->queued = (struct outbuf)OUTBUF_EMPTY;
    end_multi(session);
    reply_array(&session->out, count);
    struct resp_arg queued_args[COMMANDS_ARGS_MAX];
    struct resp_limits limits = {COMMANDS_ARGS_MAX, SIZE_MAX / 2, SIZE_MAX / 2};
    enum session_verdict verdict = SESSION_OPEN;
    size_t pos = 0;
    for (size_t i = 0; i < count && verdict == SESSION_OPEN; i++) {
        size_t queued_argc = 0, took = 0;
        char why[80];
        if (resp_parse(outbuf_data(&queued) + pos, outbuf_pending(&queued) - pos, &limits, queued_args,
                       &queued_argc, &took, why, sizeof why) != RESP_REQUEST)
            break; /* cannot be: it was written here, well formed */
        pos += took;
        verdict = dispatch(session, queued_args, queued_argc, now);
    }
    outbuf_release(&queued);
    return verdict;
}

/* Between MULTI and EXEC: keeps a copy of the command for EXEC, within --max-query, and says QUEUED. */
static void queue(struct session *session, const struct resp_arg *args, size_t argc)
{
    size_t size = 16;
    for (size_t i = 0; i < argc; i++)
        size += args[i].len + 24;
    if (outbuf_pending(&session->queued) + size > session->limits->max_query) {
        session->multi_failed = true;
        reply_error(&session->out, "ERR MULTI queue over --max-query bytes: the transaction is discarded");
        return;
    }
    reply_array(&session->queued, argc);
    for (size_t i = 0; i < argc; i++)
        reply_bulk(&session->queued, args[i].bytes, args[i].len);
    if (outbuf_failed(&session->queued)) {
        session->multi_failed = true;
        reply_error(&session->out, "ERR out of memory");
        return;
    }
    session->queued_count++;
    reply_simple(&session->out, "QUEUED");
}

/* The table of every command, at the end of the file: COMMAND reads it. */
static const struct command *every_command(void);

static size_t command_count(const struct command *table)
{
    size_t n = 0;
    while (table[n].name != NULL)
        n++;
    return n;
}

/* One argument's docs, from "name:type[:flag,flag]": a map that redis-cli reads for its hints. */
static void document_argument(struct session *session, const char *spec, size_t len)
{
    struct outbuf *out = &session->out;
    const char *colon = memchr(spec, ':', len);
    const char *second = memchr(colon + 1, ':', len - (size_t)(colon + 1 - spec));
    const char *type_end = second != NULL ? second : spec + len;
    reply_map(out, session->resp, second != NULL ? 3 : 2);
    reply_bulk_text(out, "name");
    reply_bulk(out, spec, (size_t)(colon - spec));
    reply_bulk_text(out, "type");
    reply_bulk(out, colon + 1, (size_t)(type_end - colon - 1));
    if (second == NULL)
        return;
    reply_bulk_text(out, "flags");
    size_t flags = 1;
    for (const char *c = second + 1; c < spec + len; c++)
        flags += *c == ',';
    reply_array(out, flags);
    for (const char *flag = second + 1; flag < spec + len;) {
        const char *comma = memchr(flag, ',', (size_t)(spec + len - flag));
        const char *flag_end = comma != NULL ? comma : spec + len;
        char text[32];
        snprintf(text, sizeof text, "%.*s", (int)(flag_end - flag), flag);
        reply_simple(out, text); /* simple strings: redis-cli stops at a bulk string here */
        flag = flag_end + 1;
    }
}

/* A command's docs: summary, since, group, and its arguments or its subcommands. */
static void document(struct session *session, const struct command *command)
{
    struct outbuf *out = &session->out;
    size_t specs = 0;
    for (const char *c = command->arguments; *c != '\0'; c++)
        specs += (c == command->arguments || c[-1] == ' ') && *c != ' ';
    reply_map(out, session->resp, 3 + (specs > 0) + (command->subcommands != NULL));
    reply_bulk_text(out, "summary");
    reply_bulk_text(out, command->summary);
    reply_bulk_text(out, "since");
    reply_bulk_text(out, command->since);
    reply_bulk_text(out, "group");
    reply_bulk_text(out, command->group);
    if (specs > 0) {
        reply_bulk_text(out, "arguments");
        reply_array(out, specs);
        for (const char *spec = command->arguments; *spec != '\0';) {
            size_t len = strcspn(spec, " ");
            document_argument(session, spec, len);
            spec += len + (spec[len] == ' ');
        }
    }
    if (command->subcommands != NULL) {
        reply_bulk_text(out, "subcommands");
        reply_map(out, session->resp, command_count(command->subcommands));
        for (const struct command *sub = command->subcommands; sub->name != NULL; sub++) {
            reply_bulk_text(out, sub->name);
            document(session, sub);
        }
    }
}

/* A command's entry in COMMAND and COMMAND INFO, Redis 7's ten fields; no command here has keys. */
static void describe_command(struct session *session, const struct command *command)
{
    struct outbuf *out = &session->out;
    reply_array(out, 10);
    reply_bulk_text(out, command->name);
    reply_integer(out, command->arity);
    reply_array(out, 0);   /* flags */
    reply_integer(out, 0); /* first key, last key, step: none */
    reply_integer(out, 0);
    reply_integer(out, 0);
    reply_array(out, 0); /* ACL categories, tips, key specs */
    reply_array(out, 0);
    reply_array(out, 0);
    reply_array(out, command->subcommands != NULL ? command_count(command->subcommands) : 0);
    for (const struct command *sub = command->subcommands; sub != NULL && sub->name != NULL; sub++)
        describe_command(session, sub);
}

/* The command a name names, in the main table, or for "container|sub" in its container's; NULL if none. */
static const struct command *named(const struct resp_arg *name)
{
    const char *bar = memchr(name->bytes, '|', name->len);
    struct resp_arg first = {name->bytes, bar != NULL ? (size_t)(bar - name->bytes) : name->len};
    const struct command *command = look_up(every_command(), &first);
    if (bar == NULL || command == NULL || command->subcommands == NULL)
        return bar == NULL ? command : NULL;
    struct resp_arg sub = {bar + 1, name->len - first.len - 1};
    return look_up(command->subcommands, &sub);
}

/* COMMAND: every command's entry. */
static enum session_verdict command_all(struct session *session, const struct resp_arg *args, size_t argc,
                                        long long now)
{
    (void)args, (void)argc, (void)now;
    reply_array(&session->out, command_count(every_command()));
    for (const struct command *c = every_command(); c->name != NULL; c++)
        describe_command(session, c);
    return SESSION_OPEN;
}

/* COMMAND COUNT */
static enum session_verdict command_total(struct session *session, const struct resp_arg *args, size_t argc,
                                          long long now)
{
    (void)args, (void)argc, (void)now;
    reply_integer(&session->out, (long long)command_count(every_command()));
    return SESSION_OPEN;
}

/* COMMAND INFO [name ...]: the entry of each, null for a name that is no command; every command's without. */
static enum session_verdict command_info(struct session *session, const struct resp_arg *args, size_t argc,
                                         long long now)
{
    if (argc == 2)
        return command_all(session, args, argc, now);
    reply_array(&session->out, argc - 2);
    for (size_t i = 2; i < argc; i++) {
        const struct command *c = named(&args[i]);
        if (c != NULL)
            describe_command(session, c);
        else
            reply_null(&session->out, session->resp);
    }
    return SESSION_OPEN;
}

/* COMMAND DOCS [name ...]: the docs of each command named that exists, or of every command. */
static enum session_verdict command_docs(struct session *session, const struct resp_arg *args, size_t argc,
                                         long long now)
{
    (void)now;
    size_t found = 0;
    for (size_t i = 2; i < argc; i++)
        found += named(&args[i]) != NULL;
    reply_map(&session->out, session->resp, argc == 2 ? command_count(every_command()) : found);
    for (const struct command *c = every_command(); argc == 2 && c->name != NULL; c++) {
        reply_bulk_text(&session->out, c->name);
        document(session, c);
    }
    for (size_t i = 2; i < argc; i++) {
        const struct command *c = named(&args[i]);
        if (c == NULL)
            continue;
        reply_bulk_text(&session->out, c->name);
        document(session, c);
    }
    return SESSION_OPEN;
}

static const struct command client_commands[] = {
    {"client|setname", 3, 0, client_setname, NULL, "Sets the connection name.", "2.6.9", "connection",
     "connection-name:string"},
    {"client|getname", 2, 0, client_getname, NULL, "Returns the name of the connection.", "2.6.9",
     "connection", ""},
    {"client|id", 2, 0, client_id, NULL, "Returns the unique client ID of the connection.", "5.0.0",
     "connection", ""},
    {"client|list", -2, 0, client_list, NULL, "Lists open connections.", "2.4.0", "connection", ""},
    {"client|setinfo", 4, 0, client_setinfo, NULL, "Sets information specific to the client or connection.",
     "7.2.0", "connection", "attr:string value:string"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static const struct command command_commands[] = {
    {"command|count", 2, 0, command_total, NULL, "Returns a count of commands.", "2.8.13", "server", ""},
    {"command|docs", -2, 0, command_docs, NULL,
     "Returns documentary information about one, multiple or all "
     "commands.",
     "7.0.0", "server", "command-name:string:optional,multiple"},
    {"command|info", -2, 0, command_info, NULL, "Returns information about one, multiple or all commands.",
     "2.8.13", "server", "command-name:string:optional,multiple"},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static const struct command commands[] = {
    {"ping", -1, SUBSCRIBED, ping, NULL, "Returns the server's liveliness response.", "1.0.0", "connection",
     "message:string:optional"},
    {"echo", 2, 0, echo, NULL, "Returns the given string.", "1.0.0", "connection", "message:string"},
    {"time", 1, 0, time_now, NULL, "Returns the server time.", "2.6.0", "server", ""},
    {"quit", -1, SUBSCRIBED | AT_ONCE, quit, NULL, "Closes the connection.", "1.0.0", "connection", ""},
    {"exit", 1, SUBSCRIBED | AT_ONCE, leave, NULL, "Closes the connection without a reply (the original's).",
     "1.0.0", "connection", ""},
    {"hello", -1, 0, hello, NULL, "Handshakes with the server.", "6.0.0", "connection",
     "protover:integer:optional"},
    {"client", -2, 0, NULL, client_commands, "A container for client connection commands.", "2.4.0",
     "connection", ""},
    {"command", -1, 0, command_all, command_commands, "Returns detailed information about all commands.",
     "2.8.13", "server", ""},
    {"info", -1, 0, info, NULL, "Returns information and statistics about the server.", "1.0.0", "server",
     "section:string:optional,multiple"},
    {"subscribe", -2, SUBSCRIBED, subscribe, NULL, "Listens for messages published to channels.", "2.0.0",
     "pubsub", "channel:string:multiple"},
    {"unsubscribe", -1, SUBSCRIBED, unsubscribe, NULL, "Stops listening to messages posted to channels.",
     "2.0.0", "pubsub", "channel:string:optional,multiple"},
    {"publish", 3, 0, publish, NULL, "Posts a message to a channel.", "2.0.0", "pubsub",
     "channel:string message:string"},
    {"debug", -2, SLOW, debug, NULL, "A container for debugging commands (here: DEBUG SLEEP seconds).",
     "1.0.0", "server", ""},
    {"primes", 2, SLOW, primes, NULL, "Returns the number of primes below n, computed off the event loop.",
     "1.0.0", "server", "n:integer"},
    {"multi", 1, AT_ONCE, multi, NULL, "Starts a transaction.", "1.2.0", "transactions", ""},
    {"exec", 1, AT_ONCE, exec, NULL, "Executes all commands in a transaction.", "1.2.0", "transactions", ""},
    {"discard", 1, AT_ONCE, discard, NULL, "Discards a transaction.", "2.0.0", "transactions", ""},
    {NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static const struct command *every_command(void)
{
    return commands;
}

/*
 * "ERR unknown command 'x', with args beginning with: 'a' 'b' ", as Redis
 * words it: the name cut at 128 bytes, and the arguments while they take
 * fewer than 128 bytes in all, each cut to what is left of the 128.
 */
static void unknown(struct session *session, const struct resp_arg *args, size_t argc)
{
    char shown[160] = "";
    size_t used = 0;
    for (size_t i = 1; i < argc && used < 128; i++) {
        size_t room = 128 - used;
        int n = snprintf(shown + used, sizeof shown - used, "'%.*s' ",
                         (int)(args[i].len < room ? args[i].len : room), args[i].bytes);
        if (n < 0)
            break;
        used += (size_t)n < sizeof shown - used ? (size_t)n : sizeof shown - used - 1;
    }
    reply_error(&session->out, "ERR unknown command '%.*s', with args beginning with: %s", SHOWN(args[0]),
                shown);
}

/* The command a request names (for a container, its subcommand), or NULL after replying with the error. */
static const struct command *find(struct session *session, const struct resp_arg *args, size_t argc)
{
    const struct command *command = look_up(commands, &args[0]);
    if (command == NULL) {
        unknown(session, args, argc);
        return NULL;
    }
    if (command->subcommands != NULL && argc >= 2) {
        const struct command *sub = look_up(command->subcommands, &args[1]);
        if (sub == NULL) {
            char container[16]; /* "CLIENT": the name, in capitals */
            size_t i = 0;
            for (; command->name[i] != '\0' && i < sizeof container - 1; i++)
                container[i] = (char)toupper((unsigned char)command->name[i]);
            container[i] = '\0';
            reply_error(&session->out, "ERR unknown subcommand '%.*s'. Try %s HELP.", SHOWN(args[1]),
                        container);
            return NULL;
        }
        command = sub;
    }
    if ((command->arity > 0 && argc != (size_t)command->arity) ||
        (command->arity < 0 && argc < (size_t)-command->arity)) {
        wrong_arity(session, command->name);
        return NULL;
    }
    return command;
}

/* Runs a request at once: what EXEC does for each queued command, and command_run() for the rest. */
static enum session_verdict dispatch(struct session *session, const struct resp_arg *args, size_t argc,
                                     long long now)
{
    const struct command *command = find(session, args, argc);
    snprintf(session->last_command, sizeof session->last_command, "%s", command ? command->name : "NULL");
    if (command == NULL)
        return SESSION_OPEN;
    if (session->channel_count > 0 && session->resp == RESP2 && !(command->flags & SUBSCRIBED)) {
        reply_error(
            &session->out,
            "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
            "allowed in this context",
            command->name);
        return SESSION_OPEN;
    }
    return command->run(session, args, argc, now);
}

/* Between MULTI and EXEC: a command is queued, or run at once (EXEC, DISCARD, MULTI, QUIT); an error spoils
 * EXEC. */
static enum session_verdict in_transaction(struct session *session, const struct resp_arg *args, size_t argc,
                                           long long now)
{
    const struct command *command = find(session, args, argc);
    if (command == NULL) {
        session->multi_failed = true; /* EXEC will say EXECABORT, as Redis does */
        return SESSION_OPEN;
    }
    if (command->flags & AT_ONCE)
        return dispatch(session, args, argc, now);
    if (command->flags & SLOW) {
        /* A transaction's replies are one array, made at EXEC at once: a job's reply cannot be in it. */
        reply_error(&session->out, "ERR Command not allowed inside a transaction");
        session->multi_failed = true;
        return SESSION_OPEN;
    }
    queue(session, args, argc);
    return SESSION_OPEN;
}

enum session_verdict command_run(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now)
{
    /*
     * A web page can make a browser send bytes to any port: an HTTP request
     * whose lines would be inline commands. Redis drops a client that
     * sends POST or Host: at once, with nothing more said, and so does this
     * server (lesson 08 serves browsers on a port of their own).
     */
    if (is(&args[0], "post") || is(&args[0], "host:")) {
        session->broken = "sent POST or Host: as a web browser does, dropped (a cross-protocol attack?)";
        return SESSION_OPEN;
    }
    session->requests++;
    session->hub->commands_processed++;
    session->last_request = now;
    if (session->in_multi)
        return in_transaction(session, args, argc, now);
    return dispatch(session, args, argc, now);
}
