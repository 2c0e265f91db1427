/*
 * Allocation shim. Counting is atomic so the shim works from worker threads;
 * failure injection is meant for single-threaded unit tests.
 */
#include "common/alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong alloc_count;
static atomic_ulong fail_at; /* absolute count at which to fail; 0 = never */

static int should_fail(void)
{
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    unsigned long f = atomic_load(&fail_at);
    if (f != 0 && n == f) {
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void dd_alloc_fail_at(unsigned long n)
{
    atomic_store(&fail_at, n == 0 ? 0 : atomic_load(&alloc_count) + n);
}

unsigned long dd_alloc_count(void)
{
    return atomic_load(&alloc_count);
}

void *dd_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size == 0 ? 1 : size);
}

void *dd_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *dd_realloc(void *p, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(p, size == 0 ? 1 : size);
}

void *dd_reallocarray(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return dd_realloc(p, n * size);
}

int dd_array_reserve(void **array, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap ? *cap : 16;
    void *p;

    if (need <= *cap)
        return 0;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -ENOMEM;
        c *= 2;
    }
    p = dd_reallocarray(*array, c, size);
    if (!p)
        return -ENOMEM;
    *array = p;
    *cap = c;
    return 0;
}

char *dd_strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *r = dd_malloc(len);
    if (r)
        memcpy(r, s, len);
    return r;
}

void *dd_aligned_alloc(size_t alignment, size_t size)
{
    void *p = NULL;
    if (should_fail())
        return NULL;
    if (posix_memalign(&p, alignment, size == 0 ? alignment : size) != 0)
        return NULL;
    return p;
}

void dd_free(void *p)
{
    free(p);
}

void dd_freep(void *p)
{
    void **pp = p;
    free(*pp);
    *pp = NULL;
}
