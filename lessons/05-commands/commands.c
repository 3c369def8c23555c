/*
 * commands.c - see commands.h. A table names each command, how many
 * arguments it takes and whether a subscriber may run it; one small
 * function per command writes its reply. Names are matched without
 * regard to case, as Redis does. Errors are worded as Redis words them,
 * so that redis-cli and client libraries understand them.
 */
#include "commands.h"

#include "reply.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef enum session_verdict (*command_fn)(struct session *session, const struct resp_arg *args, size_t argc,
                                           long long now, struct outbuf *out);

struct command {
    const char *name;  /* in lower case, as errors show it */
    int arity;         /* n: exactly n arguments, the name included; -n: at least n */
    bool in_subscribe; /* allowed while the client is subscribed to a channel */
    command_fn run;
};

/* Whether the argument is this word, in any case. */
static bool is(const struct resp_arg *arg, const char *word)
{
    return arg->len == strlen(word) && strncasecmp(arg->bytes, word, arg->len) == 0;
}

/* An argument as "%.*s" wants it: at most 128 bytes, as Redis quotes them. */
#define SHOWN(arg) (int)((arg).len < 128 ? (arg).len : 128), (arg).bytes

static enum session_verdict wrong_arity(struct outbuf *out, const char *name)
{
    reply_error(out, "ERR wrong number of arguments for '%s' command", name);
    return SESSION_OPEN;
}

/* PING [message]: +PONG, or the message. A subscriber gets ["pong", message], as in Redis. */
static enum session_verdict ping(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now, struct outbuf *out)
{
    (void)now;
    if (argc > 2)
        return wrong_arity(out, "ping");
    if (session->channel_count > 0) {
        reply_array(out, 2);
        reply_bulk(out, "pong", 4);
        reply_bulk(out, argc == 2 ? args[1].bytes : "", argc == 2 ? args[1].len : 0);
    } else if (argc == 2) {
        reply_bulk(out, args[1].bytes, args[1].len);
    } else {
        reply_simple(out, "PONG");
    }
    return SESSION_OPEN;
}

/* ECHO message: the message, byte for byte. */
static enum session_verdict echo(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now, struct outbuf *out)
{
    (void)session, (void)argc, (void)now;
    reply_bulk(out, args[1].bytes, args[1].len);
    return SESSION_OPEN;
}

/* TIME: [seconds, microseconds] since 1970, as two bulk strings. */
static enum session_verdict time_now(struct session *session, const struct resp_arg *args, size_t argc,
                                     long long now, struct outbuf *out)
{
    (void)args, (void)argc, (void)now;
    long long us = session->hub->wall_clock_us();
    char seconds[24], micros[24];
    snprintf(seconds, sizeof seconds, "%lld", us / 1000000);
    snprintf(micros, sizeof micros, "%lld", us % 1000000);
    reply_array(out, 2);
    reply_bulk_text(out, seconds);
    reply_bulk_text(out, micros);
    return SESSION_OPEN;
}

/* QUIT: +OK, then the server closes the connection. */
static enum session_verdict quit(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now, struct outbuf *out)
{
    (void)session, (void)args, (void)argc, (void)now;
    reply_simple(out, "OK");
    return SESSION_DONE;
}

/* exit: the original protocol's goodbye; the connection closes without a reply. */
static enum session_verdict leave(struct session *session, const struct resp_arg *args, size_t argc,
                                  long long now, struct outbuf *out)
{
    (void)session, (void)args, (void)argc, (void)now, (void)out;
    return SESSION_DONE;
}

/* A client's name: printable, no spaces (CLIENT LIST separates fields with them), at most SESSION_NAME_MAX.
 */
static bool valid_name(const struct resp_arg *name)
{
    if (name->len > SESSION_NAME_MAX)
        return false;
    for (size_t i = 0; i < name->len; i++)
        if (name->bytes[i] < '!' || name->bytes[i] > '~')
            return false;
    return true;
}

/* One line of CLIENT LIST about one session, appended to out. */
static void describe(const struct session *s, long long now, struct outbuf *out)
{
    char line[256];
    int len = snprintf(line, sizeof line, "id=%llu addr=%s name=%s age=%lld idle=%lld sub=%zu cmd=%s\n",
                       s->id, s->peer, s->name, (now - s->started) / 1000, (now - s->last_request) / 1000,
                       s->channel_count, s->last_command[0] != '\0' ? s->last_command : "NULL");
    if (len > 0)
        outbuf_append(out, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
}

/* CLIENT SETNAME name | GETNAME | ID | LIST */
static enum session_verdict client(struct session *session, const struct resp_arg *args, size_t argc,
                                   long long now, struct outbuf *out)
{
    static const struct {
        const char *name;
        size_t argc;
    } subcommands[] = {{"setname", 3}, {"getname", 2}, {"id", 2}, {"list", 2}};
    const char *sub = NULL;
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0] && sub == NULL; i++) {
        if (!is(&args[1], subcommands[i].name))
            continue;
        sub = subcommands[i].name;
        if (argc != subcommands[i].argc) {
            reply_error(out, "ERR wrong number of arguments for 'client|%s' command", sub);
            return SESSION_OPEN;
        }
    }
    if (sub == NULL) {
        reply_error(out, "ERR unknown subcommand '%.*s'. Try SETNAME, GETNAME, ID or LIST.", SHOWN(args[1]));
    } else if (strcmp(sub, "setname") == 0) {
        if (args[2].len > SESSION_NAME_MAX) {
            reply_error(out, "ERR Client names are limited to %d bytes", SESSION_NAME_MAX);
        } else if (!valid_name(&args[2])) {
            reply_error(out, "ERR Client names cannot contain spaces, newlines or special characters.");
        } else {
            memcpy(session->name, args[2].bytes, args[2].len);
            session->name[args[2].len] = '\0';
            reply_simple(out, "OK");
        }
    } else if (strcmp(sub, "getname") == 0) {
        if (session->name[0] == '\0')
            reply_null(out);
        else
            reply_bulk_text(out, session->name);
    } else if (strcmp(sub, "id") == 0) {
        reply_integer(out, (long long)session->id);
    } else {
        struct outbuf list = OUTBUF_EMPTY;
        for (const struct session *s = session->hub->first; s != NULL; s = s->next)
            describe(s, now, &list);
        reply_bulk(out, outbuf_data(&list) != NULL ? outbuf_data(&list) : "", outbuf_pending(&list));
        outbuf_release(&list);
    }
    return SESSION_OPEN;
}

/* INFO: the server's counters, as "name:value" lines under "# Server", Redis's format. */
static enum session_verdict info(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now, struct outbuf *out)
{
    (void)args, (void)argc;
    const struct hub *hub = session->hub;
    char text[512];
    int len = snprintf(text, sizeof text,
                       "# Server\r\n"
                       "uptime_in_seconds:%lld\r\n"
                       "connected_clients:%zu\r\n"
                       "total_connections_received:%llu\r\n"
                       "total_commands_processed:%llu\r\n"
                       "pubsub_channels:%zu\r\n"
                       "pubsub_messages_delivered:%llu\r\n",
                       (now - hub->started_ms) / 1000, hub->clients, hub->connections_received,
                       hub->commands_processed, hub->channel_count, hub->messages_delivered);
    reply_bulk(out, text, len > 0 ? (size_t)len : 0);
    return SESSION_OPEN;
}

/* The reply to (UN)SUBSCRIBE for one channel: [kind, channel, channels now subscribed]. */
static void confirm(struct outbuf *out, const char *kind, const char *name, size_t len, size_t count)
{
    reply_array(out, 3);
    reply_bulk_text(out, kind);
    if (name != NULL)
        reply_bulk(out, name, len);
    else
        reply_null(out);
    reply_integer(out, (long long)count);
}

/* SUBSCRIBE channel [channel ...]: one confirmation per channel; the client is now in subscribe mode. */
static enum session_verdict subscribe(struct session *session, const struct resp_arg *args, size_t argc,
                                      long long now, struct outbuf *out)
{
    (void)now;
    for (size_t i = 1; i < argc; i++) {
        if (hub_subscribe(session->hub, session, args[i].bytes, args[i].len) != 0) {
            reply_error(out, "ERR out of memory");
            continue;
        }
        confirm(out, "subscribe", args[i].bytes, args[i].len, session->channel_count);
    }
    return SESSION_OPEN;
}

/* UNSUBSCRIBE [channel ...]: from those channels, or from all; one confirmation each. */
static enum session_verdict unsubscribe(struct session *session, const struct resp_arg *args, size_t argc,
                                        long long now, struct outbuf *out)
{
    (void)now;
    for (size_t i = 1; i < argc; i++) {
        hub_unsubscribe(session->hub, session, args[i].bytes, args[i].len);
        confirm(out, "unsubscribe", args[i].bytes, args[i].len, session->channel_count);
    }
    if (argc == 1 && session->channel_count == 0)
        confirm(out, "unsubscribe", NULL, 0, 0); /* from nothing: Redis answers with a null channel */
    while (argc == 1 && session->channel_count > 0) {
        size_t len;
        const char *name = hub_channel_name(session->channels[0], &len);
        confirm(out, "unsubscribe", name, len, session->channel_count - 1); /* before the name is freed */
        hub_unsubscribe(session->hub, session, name, len);
    }
    return SESSION_OPEN;
}

/* PUBLISH channel message: the number of subscribers it reached. */
static enum session_verdict publish(struct session *session, const struct resp_arg *args, size_t argc,
                                    long long now, struct outbuf *out)
{
    (void)argc, (void)now;
    reply_integer(out, hub_publish(session->hub, args[1].bytes, args[1].len, args[2].bytes, args[2].len));
    return SESSION_OPEN;
}

static const struct command commands[] = {
    {"ping", -1, true, ping},
    {"echo", 2, false, echo},
    {"time", 1, false, time_now},
    {"quit", -1, true, quit},
    {"exit", 1, true, leave},
    {"client", -2, false, client},
    {"info", -1, false, info},
    {"subscribe", -2, true, subscribe},
    {"unsubscribe", -1, true, unsubscribe},
    {"publish", 3, false, publish},
};

/* "ERR unknown command 'x', with args beginning with: 'a' 'b' ", as Redis words it. */
static void unknown(const struct resp_arg *args, size_t argc, struct outbuf *out)
{
    char shown[160] = "";
    size_t used = 0;
    for (size_t i = 1; i < argc && used < 128; i++) {
        int n = snprintf(shown + used, sizeof shown - used, "'%.*s' ", SHOWN(args[i]));
        if (n < 0 || (size_t)n >= sizeof shown - used)
            break;
        used += (size_t)n;
    }
    reply_error(out, "ERR unknown command '%.*s', with args beginning with: %s", SHOWN(args[0]), shown);
}

enum session_verdict command_run(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now, struct outbuf *out)
{
    const struct command *command = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0] && command == NULL; i++)
        if (is(&args[0], commands[i].name))
            command = &commands[i];
    session->commands++;
    session->hub->commands_processed++;
    session->last_request = now;
    snprintf(session->last_command, sizeof session->last_command, "%s", command ? command->name : "NULL");
    if (command == NULL) {
        unknown(args, argc, out);
        return SESSION_OPEN;
    }
    if ((command->arity > 0 && argc != (size_t)command->arity) ||
        (command->arity < 0 && argc < (size_t)-command->arity))
        return wrong_arity(out, command->name);
    if (session->channel_count > 0 && !command->in_subscribe) {
        reply_error(out,
                    "ERR Can't execute '%s': only SUBSCRIBE / UNSUBSCRIBE / PING / QUIT are allowed in this "
                    "context",
                    command->name);
        return SESSION_OPEN;
    }
    return command->run(session, args, argc, now, out);
}
