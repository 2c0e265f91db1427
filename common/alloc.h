/*
 * The one allocation shim (curl's curl_setup.h, Redis's sdsalloc.h). All our
 * heap memory goes through these so tests can make the Nth allocation fail
 * (dd_alloc_fail_at) and check that every error path cleans up.
 */
#ifndef DD_COMMON_ALLOC_H
#define DD_COMMON_ALLOC_H

#include <stddef.h>

void *dd_malloc(size_t size);
void *dd_calloc(size_t n, size_t size);
void *dd_realloc(void *p, size_t size);
/* reallocarray: fails (NULL, errno ENOMEM) if n * size overflows. */
void *dd_reallocarray(void *p, size_t n, size_t size);
char *dd_strdup(const char *s);
/* Aligned allocation, freed with dd_free. */
void *dd_aligned_alloc(size_t alignment, size_t size);
void dd_free(void *p);

/*
 * Makes room for at least `need` elements of `size` bytes in *array, whose
 * capacity is *cap (doubling, from 16). On failure nothing changes and
 * -ENOMEM is returned.
 */
int dd_array_reserve(void **array, size_t *cap, size_t need, size_t size);
#define DD_ARRAY_RESERVE(arr, cap, need)                                                           \
    dd_array_reserve((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* Tests: make the n-th allocation from now (1-based) fail; 0 disables. */
void dd_alloc_fail_at(unsigned long n);
/* Tests: number of allocations made through the shim so far. */
unsigned long dd_alloc_count(void);

/* For _dd_cleanup_: frees *(void **)p. */
void dd_freep(void *p);

#endif
