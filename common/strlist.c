/*
 * The owned string list (strlist.h). Growth goes through dd_array_reserve,
 * so a push costs amortised O(1) and an allocation failure changes nothing.
 */
#include "common/strlist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

int dd_strlist_push(struct dd_strlist *l, const char *s)
{
    char *copy;

    if (DD_ARRAY_RESERVE(l->v, l->cap, l->n + 1) < 0)
        return -ENOMEM;
    copy = dd_strdup(s);
    if (!copy)
        return -ENOMEM;
    l->v[l->n++] = copy;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void dd_strlist_sort(struct dd_strlist *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

ssize_t dd_strlist_find(const struct dd_strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s) == 0)
            return (ssize_t)i;
    }
    return -ENOENT;
}

void dd_strlist_release(struct dd_strlist *l)
{
    dd_strv_free(l->v, l->n);
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
}

char **dd_strlist_take(struct dd_strlist *l, size_t *ret_n)
{
    char **v = l->v;

    *ret_n = l->n;
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
    return v;
}

char **dd_strv_free(char **v, size_t n)
{
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        dd_free(v[i]);
    dd_free(v);
    return NULL;
}
