/*
 * commands.h - what each command does: the table of commands and their
 * replies, without any I/O. session.c parses a request and hands it here;
 * every reply goes to the session's own output. The commands, their
 * replies and their errors are in docs/protocol.md.
 */
#ifndef COMMANDS_H
#define COMMANDS_H

#include "resp.h"
#include "session.h"

#include <stddef.h>

/*
 * Runs one request of argc >= 1 arguments at now (or, between MULTI and
 * EXEC, queues it); appends its reply to the session's output. Returns the
 * verdict.
 */
enum session_verdict command_run(struct session *session, const struct resp_arg *args, size_t argc,
                                 long long now);

#endif
