/*
 * pages.h - the files of the page that the web listener serves: read once
 * at start from a folder, kept in memory, and found by the path a request
 * names.
 *
 * A request's path is never turned into a file name. The files served
 * are the ones named in a table in pages.c, and a request is answered
 * only when its path is one of those names: so "/../../etc/passwd", or
 * "/%2e%2e/server.key", finds nothing, whatever the folder holds. Reading
 * them at start keeps the disk off the event loop (a read there would
 * stall every client), and a missing file is said at once, not at the
 * first visit. Edit web/, restart the server, reload the page.
 */
#ifndef PAGES_H
#define PAGES_H

#include <stddef.h>

struct page {
    const char *path; /* what a request names: "/", "/app.js" */
    const char *type; /* its Content-Type */
    char *body;       /* the file's bytes, from malloc() */
    size_t len;
};

struct pages {
    struct page *list;
    size_t count;
};

/* Reads the table's files from dir. Returns 0, or -1 with the reason in err (and nothing to free). */
int pages_load(struct pages *pages, const char *dir, char *err, size_t err_len);

/* The page a request's path names, or NULL: a 404. */
const struct page *pages_find(const struct pages *pages, const char *path);

void pages_free(struct pages *pages);

/* The folder "web" beside the program (argv[0]: "./server" gives "./web", "server" gives "web"). */
void pages_folder_beside(const char *program, char *out, size_t out_len);

#endif
