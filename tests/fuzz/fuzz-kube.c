/*
 * Fuzz target for placement/kube's decoders of outside bytes: the watch
 * stream line splitter (the input cut into pieces at positions drawn from
 * it), each line as a watch event, the input as a list page and as a list
 * item / event object of every kind, the pod resolution, and the first
 * line as a Kubernetes quantity. Invariants: splitting does not depend on
 * where the pieces end; a refusal names what and changes nothing; an
 * applied object is cached once and a DELETED removes it; quantities
 * agree with their milli form.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "fuzz.h"
#include "placement/kube.h"

struct lines {
    size_t n, bytes;
};

static int count_line(void *ud, const char *line, size_t len)
{
    struct lines *l = ud;
    (void)line;
    l->n++;
    l->bytes += len;
    return 0;
}

static void check_counts(struct dd_kube *k, size_t most)
{
    size_t c[DD_KUBE_KINDS];
    dd_kube_counts(k, c);
    for (size_t i = 0; i < DD_KUBE_KINDS; i++)
        CHECK(c[i] <= most);
}

/* Applies obj as every kind, checks, resolves, deletes. */
static void apply_all(struct dd_kube *k, const json_t *obj)
{
    char err[256];
    for (int kind = 0; kind < DD_KUBE_KINDS; kind++) {
        size_t before[DD_KUBE_KINDS], after[DD_KUBE_KINDS];
        dd_kube_counts(k, before);
        err[0] = '\0';
        int r = dd_kube_apply(k, (enum dd_kube_kind)kind, DD_KUBE_ADDED, obj, err, sizeof(err));
        dd_kube_counts(k, after);
        if (r < 0) {
            CHECK(r == DD_E_PARSE || r == DD_E_RANGE || r == -ENOMEM);
            CHECK(err[0] != '\0');
            CHECK(memcmp(before, after, sizeof(before)) == 0);
            continue;
        }
        CHECK(after[kind] <= before[kind] + 1);
        CHECK(dd_kube_apply(k, (enum dd_kube_kind)kind, DD_KUBE_DELETED, obj, err, sizeof(err)) ==
              0);
    }
    check_counts(k, 0);
    static struct dd_kube_pod out;
    err[0] = '\0';
    if (dd_kube_pod_resolve(k, obj, &out, err, sizeof(err)) == 0) {
        CHECK(out.n_claims <= DD_KUBE_MAX_CLAIMS);
        CHECK(out.name[0] && out.ns[0] && out.gpus >= 0);
    } else {
        CHECK(err[0] != '\0');
    }
}

static int on_line(void *ud, const char *line, size_t len)
{
    struct dd_kube *k = ud;
    struct dd_kube_watch_event ev;
    char err[256] = "";
    if (dd_kube_watch_event_decode(line, len, &ev, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(json_is_object(ev.object));
    CHECK(strlen(ev.rv) < DD_KUBE_MAX_RV);
    apply_all(k, ev.object);
    dd_kube_watch_event_release(&ev);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct dd_kube *k;
    struct dd_kube_lines l;
    struct lines whole = {0}, pieces = {0};
    const char *gpu[] = {"nvidia.com/gpu", "nvidia.com/mig-1g.10gb"};

    if (size > (1u << 20))
        return 0;
    CHECK(dd_kube_new(&k, gpu, 2) == 0);

    /* the splitter: whole, then in pieces cut where the bytes say */
    dd_kube_lines_init(&l, 1u << 20);
    CHECK(dd_kube_lines_feed(&l, text, size, count_line, &whole) == 0);
    size_t pending = dd_kube_lines_pending(&l);
    dd_kube_lines_release(&l);
    dd_kube_lines_init(&l, 1u << 20);
    for (size_t off = 0; off < size;) {
        size_t n = 1 + (data[off] % 7u);
        n = DD_MIN(n, size - off);
        CHECK(dd_kube_lines_feed(&l, text + off, n, count_line, &pieces) == 0);
        off += n;
    }
    CHECK(whole.n == pieces.n && whole.bytes == pieces.bytes);
    CHECK(dd_kube_lines_pending(&l) == pending);
    dd_kube_lines_release(&l);

    /* every line as a watch event */
    dd_kube_lines_init(&l, 1u << 20);
    dd_kube_lines_feed(&l, text, size, on_line, k);
    dd_kube_lines_release(&l);

    /* the whole input as a list page and as one object */
    char rv[DD_KUBE_MAX_RV], cont[DD_KUBE_MAX_CONTINUE], err[256] = "";
    size_t refused = 0;
    for (int kind = 0; kind < DD_KUBE_KINDS; kind++) {
        dd_kube_relist_begin(k, (enum dd_kube_kind)kind);
        if (dd_kube_apply_list_page(k, (enum dd_kube_kind)kind, text, size, rv, sizeof(rv), cont,
                                    sizeof(cont), &refused, err, sizeof(err)) < 0)
            CHECK(err[0] != '\0');
        dd_kube_relist_end(k, (enum dd_kube_kind)kind);
        /* an empty relist removes whatever the page added */
        dd_kube_relist_begin(k, (enum dd_kube_kind)kind);
        dd_kube_relist_end(k, (enum dd_kube_kind)kind);
    }
    check_counts(k, 0);
    json_t *doc = json_loadb(text, size, 0, NULL);
    if (doc) {
        apply_all(k, doc);
        json_decref(doc);
    }

    /* the first line as a quantity */
    char q[80];
    size_t n = 0;
    while (n < size && n < sizeof(q) - 1 && data[n] != '\n' && data[n] != '\0') {
        q[n] = text[n];
        n++;
    }
    q[n] = '\0';
    uint64_t v = 7, m = 7;
    int a = dd_kube_quantity(q, &v), b = dd_kube_quantity_milli(q, &m);
    CHECK(a == 0 || a == DD_E_PARSE || a == DD_E_RANGE);
    CHECK(b == 0 || b == DD_E_PARSE || b == DD_E_RANGE);
    CHECK((a == DD_E_PARSE) == (b == DD_E_PARSE));
    if (a < 0)
        CHECK(v == 7);
    if (a == 0 && b == 0 && v < UINT64_MAX / 1000) {
        /* v = ceil(x), m = ceil(1000 x) */
        CHECK(m <= v * 1000u);
        CHECK(v == 0 ? m == 0 : m > (v - 1) * 1000u);
    }
    dd_kube_free(k);
    return 0;
}
