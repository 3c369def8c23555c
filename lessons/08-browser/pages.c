/*
 * pages.c - see pages.h. The table below is the whole of what the web
 * listener can serve: a file the page needs is one more line here.
 */
#include "pages.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most one file may hold: the page is a few kilobytes, and a wrong folder must not fill the memory. */
#define MAX_PAGE_BYTES (1024 * 1024)

static const struct {
    const char *path, *file, *type;
} table[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/style.css", "style.css", "text/css; charset=utf-8"},
};
#define TABLE_SIZE (sizeof table / sizeof table[0])

/* Reads a whole file into *body. Returns 0, or -1 with the reason in err. */
static int read_file(const char *name, char **body, size_t *len, char *err, size_t err_len)
{
    FILE *file = fopen(name, "rb"); /* "b": Windows must not turn CRLF into LF, or the lengths lie */
    if (file == NULL) {
        snprintf(err, err_len, "cannot open %s: %s", name, strerror(errno));
        return -1;
    }
    int status = -1;
    size_t cap = 4096, used = 0;
    char *bytes = malloc(cap);
    while (bytes != NULL) {
        used += fread(bytes + used, 1, cap - used, file);
        if (used < cap)
            break; /* the end, or an error: ferror() tells */
        if (cap >= MAX_PAGE_BYTES) {
            snprintf(err, err_len, "%s is larger than %d bytes", name, MAX_PAGE_BYTES);
            goto out;
        }
        char *grown = realloc(bytes, cap * 2);
        if (grown == NULL)
            break;
        bytes = grown;
        cap *= 2;
    }
    if (bytes == NULL || ferror(file))
        snprintf(err, err_len, "cannot read %s%s", name, bytes == NULL ? ": out of memory" : "");
    else
        status = 0;
out:
    fclose(file);
    if (status != 0) {
        free(bytes);
        return -1;
    }
    *body = bytes;
    *len = used;
    return 0;
}

int pages_load(struct pages *pages, const char *dir, char *err, size_t err_len)
{
    pages->count = 0;
    pages->list = calloc(TABLE_SIZE, sizeof *pages->list);
    if (pages->list == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < TABLE_SIZE; i++) {
        char name[4096];
        snprintf(name, sizeof name, "%s/%s", dir, table[i].file);
        struct page *page = &pages->list[i];
        if (read_file(name, &page->body, &page->len, err, err_len) != 0) {
            pages_free(pages);
            return -1;
        }
        page->path = table[i].path;
        page->type = table[i].type;
        pages->count++;
    }
    return 0;
}

const struct page *pages_find(const struct pages *pages, const char *path)
{
    for (size_t i = 0; i < pages->count; i++)
        if (strcmp(pages->list[i].path, path) == 0)
            return &pages->list[i];
    return NULL;
}

void pages_free(struct pages *pages)
{
    for (size_t i = 0; i < pages->count; i++)
        free(pages->list[i].body);
    free(pages->list);
    pages->list = NULL;
    pages->count = 0;
}

void pages_folder_beside(const char *program, char *out, size_t out_len)
{
    const char *last = NULL; /* the last separator: Windows takes either */
    for (const char *p = program; *p != '\0'; p++)
        if (*p == '/' || *p == '\\')
            last = p;
    if (last == NULL)
        snprintf(out, out_len, "web");
    else
        snprintf(out, out_len, "%.*s/web", (int)(last - program), program);
}
