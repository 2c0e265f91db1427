/*
 * A list of owned C strings: the push-a-copy / sort / free loop that device
 * listings, directory walks and column-family names each wrote by hand
 * (git's string-list.h, much reduced).
 *
 * Invariants: v[0..n) are distinct allocations from the common/alloc.h
 * shim, each owned by the list; v itself is a dd_malloc'd array (NULL while
 * nothing was pushed). A failed push leaves the list as it was. Order is
 * push order until dd_strlist_sort. Duplicates are kept.
 *
 * The array can be handed on as a plain `char **` plus count with
 * dd_strlist_take (the shape of dd_vdo_source_list's reply); whoever holds
 * it then frees it with dd_strv_free. Not thread-safe.
 */
#ifndef DD_COMMON_STRLIST_H
#define DD_COMMON_STRLIST_H

#include <stddef.h>
#include <sys/types.h>

struct dd_strlist {
    char **v;   /* owned strings, n of them */
    size_t n;   /* strings held */
    size_t cap; /* room in v */
};

#define DD_STRLIST_INIT                                                                            \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Appends a copy of s. 0 or -ENOMEM. */
int dd_strlist_push(struct dd_strlist *l, const char *s);
/* Sorts by strcmp (byte order: stable across locales). */
void dd_strlist_sort(struct dd_strlist *l);
/* Index of the first string equal to s, or -ENOENT. */
ssize_t dd_strlist_find(const struct dd_strlist *l, const char *s);
/* Frees every string and the array; the list is empty and reusable. */
void dd_strlist_release(struct dd_strlist *l);

/* Hands the array over (the caller frees it with dd_strv_free) and leaves
 * the list empty. *ret_n gets the count; NULL when the list is empty. */
char **dd_strlist_take(struct dd_strlist *l, size_t *ret_n);
/* Frees n strings and the array (NULL accepted); returns NULL. */
char **dd_strv_free(char **v, size_t n);

#endif
