/*
 * Lease-based leader election (leader.h). The thread owns the HTTP client
 * and the observation of the Lease; the rest of the daemon reads only the
 * atomic leader flag and the counters.
 */
#define _GNU_SOURCE
#include "dedupd/leader.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/common.h"
#include "common/dynbuf.h"
#include "dedupd/http/client.h"
#include "dedupd/kubeclient.h"
#include "dedupd/microtime.h"

#define LEASE_API        "/apis/coordination.k8s.io/v1"
#define MAX_REPLY        (1u << 20)
#define CONFLICT_RETRIES 3

enum try_result { T_ERROR = -1, T_STANDBY = 0, T_LEADER = 1, T_CONFLICT = 2 };

struct dd_leader {
    struct dd_leader_config cfg;
    atomic_bool stop;
    atomic_bool releasing; /* requests are no longer cancelled by stop */
    atomic_bool leader;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* the thread's own */
    struct dd_kubeclient kc; /* the API server connection and its token */
    char lease_path[1024], leases_path[1024], pod_path[1024];
    char observed[1024];  /* holder and renewTime last seen */
    uint64_t observed_ms; /* monotonic, when it last changed */
    uint64_t renewed_ms;  /* monotonic, the last successful acquire or renew */
    int label;            /* the label value last written: -1 none, 0 false, 1 true */
    unsigned seed;
    /* atomic counters */
    uint64_t transitions, conflicts, errors;
};

static bool cancelled(void *ud)
{
    struct dd_leader *l = ud;
    return atomic_load(&l->stop) && !atomic_load(&l->releasing);
}

static int64_t wall_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static long timeout_ms(const struct dd_leader_config *c)
{
    /* a request never outlasts half the renew deadline (and 1..5 s) */
    double ms = c->renew_deadline_s * 500.0;
    return ms < 1000 ? 1000 : ms > 5000 ? 5000 : (long)ms;
}

/* prefix/namespaces/NS/KIND[/NAME], the names escaped; false when too long. */
static bool api_path(char *buf, size_t len, const char *prefix, const char *ns, const char *kind,
                     const char *name)
{
    char *ens = dd_http_client_escape(ns), *ename = name ? dd_http_client_escape(name) : NULL;
    int n = ens && (!name || ename) ? snprintf(buf, len, "%s/namespaces/%s/%s%s%s", prefix, ens,
                                               kind, name ? "/" : "", name ? ename : "")
                                    : -1;
    dd_free(ens);
    dd_free(ename);
    return n > 0 && (size_t)n < len;
}

int dd_leader_new(const struct dd_leader_config *c, struct dd_leader **ret, char *errbuf,
                  size_t errlen)
{
    struct dd_leader *l;
    pthread_condattr_t ca;
    int r;

    if (!c->src.url[0] || !c->lease_name[0] || !c->lease_namespace[0] || !c->identity[0]) {
        snprintf(errbuf, errlen,
                 "leader election needs the Kubernetes API, a Lease name and namespace and an "
                 "identity");
        return DD_E_USAGE;
    }
    if (!(c->retry_period_s > 0 && c->renew_deadline_s > c->retry_period_s &&
          c->lease_duration_s > c->renew_deadline_s && c->lease_duration_s >= 1)) {
        snprintf(errbuf, errlen,
                 "leader election: expected lease duration (%g s) > renew deadline (%g s) > "
                 "retry period (%g s) > 0, the duration at least 1 s",
                 c->lease_duration_s, c->renew_deadline_s, c->retry_period_s);
        return DD_E_USAGE;
    }
    if (!(l = dd_calloc(1, sizeof(*l))))
        return -ENOMEM;
    l->cfg = *c;
    l->label = -1;
    l->seed = (unsigned)dd_mono_ms() ^ (unsigned)getpid();
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (!api_path(l->lease_path, sizeof(l->lease_path), LEASE_API, c->lease_namespace, "leases",
                  c->lease_name) ||
        !api_path(l->leases_path, sizeof(l->leases_path), LEASE_API, c->lease_namespace, "leases",
                  NULL) ||
        (c->pod_name[0] && c->pod_namespace[0] &&
         !api_path(l->pod_path, sizeof(l->pod_path), "/api/v1", c->pod_namespace, "pods",
                   c->pod_name))) {
        snprintf(errbuf, errlen, "leader election: names too long");
        dd_leader_free(l);
        return DD_E_USAGE;
    }
    struct dd_kubeclient_config kcc = {
        .src = &c->src,
        .what = "leader election",
        .token_reread_s = c->token_reread_s,
        .connect_timeout_ms = timeout_ms(&l->cfg),
        .timeout_ms = timeout_ms(&l->cfg),
        .cancel = cancelled,
        .cancel_ud = l,
    };
    if ((r = dd_kubeclient_init(&l->kc, &kcc, errbuf, errlen)) < 0) {
        dd_leader_free(l);
        return r;
    }
    *ret = l;
    return 0;
}

/* ---- one request ---- */

/* method path [body] -> status; *doc the parsed reply (NULL if none). */
static int call(struct dd_leader *l, const char *method, const char *path, const char *ctype,
                json_t *body, json_t **doc)
{
    struct dd_dynbuf reply;
    char err[512], *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int st;

    *doc = NULL;
    if (body && !text)
        return -ENOMEM;
    dd_dynbuf_init(&reply, MAX_REPLY);
    st =
        dd_http_client_call_type(l->kc.client, method, path, ctype, text, &reply, err, sizeof(err));
    free(text);
    if (st < 0) {
        if (!cancelled(l))
            dd_log_debug("leader election: %s %s: %s", method, path, err);
    } else {
        *doc = json_loadb(dd_dynbuf_str(&reply), dd_dynbuf_len(&reply), 0, NULL);
        if (st == 401)
            dd_kubeclient_refresh(&l->kc, true);
        if (st >= 300 && st != 404 && st != 409)
            dd_log_debug("leader election: %s %s: HTTP %d %.200s", method, path, st,
                         json_string_value(json_object_get(*doc, "message"))
                             ? json_string_value(json_object_get(*doc, "message"))
                             : "");
    }
    dd_dynbuf_free(&reply);
    return st;
}

static json_t *spec_new(const struct dd_leader *l, const char *holder, int duration,
                        const char *acquire, const char *renew, json_int_t transitions)
{
    return json_pack("{s:s, s:i, s:s, s:s, s:I}", "holderIdentity", holder, "leaseDurationSeconds",
                     duration, "acquireTime", acquire, "renewTime", renew, "leaseTransitions",
                     transitions);
    (void)l;
}

static int duration_s(const struct dd_leader *l)
{
    return (int)floor(l->cfg.lease_duration_s);
}

/* Creates the Lease with this replica as holder. */
static enum try_result create(struct dd_leader *l)
{
    char now[DD_MICROTIME_LEN];
    json_t *doc, *obj;
    dd_microtime_format(wall_us(), now, sizeof(now));
    obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", "coordination.k8s.io/v1", "kind",
                    "Lease", "metadata", "name", l->cfg.lease_name, "namespace",
                    l->cfg.lease_namespace, "spec",
                    spec_new(l, l->cfg.identity, duration_s(l), now, now, 0));
    if (!obj)
        return T_ERROR;
    int st = call(l, "POST", l->leases_path, NULL, obj, &doc);
    json_decref(obj);
    json_decref(doc);
    if (st == 200 || st == 201)
        return T_LEADER;
    if (st == 409) { /* AlreadyExists: someone else created it; read it next */
        __atomic_add_fetch(&l->conflicts, 1, __ATOMIC_RELAXED);
        return T_CONFLICT;
    }
    return T_ERROR;
}

/* One read and, when ours to take or keep, one write. */
static enum try_result try_once(struct dd_leader *l)
{
    json_t *obj = NULL, *spec, *doc = NULL;
    int st = call(l, "GET", l->lease_path, NULL, NULL, &obj);
    enum try_result res = T_ERROR;

    if (st == 404) {
        json_decref(obj);
        return create(l);
    }
    if (st != 200 || !json_is_object(obj) || !json_is_object(json_object_get(obj, "metadata"))) {
        json_decref(obj);
        return T_ERROR;
    }
    spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(obj, "spec", spec);
    }
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
    const char *renew = json_string_value(json_object_get(spec, "renewTime"));
    const char *acquire = json_string_value(json_object_get(spec, "acquireTime"));
    json_t *dj = json_object_get(spec, "leaseDurationSeconds");
    double their_s = json_is_integer(dj) && json_integer_value(dj) > 0
                         ? (double)json_integer_value(dj)
                         : l->cfg.lease_duration_s;
    json_int_t transitions = json_integer_value(json_object_get(spec, "leaseTransitions"));
    bool mine = holder && strcmp(holder, l->cfg.identity) == 0;
    char seen[1024];
    uint64_t now_ms = dd_mono_ms();

    if (!holder)
        holder = "";
    snprintf(seen, sizeof(seen), "%.500s|%.200s", holder, renew ? renew : "");
    if (strcmp(seen, l->observed) != 0) {
        snprintf(l->observed, sizeof(l->observed), "%s", seen);
        l->observed_ms = now_ms;
    }
    if (!mine && holder[0]) {
        int64_t renew_us = 0;
        bool parsed = renew && dd_microtime_parse(renew, strlen(renew), &renew_us) == 0;
        bool over_by_wall = !parsed || wall_us() >= renew_us + (int64_t)(their_s * 1e6);
        bool over_by_mono = now_ms - l->observed_ms >= (uint64_t)(their_s * 1000.0);
        if (!(over_by_wall && over_by_mono)) {
            json_decref(obj);
            return T_STANDBY;
        }
        dd_log_info("leader election: the term of %s is over (renewed %s, %g s), taking the Lease",
                    holder, renew ? renew : "never", their_s);
    }
    char now[DD_MICROTIME_LEN];
    dd_microtime_format(wall_us(), now, sizeof(now));
    json_object_set_new(obj, "spec",
                        spec_new(l, l->cfg.identity, duration_s(l), mine && acquire ? acquire : now,
                                 now, transitions + (mine ? 0 : 1)));
    /* metadata as read: its resourceVersion makes a stale write a 409 */
    st = call(l, "PUT", l->lease_path, NULL, obj, &doc);
    if (st == 200)
        res = T_LEADER;
    else if (st == 409) {
        __atomic_add_fetch(&l->conflicts, 1, __ATOMIC_RELAXED);
        dd_log_info("leader election: Lease update answered 409 Conflict: reading it again");
        res = T_CONFLICT;
    }
    json_decref(doc);
    json_decref(obj);
    return res;
}

static enum try_result try_acquire_or_renew(struct dd_leader *l)
{
    enum try_result r = T_ERROR;
    for (int i = 0; i < CONFLICT_RETRIES && !cancelled(l); i++)
        if ((r = try_once(l)) != T_CONFLICT)
            break;
    if (r == T_CONFLICT || r == T_ERROR) {
        __atomic_add_fetch(&l->errors, 1, __ATOMIC_RELAXED);
        return T_ERROR;
    }
    return r;
}

/* Writes the pod label when it differs from what was written. */
static void sync_label(struct dd_leader *l)
{
    int want = atomic_load(&l->leader) ? 1 : 0;
    json_t *patch, *doc;
    if (!l->pod_path[0] || l->label == want)
        return;
    patch =
        json_pack("{s:{s:{s:s}}}", "metadata", "labels", DD_LEADER_LABEL, want ? "true" : "false");
    int st = call(l, "PATCH", l->pod_path, "application/merge-patch+json", patch, &doc);
    json_decref(patch);
    json_decref(doc);
    if (st >= 200 && st < 300) {
        l->label = want;
        dd_log_info("leader election: pod %s/%s labelled %s=%s", l->cfg.pod_namespace,
                    l->cfg.pod_name, DD_LEADER_LABEL, want ? "true" : "false");
    } else if (st == 404) {
        l->label = want; /* no such pod: nothing to label, and no retrying */
        dd_log_warning("leader election: pod %s/%s not found: its label is not set",
                       l->cfg.pod_namespace, l->cfg.pod_name);
    } else {
        __atomic_add_fetch(&l->errors, 1, __ATOMIC_RELAXED);
    }
}

static void become(struct dd_leader *l, bool leader, const char *why)
{
    atomic_store(&l->leader, leader);
    __atomic_add_fetch(&l->transitions, 1, __ATOMIC_RELAXED);
    if (leader)
        dd_log_info("leader election: %s is the leader now (Lease %s/%s)", l->cfg.identity,
                    l->cfg.lease_namespace, l->cfg.lease_name);
    else
        dd_log_warning("leader election: %s stepped down (%s): standby, answering neutral",
                       l->cfg.identity, why);
}

/* Gives the Lease up: holder "", duration 1 s. */
static void release(struct dd_leader *l)
{
    for (int i = 0; i < CONFLICT_RETRIES; i++) {
        json_t *obj = NULL, *doc = NULL, *spec;
        char now[DD_MICROTIME_LEN];
        int st = call(l, "GET", l->lease_path, NULL, NULL, &obj);
        spec = json_object_get(obj, "spec");
        if (st != 200 || !json_is_object(spec) ||
            !json_is_string(json_object_get(spec, "holderIdentity")) ||
            strcmp(json_string_value(json_object_get(spec, "holderIdentity")), l->cfg.identity) !=
                0) {
            json_decref(obj);
            return; /* not ours (or unreadable): nothing to give up */
        }
        dd_microtime_format(wall_us(), now, sizeof(now));
        json_object_set_new(
            obj, "spec",
            spec_new(l, "", 1, now, now,
                     json_integer_value(json_object_get(spec, "leaseTransitions"))));
        st = call(l, "PUT", l->lease_path, NULL, obj, &doc);
        json_decref(doc);
        json_decref(obj);
        if (st == 200) {
            dd_log_info("leader election: Lease %s/%s released", l->cfg.lease_namespace,
                        l->cfg.lease_name);
            return;
        }
        if (st != 409)
            return;
        __atomic_add_fetch(&l->conflicts, 1, __ATOMIC_RELAXED);
    }
}

/* Sleeps ms (monotonic) unless stopped; true when stopped. */
static bool nap(struct dd_leader *l, uint64_t ms)
{
    struct timespec until;
    bool stop;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->lock);
    while (!atomic_load(&l->stop) &&
           pthread_cond_timedwait(&l->wake, &l->lock, &until) != ETIMEDOUT)
        ;
    stop = atomic_load(&l->stop);
    pthread_mutex_unlock(&l->lock);
    return stop;
}

static void *run(void *arg)
{
    struct dd_leader *l = arg;
    uint64_t retry_ms = (uint64_t)(l->cfg.retry_period_s * 1000.0);
    uint64_t deadline_ms = (uint64_t)(l->cfg.renew_deadline_s * 1000.0);

    dd_log_info("leader election: %s, Lease %s/%s (duration %g s, renew deadline %g s, retry "
                "%g s)",
                l->cfg.identity, l->cfg.lease_namespace, l->cfg.lease_name, l->cfg.lease_duration_s,
                l->cfg.renew_deadline_s, l->cfg.retry_period_s);
    for (;;) {
        dd_kubeclient_refresh(&l->kc, false);
        enum try_result r = try_acquire_or_renew(l);
        bool was = atomic_load(&l->leader);
        uint64_t now = dd_mono_ms();
        if (atomic_load(&l->stop))
            break;
        if (r == T_LEADER) {
            l->renewed_ms = now;
            if (!was)
                become(l, true, NULL);
        } else if (was && r == T_STANDBY) {
            become(l, false, "the Lease names another holder");
        } else if (was && now - l->renewed_ms >= deadline_ms) {
            become(l, false, "no renewal within the renew deadline");
        }
        sync_label(l);
        /* a standby tries with jitter (up to +20 %), as client-go does */
        uint64_t wait = retry_ms;
        if (!atomic_load(&l->leader))
            wait += (uint64_t)rand_r(&l->seed) % (retry_ms / 5 + 1);
        if (nap(l, wait))
            break;
    }
    atomic_store(&l->releasing, true);
    if (atomic_load(&l->leader)) {
        atomic_store(&l->leader, false);
        __atomic_add_fetch(&l->transitions, 1, __ATOMIC_RELAXED);
        release(l);
    }
    sync_label(l);
    return NULL;
}

int dd_leader_start(struct dd_leader *l)
{
    if (pthread_create(&l->thread, NULL, run, l) != 0)
        return -EAGAIN;
    l->started = true;
    return 0;
}

bool dd_leader_is_leader(const struct dd_leader *l)
{
    return !l || atomic_load(&l->leader);
}

bool dd_leader_is_leader_cb(void *ud)
{
    return dd_leader_is_leader(ud);
}

void dd_leader_stop(struct dd_leader *l)
{
    if (!l || !l->started)
        return;
    pthread_mutex_lock(&l->lock);
    atomic_store(&l->stop, true);
    pthread_cond_broadcast(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    l->started = false;
}

struct dd_leader *dd_leader_free(struct dd_leader *l)
{
    if (!l)
        return NULL;
    dd_leader_stop(l);
    dd_kubeclient_release(&l->kc);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->wake);
    dd_free(l);
    return NULL;
}

void dd_leader_metrics(struct dd_leader *l, FILE *m)
{
    fprintf(m,
            "# HELP dedupd_leader 1 when this replica answers the extender: the elected leader, "
            "or any placement role without --leader-elect.\n"
            "# TYPE dedupd_leader gauge\ndedupd_leader %d\n"
            "# HELP dedupd_leader_election 1 with --leader-elect.\n"
            "# TYPE dedupd_leader_election gauge\ndedupd_leader_election %d\n"
            "# HELP dedupd_leader_transitions_total Times this replica became or stopped being "
            "the leader.\n"
            "# TYPE dedupd_leader_transitions_total counter\n"
            "dedupd_leader_transitions_total %llu\n"
            "# HELP dedupd_leader_lease_conflicts_total Lease writes answered 409 Conflict (read "
            "again and retried).\n"
            "# TYPE dedupd_leader_lease_conflicts_total counter\n"
            "dedupd_leader_lease_conflicts_total %llu\n"
            "# HELP dedupd_leader_lease_errors_total Election rounds and label writes that "
            "failed.\n"
            "# TYPE dedupd_leader_lease_errors_total counter\n"
            "dedupd_leader_lease_errors_total %llu\n",
            dd_leader_is_leader(l) ? 1 : 0, l ? 1 : 0,
            l ? (unsigned long long)__atomic_load_n(&l->transitions, __ATOMIC_RELAXED) : 0ull,
            l ? (unsigned long long)__atomic_load_n(&l->conflicts, __ATOMIC_RELAXED) : 0ull,
            l ? (unsigned long long)__atomic_load_n(&l->errors, __ATOMIC_RELAXED) : 0ull);
}

void dd_leader_pod_namespace(const char *sa_dir, char *buf, size_t len)
{
    const char *env = getenv("POD_NAMESPACE");
    char path[1100];
    buf[0] = '\0';
    if (env && env[0]) {
        snprintf(buf, len, "%s", env);
        return;
    }
    snprintf(path, sizeof(path), "%.1000s/namespace", sa_dir ? sa_dir : DD_KUBE_SA_DIR);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, " \t\r\n")] = '\0';
    else
        buf[0] = '\0';
    fclose(f);
}
