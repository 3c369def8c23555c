/*
 * cli.c - see cli.h.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *program_name = "program";

int parse_number(const char *text, long min, long max, long *value)
{
    /* strtol() alone accepts " 12", "+12", "12abc" and overflows silently. */
    if (text[0] < '0' || text[0] > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long parsed = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || parsed < min || parsed > max)
        return -1;
    *value = parsed;
    return 0;
}

int parse_port(const char *text, unsigned *port)
{
    long value;
    if (parse_number(text, 0, 65535, &value) != 0)
        return -1;
    *port = (unsigned)value;
    return 0;
}

/* Returns the value of option argv[*i] ("--port 80" or "--port=80"), or NULL. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t name_len = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, name_len) != 0)
        return NULL;
    if (arg[name_len] == '=')
        return arg + name_len + 1;
    if (arg[name_len] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

static int is_extra_flag(const char *arg, const struct extra_options *extra)
{
    for (size_t k = 0; k < extra->number_count; k++)
        if (strcmp(arg, extra->numbers[k].flag) == 0)
            return 1;
    for (size_t k = 0; k < extra->text_count; k++)
        if (strcmp(arg, extra->texts[k].flag) == 0)
            return 1;
    return 0;
}

/* Tries argv[*i] against the extra options. Returns 1 if it was one (and parsed), 0 if not, -1 on error. */
static int parse_extra(int argc, char **argv, int *i, const struct extra_options *extra, char *err,
                       size_t err_len)
{
    for (size_t k = 0; k < extra->number_count; k++) {
        const struct number_option *option = &extra->numbers[k];
        const char *value = option_value(argc, argv, i, option->flag);
        if (value == NULL)
            continue;
        if (parse_number(value, option->min, option->max, option->value) != 0) {
            snprintf(err, err_len, "invalid %s '%s': expected a number from %ld to %ld", option->flag, value,
                     option->min, option->max);
            return -1;
        }
        return 1;
    }
    for (size_t k = 0; k < extra->flag_count; k++) {
        if (strcmp(argv[*i], extra->flags[k].flag) == 0) {
            *extra->flags[k].value = true;
            return 1;
        }
    }
    for (size_t k = 0; k < extra->text_count; k++) {
        const char *value = option_value(argc, argv, i, extra->texts[k].flag);
        if (value == NULL)
            continue;
        if (value[0] == '\0') {
            snprintf(err, err_len, "%s needs a value", extra->texts[k].flag);
            return -1;
        }
        *extra->texts[k].value = value;
        return 1;
    }
    return 0;
}

enum parse_status parse_options(int argc, char **argv, struct options *opts,
                                const struct extra_options *extra, char *err, size_t err_len)
{
    static const struct extra_options none = {0};
    if (extra == NULL)
        extra = &none;
    opts->host = DEFAULT_HOST;
    snprintf(opts->port, sizeof opts->port, "%s", DEFAULT_PORT);
    opts->help = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        int found;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            opts->help = 1;
        } else if ((value = option_value(argc, argv, &i, "--host")) != NULL) {
            if (value[0] == '\0') {
                snprintf(err, err_len, "--host needs a name or an address");
                return PARSE_ERROR;
            }
            opts->host = value;
        } else if ((value = option_value(argc, argv, &i, "--port")) != NULL) {
            unsigned port;
            if (parse_port(value, &port) != 0) {
                snprintf(err, err_len, "invalid port '%s': expected a number from 0 to 65535", value);
                return PARSE_ERROR;
            }
            snprintf(opts->port, sizeof opts->port, "%u", port);
        } else if (strcmp(arg, "--host") == 0 || strcmp(arg, "--port") == 0) {
            snprintf(err, err_len, "%s needs a value", arg);
            return PARSE_ERROR;
        } else if ((found = parse_extra(argc, argv, &i, extra, err, err_len)) != 0) {
            if (found < 0)
                return PARSE_ERROR;
        } else if (is_extra_flag(arg, extra)) {
            snprintf(err, err_len, "%s needs a value", arg);
            return PARSE_ERROR;
        } else {
            snprintf(err, err_len, "unknown argument '%s'", arg);
            return PARSE_ERROR;
        }
    }
    return PARSE_OK;
}

static void print_message(const char *format, va_list args)
{
    fprintf(stderr, "%s: ", program_name);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
}

_Noreturn void usage_error(const char *usage, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    print_message(format, args);
    va_end(args);
    fputs(usage, stderr);
    exit(EXIT_USAGE);
}

_Noreturn void die(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    print_message(format, args);
    va_end(args);
    exit(EXIT_RUNTIME);
}
