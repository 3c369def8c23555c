/*
 * cli.h - command-line options and the way a program stops on an error.
 *
 * The parsers never exit: they return a status and leave the reason in
 * `err`. main() turns that into a message and an exit code with usage_error()
 * or die(), the only two places where the program ends on an error.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Exit codes, the same for every program of the course (see README.md). */
enum {
    EXIT_OK = 0,      /* done as asked */
    EXIT_RUNTIME = 1, /* the network said no: port in use, connection refused, server gone */
    EXIT_USAGE = 2,   /* a bad command line */
};

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT "9090"

struct options {
    const char *host; /* name or address to listen on or connect to */
    char port[8];     /* decimal port, checked to be 0..65535 */
    int help;         /* --help was given */
};

enum parse_status { PARSE_OK, PARSE_ERROR };

/* A whole-number option a program adds to --host and --port, such as the server's limits. */
struct number_option {
    const char *flag; /* "--max-clients" */
    long min, max;    /* the accepted range, inclusive */
    long *value;      /* holds the default; receives the parsed value */
};

/* An option a program adds that takes a word: a file's name, yes or no. */
struct text_option {
    const char *flag;   /* "--tls-cert-file" */
    const char **value; /* holds the default (NULL: none); receives the word, which points into argv */
};

/* An option a program adds that takes nothing: there, or not. */
struct flag_option {
    const char *flag; /* "--tls" */
    bool *value;      /* set true when it is given */
};

/* The options a program adds to --host and --port. */
struct extra_options {
    const struct number_option *numbers;
    size_t number_count;
    const struct text_option *texts;
    size_t text_count;
    const struct flag_option *flags;
    size_t flag_count;
};

/* Reads a port number: decimal digits only, 0 to 65535. Returns 0, or -1. */
int parse_port(const char *text, unsigned *port);

/* Reads a decimal whole number from min to max. Returns 0, or -1. */
int parse_number(const char *text, long min, long max, long *value);

/*
 * Fills opts from argv (defaults: DEFAULT_HOST, DEFAULT_PORT), and each of
 * the extra options (extra may be NULL). On PARSE_ERROR, err says why.
 */
enum parse_status parse_options(int argc, char **argv, struct options *opts,
                                const struct extra_options *extra, char *err, size_t err_len);

/* The name error messages start with ("server", "client"). */
extern const char *program_name;

/* Prints "program: message" and the usage to stderr; exits with EXIT_USAGE. */
_Noreturn void usage_error(const char *usage, const char *format, ...);

/* Prints "program: message" to stderr; exits with EXIT_RUNTIME. */
_Noreturn void die(const char *format, ...);

#endif
