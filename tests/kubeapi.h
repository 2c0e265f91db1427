/*
 * A Kubernetes API server for tests: the list/watch protocol of Pods,
 * PVCs, PVs, StorageClasses and Nodes (shared/reference/k8s/LIST-WATCH.md)
 * on an ephemeral 127.0.0.1 port, in the process that starts it, on
 * libmicrohttpd threads of its own (one per connection, so a watch may
 * block). Real JSON shapes: lists {"kind":"PodList","apiVersion":"v1",
 * "metadata":{"resourceVersion":RV,"continue":TOKEN},"items":[...]} with
 * items stripped of kind/apiVersion; watches as chunked lines
 * {"type":"ADDED","object":{...}}; errors as Status objects.
 *
 * Served: GET /api/v1/pods, /api/v1/persistentvolumeclaims,
 * /api/v1/persistentvolumes, /api/v1/nodes, /api/v1/namespaces,
 * /apis/storage.k8s.io/v1/storageclasses with limit, continue, watch,
 * resourceVersion, allowWatchBookmarks and timeoutSeconds (cluster-wide
 * only; namespaced paths are 404; fieldSelector only as spec.nodeName=NODE
 * on pods, else 400). Resource versions are opaque strings
 * ("rv.<n>.q"), one per change, shared by all kinds as in etcd. A watch
 * with an empty resourceVersion starts at the current version.
 *
 * Also served: coordination.k8s.io/v1 Leases in any namespace
 * (/apis/coordination.k8s.io/v1/namespaces/NS/leases: POST creates, 409
 * AlreadyExists when there; .../leases/NAME: GET, and PUT, which must
 * carry the metadata.resourceVersion last written, else 409 Conflict; a
 * Lease's versions are opaque strings of their own), and a pod's GET and
 * PATCH (/api/v1/namespaces/NS/pods/NAME; PATCH only as
 * application/merge-patch+json, else 415; the patched pod is a MODIFIED
 * event like tt_kubeapi_put).
 *
 * Test code changes objects with tt_kubeapi_put/delete: each change is a
 * watch event for the open watches of its kind and every later watch that
 * starts from an older version. The fault switches below inject what a
 * real API server and network do. All functions are thread-safe.
 *
 * Also used by the extender end-to-end test (daemons pointing --kube-api
 * at tt_kubeapi_url) and by bench/kube-bench.c. Links dd_placement (for
 * the kind enum and paths), jansson and libmicrohttpd.
 */
#ifndef DD_TESTS_KUBEAPI_H
#define DD_TESTS_KUBEAPI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "placement/kube.h"

struct tt_kubeapi;

/* Starts on 127.0.0.1, an ephemeral port. 0 or a negative errno. */
int tt_kubeapi_start(struct tt_kubeapi **ret);
/* "http://127.0.0.1:PORT" (valid until stop). */
const char *tt_kubeapi_url(const struct tt_kubeapi *s);
/* Ends every watch, stops and frees. NULL-safe. */
void tt_kubeapi_stop(struct tt_kubeapi *s);

/*
 * Adds or replaces an object (copied; metadata.name, and metadata.namespace
 * for pods and PVCs, required): an ADDED or MODIFIED event with a new
 * resourceVersion written into the object. Returns 0 or -EINVAL.
 */
int tt_kubeapi_put(struct tt_kubeapi *s, enum dd_kube_kind kind, const json_t *obj);
/* As put, but no watch event (state before any client came: fast bulk
 * loading for benchmarks). */
int tt_kubeapi_load(struct tt_kubeapi *s, enum dd_kube_kind kind, const json_t *obj);
/* Deletes (ns NULL for cluster-scoped kinds): a DELETED event carrying
 * the last state. 0 or -ENOENT. */
int tt_kubeapi_delete(struct tt_kubeapi *s, enum dd_kube_kind kind, const char *ns,
                      const char *name);
/* The current resourceVersion, copied into buf. */
void tt_kubeapi_rv(struct tt_kubeapi *s, char *buf, size_t len);

/* ---- faults ---- */

/* Lists answer at most n items a page (the client's limit still applies
 * when smaller); 0: only the client's limit. */
void tt_kubeapi_set_page_size(struct tt_kubeapi *s, unsigned n);
/* The next list request carrying a continue token is answered 410 Gone,
 * as when the token expired (once per call). */
void tt_kubeapi_expire_continue(struct tt_kubeapi *s);
/* Watch bytes go out in pieces of at most n bytes, one chunk each, so
 * chunk boundaries fall inside events; 0: whole events. */
void tt_kubeapi_set_split(struct tt_kubeapi *s, size_t n);
/* The next event of kind on each open watch is cut half way and the
 * connection closed (no final chunk). Counts once per call. */
void tt_kubeapi_cut_next_event(struct tt_kubeapi *s, enum dd_kube_kind kind);
/* A BOOKMARK for kind's watches at a new resourceVersion (watches that
 * asked for them). */
void tt_kubeapi_bookmark(struct tt_kubeapi *s, enum dd_kube_kind kind);
/* An ERROR event (Status, code 410, reason Expired) for kind's watches,
 * which then end. */
void tt_kubeapi_error_410(struct tt_kubeapi *s, enum dd_kube_kind kind);
/* History is compacted: a watch from any older resourceVersion is
 * refused with HTTP 410. */
void tt_kubeapi_compact(struct tt_kubeapi *s);
/* Open watches of kind end cleanly, as at the server's watch timeout. */
void tt_kubeapi_end_watches(struct tt_kubeapi *s, enum dd_kube_kind kind);
/* The next n Lease PUTs are answered 409 Conflict whatever their
 * resourceVersion (a concurrent writer got there first). */
void tt_kubeapi_lease_conflicts(struct tt_kubeapi *s, unsigned n);
/* Copies of a Lease and of a stored object (ns NULL for cluster-scoped
 * kinds); NULL when there is none. The caller decrefs. */
json_t *tt_kubeapi_lease(struct tt_kubeapi *s, const char *ns, const char *name);
json_t *tt_kubeapi_get(struct tt_kubeapi *s, enum dd_kube_kind kind, const char *ns,
                       const char *name);

/*
 * storage.k8s.io/v1 CSIStorageCapacities in any namespace
 * (/apis/storage.k8s.io/v1/namespaces/NS/csistoragecapacities): GET lists
 * (sorted by name) with labelSelector (equality terms k=v, comma-separated),
 * limit and continue (a bad token: 410); POST creates (metadata.name, or
 * generateName + a 5-digit suffix; 409 AlreadyExists; storageClassName
 * required, else 422); .../NAME: GET, PUT (must carry the resourceVersion
 * last written, else 409 Conflict; 404 when gone) and DELETE (404 when
 * gone). Versions "csc.<n>", opaque. Every accepted write is recorded.
 */
/* The next n PUTs are answered 409 whatever their resourceVersion. */
void tt_kubeapi_csc_conflicts(struct tt_kubeapi *s, unsigned n);
/* Copies of ns's objects, sorted by name (a new array). */
json_t *tt_kubeapi_cscs(struct tt_kubeapi *s, const char *ns);
/* Adds or replaces an object as another writer would (metadata.name and
 * namespace required): a new resourceVersion, not recorded as a write.
 * 0 or -EINVAL. */
int tt_kubeapi_csc_put(struct tt_kubeapi *s, const json_t *obj);
/* The accepted writes in order: a new array of {"op": "create" | "update"
 * | "delete", "name", "object"}. */
json_t *tt_kubeapi_csc_writes(struct tt_kubeapi *s);

/* Serves a copy of obj on GET at exactly path (e.g. an owner Deployment
 * at /apis/apps/v1/namespaces/NS/deployments/NAME); other methods 405. */
void tt_kubeapi_set_object(struct tt_kubeapi *s, const char *path, const json_t *obj);

/*
 * core v1 Events (/api/v1/namespaces/NS/events): POST creates (201; needs
 * metadata.name and an involvedObject in NS, else 422; 409 AlreadyExists
 * for a name taken), GET lists NS's. tt_kubeapi_events: copies of every
 * Event created, in order (a new array).
 */
json_t *tt_kubeapi_events(struct tt_kubeapi *s);

/* Requests must carry "Authorization: Bearer TOKEN" (else 401); NULL:
 * none needed. */
void tt_kubeapi_set_token(struct tt_kubeapi *s, const char *token);

struct tt_kubeapi_stats {
    unsigned long lists[DD_KUBE_KINDS];   /* first pages (a list started) */
    unsigned long pages[DD_KUBE_KINDS];   /* pages served */
    unsigned long watches[DD_KUBE_KINDS]; /* watches accepted */
    unsigned long open_watches[DD_KUBE_KINDS];
    unsigned long gone;            /* 410 answers (continue or watch) */
    unsigned long unauthorized;    /* 401 answers */
    unsigned long bookmarks_asked; /* watches with allowWatchBookmarks=true */
    unsigned long lease_updates;   /* Lease PUTs accepted */
    unsigned long lease_conflicts; /* Lease PUTs answered 409 (stale or forced) */
    unsigned long pod_patches;     /* pod PATCHes applied */
    unsigned long csc_creates, csc_updates, csc_deletes; /* CSIStorageCapacity writes */
    unsigned long csc_conflicts;                         /* CSIStorageCapacity PUTs answered 409 */
};
void tt_kubeapi_stats(struct tt_kubeapi *s, struct tt_kubeapi_stats *ret);

/*
 * Every request served since start, whatever its answer (401, 404 and 405
 * included, so a call this server does not implement still shows): a new
 * JSON array of {"verb", "method", "path", "count"}, one entry per distinct
 * Kubernetes verb and path (query left out). verb is RBAC's: get, list or
 * watch for GET (watch=1 or true), create (POST), update (PUT), patch,
 * delete or deletecollection. tests/deploy checks the deploy/ RBAC
 * against it.
 */
json_t *tt_kubeapi_requests(struct tt_kubeapi *s);

#endif
