/*
 * The scheduler extender end to end on loopback: three real `dedupd --role
 * node` processes (gpu-node-a, -b, -c, as in the reference payloads) replay
 * simulated VDO volumes and push reports to one real `dedupd --role
 * placement`, which watches the in-process test Kubernetes API server
 * (tests/kubeapi) holding the reference Nodes, StorageClass (with
 * dedupd.io/pool added), PVC, PV and Pod, and the pods and claims made here.
 *
 *   gpu-node-a  pool ml-dedup, light load: few writes, 32 idle cores
 *   gpu-node-b  pool ml-dedup, heavy load: 15x the writes, 10x the reads,
 *               half of 16 cores busy, compression, a 10x bigger index
 *   gpu-node-c  only pool bulk-c (not the pod's)
 * The replays are made at the daemons' cadence (--interval-seconds equal to
 * --interval), so a report's rates and VDO CPU-seconds are over the
 * interval it states. The placement role keeps the prior cost model (no
 * training) and answers stale nodes with --neutral-score 6.
 *
 * Checked, in order (one cmocka test each; they share the processes):
 *   ranking      POST /v1/placement for ml/trainer-0: a above b, with an
 *                explanation naming the pool, the model's source and
 *                version, report age, stale false, the ledger and the terms;
 *                b's terms show the contention; c unresolvable (no_pool);
 *   wire format  the reference filter and prioritize requests, both modes,
 *                compacted as kube-scheduler sends them, answered in the
 *                reference responses' exact shape; prioritize records a
 *                provisional ledger entry that the binding confirms and the
 *                pod's deletion removes;
 *   burst        10 GPU pods (1 GPU, 150 MB/s writes, 200 MB/s reads each)
 *                scored back to back (filter, then prioritize), each bound
 *                at once to its top node (ties: the first name): the ledger
 *                spreads them over a and b, b's first while a still has
 *                free GPUs, although each scored alone goes to a (no report
 *                shows a placed pod's I/O before it runs: without the
 *                ledger every pod would see the same view and pick a until
 *                its GPUs ran out);
 *   pod events   (--pod-events) a prioritize of a fresh pod posts exactly
 *                one core v1 Event on it (involvedObject, reason, type,
 *                source, a message naming its best node); a second
 *                prioritize within the window posts none;
 *   malformed    bad ExtenderArgs: filter 200 with Error, prioritize 400
 *                with a JSON error; a pod with dedupd.io/write-mbps "lots"
 *                is scored (the default profile) and its notes name it;
 *   restart      SIGTERM and restart of the placement role: the ledger comes
 *                back from the pod watch, the nodes from their pushes;
 *   stale        node b killed: after its bound, prioritize answers it the
 *                neutral score and /v1/placement says it is stale;
 *   watch faults the pod watch cut mid-event, the node watch ended by
 *                ERROR 410 (b's Node deleted meanwhile: b leaves
 *                /v1/cluster), the pod and PVC watches refused with HTTP 410
 *                (compacted history) while pods and claims are added:
 *                everything from before and after the faults is there.
 * Every wait is a bounded poll that fails when it runs out; nothing asserts
 * on wall-clock time.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "helpers.h"
#include "kubeapi.h"
#include "placement/kube.h"

#define TOKEN      "extender-test-token-0123456789"
#define KUBE_TOKEN "kube-api-token-for-the-extender-test"
#define POOL       "ml-dedup"
#define N_NODES    3
#define N_BURST    10
#define NEUTRAL    6
/* the node daemons' sampling interval and the placement's stale bound */
#define INTERVAL "0.5"
#define STALE    "2.5"
/* replay intervals, at INTERVAL seconds each: 80 s, far longer than the
 * checks that need the nodes' rates (ranking to burst: the first seconds
 * after the nodes start) take even on a loaded machine; at the replay's end
 * the last snapshot repeats and the rates read as zero */
#define REPLAY_INTERVALS 160
#define TRAINER_UID      "6f1c2a9e-3b7d-4c52-9e41-0a8d7f3b2c11"

struct daemon {
    pid_t pid;
    unsigned port;
    char log[4200];
};

static const char *const g_names[N_NODES] = {"gpu-node-a", "gpu-node-b", "gpu-node-c"};
static const char *const g_pools[N_NODES] = {POOL, POOL, "bulk-c"};
static char *g_root, *g_token_file, *g_kube_token_file, *g_pdata, *g_replay[N_NODES];
static struct tt_kubeapi *g_api;
static struct daemon g_place, g_nodes[N_NODES];
static char g_burst_node[N_BURST][32]; /* where each burst pod was bound */
static bool g_burst_done;

/* ---- processes ---- */

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void show_logs(void);

/* assert_string_equal that fails, not crashes, on a missing string */
#define assert_str(got, want)                                                                      \
    do {                                                                                           \
        const char *got_ = (got);                                                                  \
        if (!got_)                                                                                 \
            fail_msg("%s is missing (want \"%s\")", #got, want);                                   \
        assert_string_equal(got_, want);                                                           \
    } while (0)

/* Polls cond every 50 ms, at most 1200 times (a minute); fails naming what,
 * with the tails of the daemons' logs. */
#define WAIT_FOR(cond, ...)                                                                        \
    do {                                                                                           \
        int wait_i_;                                                                               \
        for (wait_i_ = 0; wait_i_ < 1200 && !(cond); wait_i_++)                                    \
            msleep(50);                                                                            \
        if (wait_i_ == 1200) {                                                                     \
            show_logs();                                                                           \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

static void show_log(const char *what, const struct daemon *d)
{
    char *text = d->log[0] ? tt_read_text(d->log) : NULL;
    if (!text)
        return;
    size_t len = strlen(text);
    printf("---- %s (%s), last lines:\n%s\n", what, d->log, text + (len > 3000 ? len - 3000 : 0));
    free(text);
}

static void show_logs(void)
{
    show_log("placement", &g_place);
    for (int i = 0; i < N_NODES; i++)
        show_log(g_names[i], &g_nodes[i]);
}

static void spawn(struct daemon *d, const char *const *argv)
{
    snprintf(d->log, sizeof(d->log), "%s/dedupd-%d.log", g_root, rand());
    d->pid = tt_daemon_fork(argv, d->log);
    d->port = tt_daemon_port(d->log, 1200);
    if (d->port)
        return;
    fail_msg("dedupd did not start (log %s)", d->log);
}

static int stop(struct daemon *d, int sig)
{
    int st = 0;
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* port 0: an ephemeral one */
static void start_placement(unsigned port)
{
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    const char *argv[] = {"dedupd",
                          "--role",
                          "placement",
                          "--listen",
                          listen,
                          "--data-dir",
                          g_pdata,
                          "--token-file",
                          g_token_file,
                          "--stale-after",
                          STALE,
                          "--neutral-score",
                          "6",
                          "--kube-api",
                          tt_kubeapi_url(g_api),
                          "--kube-token-file",
                          g_kube_token_file,
                          "--min-train-samples",
                          "100000000",
                          "--retrain-every",
                          "100000000",
                          "--pod-events",
                          "--pod-events-window",
                          "3600",
                          NULL};
    spawn(&g_place, argv);
}

static void start_node(int i)
{
    char data[4200], url[64], spec[4300], pool[96];
    snprintf(data, sizeof(data), "%s/node-%d", g_root, i);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", g_place.port);
    snprintf(spec, sizeof(spec), "replay:%s", g_replay[i]);
    snprintf(pool, sizeof(pool), "v0=%s", g_pools[i]);
    const char *argv[] = {"dedupd",     "--role",          "node",        "--node-name",
                          g_names[i],   "--listen",        "127.0.0.1:0", "--data-dir",
                          data,         "--source",        spec,          "--interval",
                          INTERVAL,     "--placement-url", url,           "--placement-token-file",
                          g_token_file, "--pool",          pool,          NULL};
    spawn(&g_nodes[i], argv);
}

/* ---- HTTP, as kube-scheduler speaks it ---- */

struct reply {
    long status;
    char *raw;   /* the body as sent */
    json_t *doc; /* parsed; NULL when not JSON */
};

/* With Content-Type: application/json (body NULL: none). */
static struct reply http(unsigned port, const char *method, const char *path, const char *body)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct reply r = {0};
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    struct tt_reply t = tt_http_headers(url, method, body, 0, 60, headers);
    r.status = t.status;
    r.raw = t.body;
    r.doc = json_loads(r.raw, 0, NULL);
    return r;
}

static void reply_free(struct reply *r)
{
    free(r->raw);
    json_decref(r->doc);
    memset(r, 0, sizeof(*r));
}

/* A JSON answer with status 200; fails otherwise. */
static json_t *get_ok(const char *path)
{
    struct reply r = http(g_place.port, "GET", path, NULL);
    if (r.status != 200 || !r.doc)
        fail_msg("GET %s: %ld %.300s", path, r.status, r.raw);
    json_t *doc = json_incref(r.doc);
    reply_free(&r);
    return doc;
}

/* POST a JSON value (compact, as Go's json.Marshal); the reply. */
static struct reply post(const char *path, const json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    assert_non_null(text);
    struct reply r = http(g_place.port, "POST", path, text);
    free(text);
    return r;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* o's string key contains needle (false when it is missing). */
static bool has(const json_t *o, const char *key, const char *needle)
{
    const char *s = str(o, key);
    return s && strstr(s, needle);
}

/* ---- objects ---- */

static json_t *fixture_json(const char *rel)
{
    size_t len;
    char *text = tt_fixture(rel, &len);
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    if (!doc)
        fail_msg("fixture %s: %s", rel, je.text);
    free(text);
    return doc;
}

static void put(enum dd_kube_kind kind, json_t *obj)
{
    assert_int_equal(tt_kubeapi_put(g_api, kind, obj), 0);
    json_decref(obj);
}

static json_t *pvc(const char *name, const char *size)
{
    return json_pack("{s:{s:s, s:s, s:s}, s:{s:[s], s:{s:{s:s}}, s:s}, s:{s:s}}", "metadata",
                     "name", name, "namespace", "ml", "uid", name, "spec", "accessModes",
                     "ReadWriteOnce", "resources", "requests", "storage", size, "storageClassName",
                     "vdo-dedup", "status", "phase", "Pending");
}

/* A pending GPU pod with one claim (its PVC made by the caller); node NULL:
 * not bound. write/read: annotation strings, NULL for none. */
static json_t *gpu_pod(const char *name, const char *claim, const char *node, const char *write,
                       const char *read)
{
    char uid[128];
    snprintf(uid, sizeof(uid), "uid-%s", name);
    json_t *ann = json_object();
    if (write)
        json_object_set_new(ann, "dedupd.io/write-mbps", json_string(write));
    if (read)
        json_object_set_new(ann, "dedupd.io/read-mbps", json_string(read));
    json_t *p = json_pack(
        "{s:{s:s, s:s, s:s, s:o}, s:{s:[{s:s, s:{s:s}}], s:[{s:s, s:s, s:{s:{s:s}}}]}, s:{s:s}}",
        "metadata", "name", name, "namespace", "ml", "uid", uid, "annotations", ann, "spec",
        "volumes", "name", "data", "persistentVolumeClaim", "claimName", claim, "containers",
        "name", "trainer", "image", "pytorch", "resources", "requests", "nvidia.com/gpu", "1",
        "status", "phase", node ? "Running" : "Pending");
    assert_non_null(p);
    if (node)
        json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string(node));
    return p;
}

/* ExtenderArgs in names mode. */
static json_t *names_args(const json_t *pod, const char *const *names, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(names[i]));
    return json_pack("{s:O, s:n, s:o}", "Pod", pod, "Nodes", "NodeNames", arr);
}

/* ---- views ---- */

static json_t *find_by(const json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = str(v, key);
        if (s && strcmp(s, value) == 0)
            return v;
    }
    return NULL;
}

/* The /v1/cluster node, or NULL. */
static json_t *cluster_node(json_t *cluster, const char *name)
{
    return find_by(json_object_get(cluster, "nodes"), "name", name);
}

/* How many of names are listed with a fresh report. */
static int fresh_nodes(const char *const *names, int n)
{
    json_t *c = get_ok("/v1/cluster");
    int fresh = 0;
    for (int i = 0; i < n; i++) {
        json_t *node = cluster_node(c, names[i]);
        json_t *v0 = json_array_get(json_object_get(node, "volumes"), 0);
        /* a node's first report has no rates yet (they need two samples) */
        fresh += node && json_is_false(json_object_get(node, "stale")) &&
                 json_is_number(json_object_get(json_object_get(v0, "features"), "write_mbps"));
    }
    json_decref(c);
    return fresh;
}

/* /v1/placement of the cached pod ns/name: 200 and every claim resolved to
 * a pool (the pod, its PVCs and their class are in the cache). */
static bool pod_resolved(const char *name, size_t want_claims)
{
    json_t *body = json_pack("{s:s, s:s}", "namespace", "ml", "name", name);
    struct reply r = post("/v1/placement", body);
    json_decref(body);
    json_t *claims = json_object_get(json_object_get(r.doc, "pod"), "claims");
    bool ok = r.status == 200 && json_array_size(claims) == want_claims &&
              (want_claims == 0 || strcmp(str(json_array_get(claims, 0), "pool"), POOL) == 0);
    reply_free(&r);
    return ok;
}

/* The ledger entry of uid, or NULL (a new reference in *ret_ledger). */
static json_t *ledger_entry(json_t **ret_ledger, const char *uid)
{
    *ret_ledger = get_ok("/v1/ledger");
    return find_by(json_object_get(*ret_ledger, "entries"), "uid", uid);
}

static bool ledger_has(const char *uid, const char *node, const char *state)
{
    json_t *l, *e = ledger_entry(&l, uid);
    bool ok = e && (!node || strcmp(str(e, "node"), node) == 0) &&
              (!state || strcmp(str(e, "state"), state) == 0);
    json_decref(l);
    return ok;
}

/* Every burst pod has its bound entry on the node it was bound to. */
static bool ledger_has_burst(void)
{
    for (int i = 0; i < N_BURST; i++) {
        char uid[64];
        snprintf(uid, sizeof(uid), "uid-burst-%d", i);
        if (!ledger_has(uid, g_burst_node[i], "bound"))
            return false;
    }
    return true;
}

static double num(const json_t *o, const char *path)
{
    /* a dotted path of object keys; NaN when absent */
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", path);
    const json_t *v = o;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    return json_is_number(v) ? json_number_value(v) : (double)NAN;
}

/* Every "Score": in raw is a bare JSON integer (no "8.0", no exponent). */
static void expect_integer_scores(const char *raw, size_t want)
{
    size_t n = 0;
    for (const char *p = strstr(raw, "\"Score\""); p; p = strstr(p + 1, "\"Score\"")) {
        p += 7;
        while (*p == ' ' || *p == ':')
            p++;
        const char *d = p;
        while (*d >= '0' && *d <= '9')
            d++;
        if (d == p || *d == '.' || *d == 'e' || *d == 'E')
            fail_msg("Score is not a JSON integer in %s", raw);
        n++;
    }
    assert_int_equal(n, want);
}

/* A HostPriorityList: a bare array naming each of names exactly once and
 * nothing else, {"Host", "Score"} with an integer 0..10. scores[i] gets
 * names[i]'s. */
static void check_priorities(const struct reply *r, const char *const *names, size_t n, int *scores)
{
    if (r->status != 200 || !json_is_array(r->doc))
        fail_msg("prioritize: %ld %s", r->status, r->raw);
    assert_int_equal(json_array_size(r->doc), n);
    expect_integer_scores(r->raw, n);
    for (size_t i = 0; i < n; i++)
        scores[i] = -1;
    size_t i;
    json_t *e;
    json_array_foreach(r->doc, i, e)
    {
        assert_int_equal(json_object_size(e), 2);
        const char *host = str(e, "Host");
        json_t *score = json_object_get(e, "Score");
        assert_non_null(host);
        assert_true(json_is_integer(score));
        size_t k;
        for (k = 0; k < n && strcmp(names[k], host) != 0; k++)
            ;
        if (k == n)
            fail_msg("prioritize named %s, not asked for: %s", host, r->raw);
        if (scores[k] != -1)
            fail_msg("prioritize named %s twice: %s", host, r->raw);
        scores[k] = (int)json_integer_value(score);
        assert_in_range(scores[k], 0, 10);
    }
}

/* ---- the tests ---- */

/* The reference pod ranked: a above b, and why. */
static void test_ranking_explained(void **state)
{
    (void)state;
    json_t *args = fixture_json("k8s/extender/filter.request.node-names.json");
    json_t *pod = json_deep_copy(json_object_get(args, "Pod"));
    json_decref(args);

    struct reply r = post("/v1/placement", pod);
    if (r.status != 200)
        fail_msg("/v1/placement: %ld %s", r.status, r.raw);
    printf("placement of ml/trainer-0: %s\n", r.raw);
    json_t *nodes = json_object_get(r.doc, "nodes");
    json_t *a = find_by(nodes, "node", "gpu-node-a"), *b = find_by(nodes, "node", "gpu-node-b"),
           *c = find_by(nodes, "node", "gpu-node-c");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_str(str(r.doc, "best"), "gpu-node-a");
    assert_str(str(json_array_get(nodes, 0), "node"), "gpu-node-a");
    assert_str(str(r.doc, "mode"), "enforce");
    assert_true(has(r.doc, "kubernetes", "--kube-api"));
    json_t *prof = json_object_get(r.doc, "pod");
    assert_str(str(prof, "uid"), TRAINER_UID);
    assert_int_equal(num(prof, "gpus"), 2);
    /* ckpt-trainer-0 is ours; imagenet-vdo is not in the API server */
    assert_int_equal(json_array_size(json_object_get(prof, "claims")), 1);
    assert_int_equal(json_integer_value(json_object_get(prof, "unknown_claims")), 1);

    /* a ranks above b, both scored */
    assert_str(str(a, "verdict"), "scored");
    assert_str(str(b, "verdict"), "scored");
    assert_true(json_integer_value(json_object_get(a, "score")) >
                json_integer_value(json_object_get(b, "score")));
    assert_true(num(a, "slowdown_percent") < num(b, "slowdown_percent"));

    /* a's explanation: pool, model source and version, report age, stale,
     * ledger, terms */
    json_t *ca = json_array_get(json_object_get(a, "claims"), 0),
           *cb = json_array_get(json_object_get(b, "claims"), 0);
    assert_non_null(ca);
    assert_non_null(cb);
    assert_str(str(ca, "pool"), POOL);
    assert_str(str(ca, "claim"), "ckpt-trainer-0");
    assert_str(str(ca, "volume"), "v0");
    const char *src = str(json_object_get(a, "model"), "source");
    assert_non_null(src);
    assert_true(strcmp(src, "prior") == 0 || strcmp(src, "xgboost") == 0);
    assert_true(json_is_integer(json_object_get(json_object_get(a, "model"), "version")));
    assert_true(num(a, "report_age_seconds") >= 0);
    assert_true(json_is_false(json_object_get(a, "stale")));
    assert_true(json_is_object(json_object_get(ca, "ledger")));
    assert_int_equal(num(ca, "ledger.entries"), 0);
    json_t *terms = json_object_get(ca, "terms");
    assert_true(json_is_number(json_object_get(terms, "latency_stretch_percent")));
    assert_true(json_is_number(json_object_get(terms, "device_stretch_percent")));
    assert_true(json_is_number(json_object_get(terms, "claim_stretch_percent")));
    assert_true(json_is_number(json_object_get(json_object_get(a, "cpu"), "stretch_percent")));

    /* b's terms show its contention: its claim stretches more, from a
     * busier CPU (VDO's cores over what the rest of the node leaves) and a
     * busier device; the prior's latency does not grow with the load
     * (k' = 0), so its stretch may be 0 on both */
    assert_true(num(cb, "terms.claim_stretch_percent") > num(ca, "terms.claim_stretch_percent"));
    assert_true(num(b, "cpu.stretch_percent") > num(a, "cpu.stretch_percent"));
    assert_true(num(b, "cpu.vdo_busy_share") > num(a, "cpu.vdo_busy_share"));
    assert_true(num(cb, "terms.device_busy_share") > num(ca, "terms.device_busy_share"));
    assert_true(num(cb, "terms.latency_stretch_percent") >=
                num(ca, "terms.latency_stretch_percent"));

    /* c has no volume of the pool: unresolvable, saying so */
    assert_str(str(c, "verdict"), "unresolvable");
    assert_true(has(c, "reason", "no_pool"));
    assert_true(has(c, "reason", POOL));
    reply_free(&r);

    /* the cached pod by name ranks the same */
    json_t *byname = json_pack("{s:s, s:s}", "namespace", "ml", "name", "trainer-0");
    r = post("/v1/placement", byname);
    json_decref(byname);
    assert_int_equal(r.status, 200);
    assert_str(str(r.doc, "best"), "gpu-node-a");
    assert_str(str(json_object_get(r.doc, "pod"), "uid"), TRAINER_UID);
    reply_free(&r);
    json_decref(pod);
}

/* The shape of an ExtenderFilterResult against the reference response. */
static void check_filter_result(const struct reply *r, const json_t *ref, bool full)
{
    if (r->status != 200 || !json_is_object(r->doc))
        fail_msg("filter: %ld %s", r->status, r->raw);
    /* the same keys, capitalised, and no other */
    assert_int_equal(json_object_size(r->doc), json_object_size(ref));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)(uintptr_t)ref, key, v)
    {
        if (!json_object_get(r->doc, key))
            fail_msg("filter reply lacks %s: %s", key, r->raw);
    }
    if (full) {
        json_t *nodes = json_object_get(r->doc, "Nodes");
        assert_true(json_is_null(json_object_get(r->doc, "NodeNames")));
        assert_true(json_is_object(json_object_get(nodes, "metadata")));
        assert_int_equal(json_object_size(json_object_get(nodes, "metadata")), 0);
        /* the passing Node objects exactly as they were sent */
        if (!json_equal(json_object_get(nodes, "items"),
                        json_object_get(json_object_get(ref, "Nodes"), "items")))
            fail_msg("filter (full) Nodes.items differ from the reference");
    } else {
        assert_true(json_is_null(json_object_get(r->doc, "Nodes")));
        if (!json_equal(json_object_get(r->doc, "NodeNames"), json_object_get(ref, "NodeNames")))
            fail_msg("filter (names) NodeNames: %s", r->raw);
    }
    json_t *failed = json_object_get(r->doc, "FailedNodes");
    assert_true(json_is_object(failed));
    assert_int_equal(json_object_size(failed), 0);
    json_t *unres = json_object_get(r->doc, "FailedAndUnresolvableNodes");
    json_t *ref_unres = json_object_get(ref, "FailedAndUnresolvableNodes");
    assert_true(json_is_object(unres));
    assert_int_equal(json_object_size(unres), json_object_size(ref_unres));
    json_object_foreach(ref_unres, key, v)
    {
        const char *why = str(unres, key);
        if (!why || !strstr(why, "no_pool") || !strstr(why, POOL))
            fail_msg("%s should be unresolvable naming no_pool and %s: %s", key, POOL, r->raw);
    }
    assert_true(json_is_string(json_object_get(r->doc, "Error")));
    assert_str(str(r->doc, "Error"), "");
    /* the raw text has the capitalised keys */
    assert_non_null(strstr(r->raw, "\"FailedAndUnresolvableNodes\""));
    assert_non_null(strstr(r->raw, "\"NodeNames\""));
}

static void test_wire_format(void **state)
{
    (void)state;
    static const char *const modes[2] = {"node-names", "full-nodes"};
    json_t *pref = fixture_json("k8s/extender/prioritize.response.json");
    int scores[2][2];

    for (int m = 0; m < 2; m++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "k8s/extender/filter.request.%s.json", modes[m]);
        json_t *req = fixture_json(rel);
        snprintf(rel, sizeof(rel), "k8s/extender/filter.response.%s.json", modes[m]);
        json_t *ref = fixture_json(rel);
        struct reply r = post("/scheduler/filter", req);
        printf("filter (%s): %.400s\n", modes[m], r.raw);
        check_filter_result(&r, ref, m == 1);
        reply_free(&r);
        json_decref(req);
        json_decref(ref);

        snprintf(rel, sizeof(rel), "k8s/extender/prioritize.request.%s.json", modes[m]);
        req = fixture_json(rel);
        r = post("/scheduler/prioritize", req);
        printf("prioritize (%s): %s\n", modes[m], r.raw);
        /* the reference answer's hosts, in its order */
        const char *hosts[2];
        assert_int_equal(json_array_size(pref), 2);
        for (size_t i = 0; i < 2; i++)
            hosts[i] = str(json_array_get(pref, i), "Host");
        check_priorities(&r, hosts, 2, scores[m]);
        /* in request order, as the reference */
        for (size_t i = 0; i < 2; i++)
            assert_str(str(json_array_get(r.doc, i), "Host"), hosts[i]);
        /* the reference ranks a (8) above b (3): so do we */
        assert_true(scores[m][0] > scores[m][1]);
        reply_free(&r);
        json_decref(req);
    }
    /* both modes score alike (the pod's own ledger entry never counts) */
    assert_int_equal(scores[0][0], scores[1][0]);
    assert_int_equal(scores[0][1], scores[1][1]);
    json_decref(pref);

    /* prioritize recorded the pod on its best node, provisionally */
    json_t *l, *e = ledger_entry(&l, TRAINER_UID);
    assert_non_null(e);
    assert_str(str(e, "node"), "gpu-node-a");
    assert_str(str(e, "state"), "provisional");
    assert_str(str(e, "namespace"), "ml");
    assert_str(str(e, "name"), "trainer-0");
    assert_int_equal(num(e, "gpus"), 2);
    json_decref(l);

    /* the binding confirms it; the pod's deletion removes it (and leaves
     * the ledger empty for the burst) */
    json_t *pod = fixture_json("k8s/pod.gpu-trainer.scheduled-view.json");
    json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("gpu-node-a"));
    json_object_set_new(json_object_get(pod, "status"), "phase", json_string("Running"));
    put(DD_KUBE_POD, pod);
    WAIT_FOR(ledger_has(TRAINER_UID, "gpu-node-a", "bound"), "trainer-0's entry to turn bound");
    assert_int_equal(tt_kubeapi_delete(g_api, DD_KUBE_POD, "ml", "trainer-0"), 0);
    WAIT_FOR(!ledger_has(TRAINER_UID, NULL, NULL), "trainer-0's entry to leave with the pod");
}

/* 10 GPU pods back to back, each bound to its top node at once. */
static void test_burst_spreads(void **state)
{
    (void)state;
    static const char *const all[N_NODES] = {"gpu-node-a", "gpu-node-b", "gpu-node-c"};
    json_t *pods[N_BURST];
    int picks[2] = {0, 0}, first_b = -1;

    json_t *l = get_ok("/v1/ledger");
    assert_int_equal(json_array_size(json_object_get(l, "entries")), 0);
    json_decref(l);

    for (int i = 0; i < N_BURST; i++) {
        char name[32], claim[48];
        snprintf(name, sizeof(name), "burst-%d", i);
        snprintf(claim, sizeof(claim), "burst-%d-data", i);
        put(DD_KUBE_PVC, pvc(claim, "20Gi"));
        pods[i] = gpu_pod(name, claim, NULL, "150", "200");
        put(DD_KUBE_POD, json_incref(pods[i]));
    }
    for (int i = 0; i < N_BURST; i++) {
        char name[32];
        snprintf(name, sizeof(name), "burst-%d", i);
        WAIT_FOR(pod_resolved(name, 1), "pod %s and its claim in the placement's cache", name);
    }

    /* the counterfactual: scored alone on today's view (as with no ledger,
     * where nothing a pod is placed on shows until its node reports it),
     * every pod would go to a */
    for (int i = 0; i < N_BURST; i++) {
        json_t *body = json_deep_copy(pods[i]);
        json_object_set_new(body, "nodes", json_pack("[s, s]", "gpu-node-a", "gpu-node-b"));
        struct reply r = post("/v1/placement", body);
        json_decref(body);
        if (r.status != 200 || !str(r.doc, "best") || strcmp(str(r.doc, "best"), "gpu-node-a"))
            fail_msg("burst-%d alone should go to gpu-node-a: %s", i, r.raw);
        reply_free(&r);
    }

    for (int i = 0; i < N_BURST; i++) {
        /* filter: a and b pass, c is unresolvable */
        json_t *args = names_args(pods[i], all, N_NODES);
        struct reply f = post("/scheduler/filter", args);
        json_decref(args);
        json_t *pass = json_object_get(f.doc, "NodeNames");
        if (f.status != 200 || json_array_size(pass) != 2 || !str(f.doc, "Error") ||
            strcmp(str(f.doc, "Error"), "") != 0 ||
            !json_object_get(json_object_get(f.doc, "FailedAndUnresolvableNodes"), "gpu-node-c"))
            fail_msg("filter of burst-%d: %s", i, f.raw);
        const char *names[2] = {json_string_value(json_array_get(pass, 0)),
                                json_string_value(json_array_get(pass, 1))};
        assert_str(names[0], "gpu-node-a");
        assert_str(names[1], "gpu-node-b");

        /* prioritize the survivors; the top (ties: the first) gets it */
        args = names_args(pods[i], names, 2);
        struct reply p = post("/scheduler/prioritize", args);
        json_decref(args);
        int s[2];
        check_priorities(&p, names, 2, s);
        int top = s[1] > s[0] ? 1 : 0;
        printf("burst-%d: a %d, b %d -> %s\n", i, s[0], s[1], names[top]);
        snprintf(g_burst_node[i], sizeof(g_burst_node[i]), "%s", names[top]);
        picks[top]++;
        if (top == 1 && first_b < 0)
            first_b = i;
        reply_free(&p);
        reply_free(&f);

        /* bound at once, as kube-scheduler's binding cycle would */
        json_t *bound = json_deep_copy(pods[i]);
        json_object_set_new(json_object_get(bound, "spec"), "nodeName",
                            json_string(g_burst_node[i]));
        put(DD_KUBE_POD, bound);
    }
    printf("burst: %d on gpu-node-a, %d on gpu-node-b (first on b: burst-%d)\n", picks[0], picks[1],
           first_b);
    /* spread over both... */
    assert_true(picks[0] >= 1);
    assert_true(picks[1] >= 1);
    /* ...by the ledger's I/O, not by running out of GPUs: b's first pod
     * came while a still had free GPUs (8 each, 1 a pod) */
    assert_true(first_b >= 0 && first_b < 8);

    /* every binding reached the ledger: bound entries where they went */
    WAIT_FOR(ledger_has_burst(), "the burst's bound ledger entries");
    g_burst_done = true;
    /* a new pod now sees the in-flight load on a */
    json_t *probe = gpu_pod("probe", "burst-0-data", NULL, "150", "200");
    json_object_set_new(probe, "nodes", json_pack("[s]", "gpu-node-a"));
    struct reply r = post("/v1/placement", probe);
    json_decref(probe);
    json_t *ca = json_array_get(
        json_object_get(json_array_get(json_object_get(r.doc, "nodes"), 0), "claims"), 0);
    if (r.status != 200 || !(num(ca, "ledger.entries") == picks[0]))
        fail_msg("a's explanation should count %d ledger entries: %s", picks[0], r.raw);
    reply_free(&r);
    for (int i = 0; i < N_BURST; i++)
        json_decref(pods[i]);
}

/* Malformed bodies and annotations. */
/* The Events the test API server holds for the pod of uid (a new array). */
static json_t *events_of(const char *uid)
{
    json_t *all = tt_kubeapi_events(g_api), *out = json_array(), *e;
    size_t i;
    json_array_foreach(all, i, e)
    {
        const char *u = str(json_object_get(e, "involvedObject"), "uid");
        if (u && strcmp(u, uid) == 0)
            json_array_append(out, e);
    }
    json_decref(all);
    return out;
}

static size_t n_events_of(const char *uid)
{
    json_t *e = events_of(uid);
    size_t n = json_array_size(e);
    json_decref(e);
    return n;
}

/* Prioritize of pod on a and b; the names of the top score into top. */
static void prioritize_ab(const json_t *pod, char top[2][32], int *ntop)
{
    static const char *const ab[2] = {"gpu-node-a", "gpu-node-b"};
    json_t *args = names_args(pod, ab, 2);
    struct reply r = post("/scheduler/prioritize", args);
    json_decref(args);
    int scores[2];
    check_priorities(&r, ab, 2, scores);
    *ntop = 0;
    for (int i = 0; i < 2; i++)
        if (scores[i] == (scores[0] > scores[1] ? scores[0] : scores[1]))
            snprintf(top[(*ntop)++], 32, "%s", ab[i]);
    reply_free(&r);
}

static void test_pod_events(void **state)
{
    (void)state;
    char top[2][32], want[2][96];
    int ntop = 0;
    put(DD_KUBE_PVC, pvc("events-0-data", "20Gi"));
    json_t *pod = gpu_pod("events-0", "events-0-data", NULL, "50", "50");
    put(DD_KUBE_POD, json_incref(pod));
    WAIT_FOR(pod_resolved("events-0", 1), "pod events-0 and its claim in the placement's cache");
    assert_int_equal(n_events_of("uid-events-0"), 0);

    prioritize_ab(pod, top, &ntop);
    WAIT_FOR(n_events_of("uid-events-0") >= 1, "an Event on ml/events-0");
    json_t *evs = events_of("uid-events-0"), *e = json_array_get(evs, 0);
    json_t *inv = json_object_get(e, "involvedObject");
    char *text = json_dumps(e, JSON_COMPACT);
    printf("pod event: %s\n", text);
    if (strcmp(str(inv, "kind"), "Pod") != 0 || strcmp(str(inv, "namespace"), "ml") != 0 ||
        strcmp(str(inv, "name"), "events-0") != 0 || strcmp(str(e, "reason"), "DedupdScored") ||
        strcmp(str(e, "type"), "Normal") || strcmp(str(e, "reportingComponent"), "dedupd") ||
        strcmp(str(json_object_get(e, "source"), "component"), "dedupd") ||
        strcmp(str(json_object_get(e, "metadata"), "namespace"), "ml") ||
        strncmp(str(json_object_get(e, "metadata"), "name"), "events-0.", 9) != 0)
        fail_msg("the Event's fields: %s", text);
    const char *msg = str(e, "message");
    assert_non_null(msg);
    assert_true(strlen(msg) < 1024);
    bool named = false;
    for (int i = 0; i < ntop; i++) {
        snprintf(want[i], sizeof(want[i]), "best node %s score", top[i]);
        named = named || strstr(msg, want[i]);
    }
    if (!named || !strstr(msg, "runner-up") || !strstr(msg, "CPU stretch") ||
        !strstr(msg, "model prior"))
        fail_msg("the message should name the best node (%s) and the terms: %s", top[0], msg);
    free(text);
    json_decref(evs);

    /* again within the window: none; a fresh pod after it shows the
     * sender got that far (one queue, in order) */
    prioritize_ab(pod, top, &ntop);
    put(DD_KUBE_PVC, pvc("events-1-data", "20Gi"));
    json_t *pod1 = gpu_pod("events-1", "events-1-data", NULL, "50", "50");
    put(DD_KUBE_POD, json_incref(pod1));
    WAIT_FOR(pod_resolved("events-1", 1), "pod events-1 and its claim in the placement's cache");
    prioritize_ab(pod1, top, &ntop);
    WAIT_FOR(n_events_of("uid-events-1") >= 1, "an Event on ml/events-1");
    assert_int_equal(n_events_of("uid-events-0"), 1);
    assert_int_equal(n_events_of("uid-events-1"), 1);
    assert_int_equal(tt_kubeapi_delete(g_api, DD_KUBE_POD, "ml", "events-0"), 0);
    assert_int_equal(tt_kubeapi_delete(g_api, DD_KUBE_POD, "ml", "events-1"), 0);
    json_decref(pod);
    json_decref(pod1);
}

static void test_malformed(void **state)
{
    (void)state;
    /* bad JSON; no Pod; NodeNames not an array; a name twice; not an object */
    static const char *const bad[] = {
        "{\"Pod\": {\"metadata\": {\"name\": \"x\"}, \"NodeNames\": [",
        "{\"Nodes\": null, \"NodeNames\": [\"gpu-node-a\"]}",
        "{\"Pod\": {\"metadata\": {\"name\": \"x\"}}, \"NodeNames\": \"gpu-node-a\"}",
        "{\"Pod\": {\"metadata\": {\"name\": \"x\"}}, \"NodeNames\": [\"a\", \"a\"]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reply r = http(g_place.port, "POST", "/scheduler/filter", bad[i]);
        const char *err = str(r.doc, "Error");
        if (r.status != 200 || !err || !err[0])
            fail_msg("filter %s: want 200 with Error set, got %ld %s", bad[i], r.status, r.raw);
        assert_true(json_is_null(json_object_get(r.doc, "NodeNames")));
        assert_true(json_is_null(json_object_get(r.doc, "Nodes")));
        reply_free(&r);
        r = http(g_place.port, "POST", "/scheduler/prioritize", bad[i]);
        json_t *e = json_object_get(r.doc, "error");
        if (r.status != 400 || !json_is_object(e) || !str(e, "message") || !str(e, "message")[0])
            fail_msg("prioritize %s: want 400 with a JSON error, got %ld %s", bad[i], r.status,
                     r.raw);
        reply_free(&r);
    }

    /* malformed annotations never fail the pod: scored, with notes */
    json_t *pod = gpu_pod("lots", "burst-0-data", NULL, "lots", NULL);
    json_object_set_new(json_object_get(json_object_get(pod, "metadata"), "annotations"),
                        "dedupd.io/duplicate-share", json_string("1.7"));
    static const char *const ab[2] = {"gpu-node-a", "gpu-node-b"};
    json_t *args = names_args(pod, ab, 2);
    struct reply r = post("/scheduler/prioritize", args);
    json_decref(args);
    int s[2];
    check_priorities(&r, ab, 2, s);
    reply_free(&r);
    args = names_args(pod, ab, 2);
    r = post("/scheduler/filter", args);
    json_decref(args);
    assert_int_equal(r.status, 200);
    assert_str(str(r.doc, "Error"), "");
    assert_int_equal(json_array_size(json_object_get(r.doc, "NodeNames")), 2);
    reply_free(&r);

    json_object_set_new(pod, "nodes", json_pack("[s, s]", "gpu-node-a", "gpu-node-b"));
    r = post("/v1/placement", pod);
    json_decref(pod);
    printf("placement of a pod with bad annotations: %.600s\n", r.raw);
    assert_int_equal(r.status, 200);
    json_t *notes = json_object_get(json_object_get(r.doc, "pod"), "notes");
    char *nt = json_dumps(notes, JSON_COMPACT);
    if (!nt || !strstr(nt, "dedupd.io/write-mbps") || !strstr(nt, "lots") ||
        !strstr(nt, "dedupd.io/duplicate-share"))
        fail_msg("the pod's notes should name both annotations: %s", nt ? nt : "null");
    free(nt);
    /* the default profile stood in, and the pod was scored */
    json_t *a = find_by(json_object_get(r.doc, "nodes"), "node", "gpu-node-a");
    assert_str(str(a, "verdict"), "scored");
    json_t *claim = json_array_get(json_object_get(json_object_get(r.doc, "pod"), "claims"), 0);
    assert_int_equal(num(claim, "write_mbps"), 50);
    reply_free(&r);

    /* /v1/placement: neither a pod nor a name; an unknown pod */
    r = http(g_place.port, "POST", "/v1/placement", "{\"nodes\": []}");
    assert_int_equal(r.status, 400);
    reply_free(&r);
    r = http(g_place.port, "POST", "/v1/placement", "{\"namespace\": \"ml\", \"name\": \"nope\"}");
    assert_int_equal(r.status, 404);
    reply_free(&r);
}

/* A restarted placement role keeps the ledger (from the pod watch) and
 * gets the nodes back (from their pushes). */
static void test_restart_keeps_ledger(void **state)
{
    (void)state;
    if (!g_burst_done)
        fail_msg("needs the burst's bindings");
    unsigned port = g_place.port;
    assert_int_equal(stop(&g_place, SIGTERM), 0);
    /* the nodes push to the old port */
    start_placement(port);
    assert_int_equal(g_place.port, port);
    for (int tries = 0; !ledger_has_burst(); tries++) {
        if (tries >= 1200) {
            json_t *l = get_ok("/v1/ledger");
            char *text = json_dumps(l, JSON_COMPACT);
            fail_msg("the ledger was not rebuilt from the pod watch: %s", text);
        }
        msleep(50);
    }
    WAIT_FOR(fresh_nodes(g_names, N_NODES) == N_NODES, "the three nodes back in /v1/cluster");
    json_t *l = get_ok("/v1/ledger");
    printf("ledger after the restart: %zu entries\n",
           json_array_size(json_object_get(l, "entries")));
    json_decref(l);
}

/* prioritize's score for b, and b's /v1/placement verdict and reason. */
static bool b_neutral_stale(void)
{
    static const char *const ab[2] = {"gpu-node-a", "gpu-node-b"};
    json_t *pod = gpu_pod("stale-probe", "burst-0-data", NULL, "150", "200");
    json_t *args = names_args(pod, ab, 2);
    struct reply r = post("/scheduler/prioritize", args);
    json_decref(args);
    int s[2];
    check_priorities(&r, ab, 2, s);
    reply_free(&r);
    if (s[1] != NEUTRAL) {
        json_decref(pod);
        return false;
    }
    json_object_set_new(pod, "nodes", json_pack("[s]", "gpu-node-b"));
    r = post("/v1/placement", pod);
    json_t *b = json_array_get(json_object_get(r.doc, "nodes"), 0);
    bool ok = r.status == 200 && b && strcmp(str(b, "verdict"), "neutral") == 0 &&
              json_is_true(json_object_get(b, "stale")) &&
              json_integer_value(json_object_get(b, "score")) == NEUTRAL &&
              has(b, "reason", "stale");
    if (ok) {
        char *text = json_dumps(b, JSON_COMPACT);
        printf("b after its reports stopped: %s\n", text);
        free(text);
    }
    reply_free(&r);
    json_decref(pod);
    return ok;
}

static void test_stale_node_neutral(void **state)
{
    (void)state;
    /* b is scored while it reports */
    json_t *pod = gpu_pod("stale-probe", "burst-0-data", NULL, "150", "200");
    json_object_set_new(pod, "nodes", json_pack("[s]", "gpu-node-b"));
    struct reply r = post("/v1/placement", pod);
    json_decref(pod);
    assert_str(str(json_array_get(json_object_get(r.doc, "nodes"), 0), "verdict"), "scored");
    reply_free(&r);

    assert_int_equal(stop(&g_nodes[1], SIGKILL), 128 + SIGKILL);
    WAIT_FOR(b_neutral_stale(), "gpu-node-b to turn neutral (stale) after its reports stopped");
    /* a still scored */
    assert_int_equal(fresh_nodes(g_names, 1), 1);
}

/* The pod watch cut mid-event, the node watch ended by ERROR 410, the PVC
 * watch refused with HTTP 410 (compacted): every object put or deleted
 * around the faults ends up in the cache. */
static void test_watch_faults(void **state)
{
    (void)state;
    struct tt_kubeapi_stats before, after;
    tt_kubeapi_stats(g_api, &before);

    /* pods: cut mid-event, then a pod is added */
    put(DD_KUBE_PVC, pvc("late-0-data", "10Gi"));
    tt_kubeapi_cut_next_event(g_api, DD_KUBE_POD);
    put(DD_KUBE_POD, gpu_pod("late-0", "late-0-data", NULL, "100", "100"));
    WAIT_FOR(pod_resolved("late-0", 1), "ml/late-0 after the pod watch was cut mid-event");

    /* nodes: ERROR 410 (relist), while b's Node is deleted: b (its daemon
     * dead) leaves the cluster view */
    tt_kubeapi_error_410(g_api, DD_KUBE_NODE);
    assert_int_equal(tt_kubeapi_delete(g_api, DD_KUBE_NODE, NULL, "gpu-node-b"), 0);
    for (int tries = 0;; tries++) {
        json_t *c = get_ok("/v1/cluster");
        bool gone = !cluster_node(c, "gpu-node-b") && cluster_node(c, "gpu-node-a");
        json_decref(c);
        if (gone)
            break;
        if (tries >= 1200)
            fail_msg("gpu-node-b did not leave /v1/cluster after its Node was deleted");
        msleep(50);
    }

    /* PVCs and pods: history compacted and the watches ended: their next
     * watch gets HTTP 410 and relists; a claim and a pod added meanwhile */
    tt_kubeapi_compact(g_api);
    tt_kubeapi_end_watches(g_api, DD_KUBE_PVC);
    tt_kubeapi_end_watches(g_api, DD_KUBE_POD);
    put(DD_KUBE_PVC, pvc("late-1-data", "10Gi"));
    put(DD_KUBE_POD, gpu_pod("late-1", "late-1-data", NULL, "100", "100"));
    WAIT_FOR(pod_resolved("late-1", 1), "ml/late-1 and its claim after the 410s");

    tt_kubeapi_stats(g_api, &after);
    printf("watch faults: 410 answers %lu -> %lu, pod watches %lu -> %lu, node lists %lu -> %lu\n",
           before.gone, after.gone, before.watches[DD_KUBE_POD], after.watches[DD_KUBE_POD],
           before.lists[DD_KUBE_NODE], after.lists[DD_KUBE_NODE]);
    assert_true(after.gone > before.gone);                                      /* HTTP 410 */
    assert_true(after.lists[DD_KUBE_NODE] > before.lists[DD_KUBE_NODE]);        /* ERROR 410 */
    assert_true(after.watches[DD_KUBE_POD] >= before.watches[DD_KUBE_POD] + 2); /* cut, end */

    /* what came before the faults is all still there */
    assert_true(pod_resolved("late-0", 1));
    for (int i = 0; i < N_BURST; i++) {
        char name[32];
        snprintf(name, sizeof(name), "burst-%d", i);
        assert_true(pod_resolved(name, 1));
    }
    assert_true(ledger_has_burst());
    /* the Node objects relisted after the ERROR 410 are there: a's GPUs */
    json_t *body =
        json_pack("{s:s, s:s, s:[s]}", "namespace", "ml", "name", "late-1", "nodes", "gpu-node-a");
    struct reply r = post("/v1/placement", body);
    json_decref(body);
    json_t *a = json_array_get(json_object_get(r.doc, "nodes"), 0);
    if (r.status != 200 || num(a, "gpus.allocatable") != 8)
        fail_msg("gpu-node-a's Node (8 GPUs) should be in the cache: %s", r.raw);
    reply_free(&r);
    json_t *c = get_ok("/v1/cluster");
    assert_non_null(cluster_node(c, "gpu-node-a"));
    assert_non_null(cluster_node(c, "gpu-node-c"));
    json_decref(c);
}

/* ---- setup ---- */

/* A one-volume workload (v0) and its replay at the daemons' cadence: the
 * replay's nominal interval is INTERVAL, so rates and the VDO CPU-seconds
 * of a report are over the interval the report states. */
static void replay(const char *name, const char *out, unsigned cpus, double write, double read,
                   double cpu_load, double index_entries, bool compression, unsigned seed)
{
    char *wl = tt_path(g_root, name), n[16], sd[16], dedupctl[4200], *err = NULL;
    json_t *w =
        json_pack("{s:{s:i}, s:[{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b}]}", "node",
                  "cpus", (int)cpus, "volumes", "name", "v0", "write_mbps", write, "read_mbps",
                  read, "duplicate_share", 0.3, "zero_share", 0.02, "compressible_share", 0.1,
                  "index_entries", index_entries, "stored_gib", 200.0, "physical_gib", 4000.0,
                  "cpu_load", cpu_load, "compression", compression);
    assert_non_null(w);
    if (json_dump_file(w, wl, 0) != 0)
        fail_msg("cannot write %s", wl);
    json_decref(w);
    snprintf(n, sizeof(n), "%u", REPLAY_INTERVALS);
    snprintf(sd, sizeof(sd), "%u", seed);
    snprintf(dedupctl, sizeof(dedupctl), "%s", tt_bin("dedupctl"));
    const char *argv[] = {
        dedupctl, "vdo-sim", "--workload", wl,      "--intervals", n,   "--interval-seconds",
        INTERVAL, "--seed",  sd,           "--out", out,           NULL};
    if (tt_run(argv, NULL, &err) != 0)
        fail_msg("vdo-sim: %s", err ? err : "?");
    free(err);
    free(wl);
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    srand((unsigned)getpid());
    g_root = tt_tmpdir();
    g_token_file = tt_path(g_root, "token");
    tt_write_file(g_token_file, TOKEN "\n", strlen(TOKEN) + 1);
    g_kube_token_file = tt_path(g_root, "kube-token");
    tt_write_file(g_kube_token_file, KUBE_TOKEN "\n", strlen(KUBE_TOKEN) + 1);
    g_pdata = tt_path(g_root, "placement");

    /* a: light (few writes, 32 idle cores); b: heavy (15 times the writes,
     * 10 times the reads, half of 16 cores busy, compression, a 10 times
     * bigger index); c: middling, another pool */
    for (int n = 0; n < N_NODES; n++) {
        char name[32];
        snprintf(name, sizeof(name), "replay-%d", n);
        g_replay[n] = tt_path(g_root, name);
        snprintf(name, sizeof(name), "w-%d.json", n);
        if (n == 0)
            replay(name, g_replay[n], 32, 20, 40, 0.03, 5e6, false, 21);
        else if (n == 1)
            replay(name, g_replay[n], 16, 300, 400, 0.5, 5e7, true, 22);
        else
            replay(name, g_replay[n], 16, 100, 100, 0.2, 1e7, false, 23);
    }

    /* the API server with the reference objects; the class names our pool */
    assert_int_equal(tt_kubeapi_start(&g_api), 0);
    tt_kubeapi_set_token(g_api, KUBE_TOKEN);
    for (int n = 0; n < N_NODES; n++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "k8s/node.%s.json", g_names[n]);
        put(DD_KUBE_NODE, fixture_json(rel));
    }
    json_t *sc = fixture_json("k8s/storageclass.vdo-dedup.json");
    json_object_set_new(json_object_get(sc, "metadata"), "annotations",
                        json_pack("{s:s}", DD_KUBE_ANN_POOL, POOL));
    put(DD_KUBE_SC, sc);
    put(DD_KUBE_PVC, fixture_json("k8s/pvc.ckpt-trainer-0.1-pending-before-scheduling.json"));
    put(DD_KUBE_PV, fixture_json("k8s/pv.ckpt-trainer-0.csi-node-affinity.json"));
    put(DD_KUBE_POD, fixture_json("k8s/pod.gpu-trainer.scheduled-view.json"));

    start_placement(0);
    for (int n = 0; n < N_NODES; n++)
        start_node(n);
    WAIT_FOR(fresh_nodes(g_names, N_NODES) == N_NODES, "three fresh nodes in /v1/cluster");
    WAIT_FOR(pod_resolved("trainer-0", 1), "ml/trainer-0 and its claim in the cache");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    /* SIGTERM: a clean stop (what a failed test leaves, too) */
    for (int n = 0; n < N_NODES; n++)
        if (g_nodes[n].pid > 0)
            stop(&g_nodes[n], SIGTERM);
    if (g_place.pid > 0)
        stop(&g_place, SIGTERM);
    tt_kubeapi_stop(g_api);
    tt_rmtree(g_root);
    free(g_root);
    free(g_token_file);
    free(g_kube_token_file);
    free(g_pdata);
    for (int n = 0; n < N_NODES; n++)
        free(g_replay[n]);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranking_explained),  cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_burst_spreads),      cmocka_unit_test(test_pod_events),
        cmocka_unit_test(test_malformed),          cmocka_unit_test(test_restart_keeps_ledger),
        cmocka_unit_test(test_stale_node_neutral), cmocka_unit_test(test_watch_faults),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
