/*
 * Test helpers. Failures here abort the test through cmocka's fail_msg, so the
 * tests themselves read as a list of assertions.
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

extern char **environ;

char *tt_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl;

    if (!base || !*base)
        base = "/var/tmp";
    if (asprintf(&tmpl, "%s/dedupd-test-XXXXXX", base) < 0)
        fail_msg("asprintf");
    if (!mkdtemp(tmpl))
        fail_msg("mkdtemp %s: %s", tmpl, strerror(errno));
    return tmpl;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void tt_rmtree(const char *path)
{
    if (path)
        nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

char *tt_path(const char *dir, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        fail_msg("asprintf");
    return p;
}

static void write_mode(const char *path, const void *data, size_t len, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    const char *p = data;

    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            fail_msg("write %s: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    close(fd);
}

void tt_write_file(const char *path, const void *data, size_t len)
{
    write_mode(path, data, len, O_TRUNC);
}

void tt_append_file(const char *path, const void *data, size_t len)
{
    write_mode(path, data, len, O_APPEND);
}

uint64_t tt_rand64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tt_fill_random(void *buf, size_t len, uint64_t *state)
{
    uint8_t *p = buf;
    while (len >= 8) {
        uint64_t v = tt_rand64(state);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    while (len-- > 0)
        *p++ = (uint8_t)tt_rand64(state);
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        fail_msg("malloc");
    lseek(fd, 0, SEEK_SET);
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                fail_msg("realloc");
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

int tt_run(const char *const argv[], char **ret_stdout, char **ret_stderr)
{
    /* posix_spawn wants char *const[]: hand it private copies */
    size_t argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc(argc + 1, sizeof(*args));
    if (!args)
        fail_msg("calloc");
    for (size_t i = 0; i < argc; i++)
        args[i] = strdup(argv[i]);
    char out_tmpl[] = "/tmp/dd-test-out-XXXXXX", err_tmpl[] = "/tmp/dd-test-err-XXXXXX";
    int out = mkstemp(out_tmpl), err = mkstemp(err_tmpl), status = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;

    if (out < 0 || err < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    unlink(out_tmpl);
    unlink(err_tmpl);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, err, 2);
    if (posix_spawn(&pid, args[0], &fa, NULL, args, environ) != 0)
        fail_msg("spawn %s: %s", args[0], strerror(errno));
    posix_spawn_file_actions_destroy(&fa);
    for (size_t i = 0; i < argc; i++)
        free(args[i]);
    free(args);
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
    }
    if (ret_stdout)
        *ret_stdout = slurp_fd(out);
    if (ret_stderr)
        *ret_stderr = slurp_fd(err);
    close(out);
    close(err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tt_have_program(const char *name)
{
    const char *path = getenv("PATH");
    char *copy, *save = NULL;
    int found = 0;

    if (!path)
        return 0;
    copy = strdup(path);
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *p = tt_path(dir, name);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

char *tt_fixture(const char *rel, size_t *ret_len)
{
    const char *src = getenv("DD_SOURCE_DIR");
    char *path, *buf, *body;
    size_t cap = 1 << 16, len = 0;
    FILE *f;

    if (!src)
        fail_msg("DD_SOURCE_DIR is not set (run through ctest)");
    if (asprintf(&path, "%s/tests/fixtures/%s", src, rel) < 0)
        fail_msg("asprintf");
    f = fopen(path, "rb");
    if (!f)
        fail_msg("fixture %s: %s", path, strerror(errno));
    buf = malloc(cap);
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    free(path);
    buf[len] = '\0';
    body = buf;
    while (*body == '#') {
        char *nl = strchr(body, '\n');
        body = nl ? nl + 1 : buf + len;
    }
    len -= (size_t)(body - buf);
    memmove(buf, body, len + 1);
    if (ret_len)
        *ret_len = len;
    return buf;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct tt_reply *r = ud;
    char *nb = realloc(r->body, r->len + size * n + 1);
    if (!nb)
        return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

struct tt_reply tt_http(const char *url, const char *method, const char *body, size_t blen,
                        long timeout_s)
{
    return tt_http_headers(url, method, body, blen, timeout_s, NULL);
}

struct tt_reply tt_http_headers(const char *url, const char *method, const char *body, size_t blen,
                                long timeout_s, const char *const *headers)
{
    struct tt_reply r = {0};
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    if (c) {
        if (h)
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
        curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
        if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(blen ? blen : strlen(body)));
        }
        if (curl_easy_perform(c) != CURLE_OK)
            r.status = -1;
        else
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(c);
    } else {
        r.status = -1;
    }
    curl_slist_free_all(h);
    if (!r.body)
        r.body = strdup("");
    return r;
}

const char *tt_bin(const char *name)
{
    static char path[4200];
    const char *dir = getenv("DD_BUILD_DIR");
    if (!dir)
        fail_msg("DD_BUILD_DIR is not set (run through ctest)");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

void tt_vdo_sim(const char *workload_file, unsigned intervals, unsigned seed, const char *out)
{
    char n[16], sd[16], dedupctl[4200];
    snprintf(n, sizeof(n), "%u", intervals);
    snprintf(sd, sizeof(sd), "%u", seed);
    snprintf(dedupctl, sizeof(dedupctl), "%s", tt_bin("dedupctl"));
    const char *argv[] = {
        dedupctl, "vdo-sim", "--workload", workload_file, "--intervals", n,   "--interval-seconds",
        "10",     "--seed",  sd,           "--out",       out,           NULL};
    char *err = NULL;
    if (tt_run(argv, NULL, &err) != 0)
        fail_msg("vdo-sim: %s", err ? err : "?");
    free(err);
}

pid_t tt_daemon_fork(const char *const *argv, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        execv(tt_bin("dedupd"), (char *const *)(uintptr_t)argv);
        _exit(98);
    }
    return pid;
}

unsigned tt_daemon_port(const char *log, unsigned tries)
{
    for (unsigned i = 0; i < tries; i++) {
        struct timespec nap = {0, 25 * 1000000L};
        char *text = tt_read_text(log), *p = strstr(text, "(port ");
        unsigned port = p ? (unsigned)strtoul(p + 6, NULL, 10) : 0;
        free(text);
        if (port)
            return port;
        nanosleep(&nap, NULL);
    }
    return 0;
}

char *tt_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (f) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            char *nb = realloc(buf, len + n + 1);
            if (!nb)
                break;
            buf = nb;
            memcpy(buf + len, chunk, n);
            len += n;
        }
        fclose(f);
    }
    if (!buf)
        return strdup("");
    buf[len] = '\0';
    return buf;
}

int tt_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && strcmp(ci, "true") == 0;
}

void tt_random_workload(const char *path, unsigned volumes, unsigned intervals, unsigned cpus,
                        uint64_t seed)
{
    uint64_t st = seed;
    json_t *vols = json_array(), *phases = json_array();
#define U(lo, hi) ((lo) + ((hi) - (lo)) * (double)(tt_rand64(&st) >> 11) / 9007199254740992.0)
    for (unsigned i = 0; i < volumes; i++) {
        char name[16];
        snprintf(name, sizeof(name), "v%u", i);
        json_array_append_new(
            vols, json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:b}", "name", name,
                            "write_mbps", U(20, 200), "read_mbps", U(0, 300), "duplicate_share",
                            U(0, 0.8), "zero_share", 0.03, "compressible_share", U(0, 0.15),
                            "index_entries", (json_int_t)pow(10, U(6, 8)), "stored_gib", U(10, 400),
                            "cpu_load", U(0, 0.1), "compression", U(0, 1) < 0.5));
    }
    for (unsigned k = 10; k < intervals; k += 10) {
        json_t *pv = json_object();
        for (unsigned i = 0; i < volumes; i++) {
            char name[16];
            snprintf(name, sizeof(name), "v%u", i);
            json_object_set_new(pv, name,
                                json_pack("{s:f, s:f, s:f, s:f, s:b}", "write_mbps", U(20, 200),
                                          "read_mbps", U(0, 300), "duplicate_share", U(0, 0.8),
                                          "cpu_load", U(0, 0.12), "compression", U(0, 1) < 0.5));
        }
        json_array_append_new(phases,
                              json_pack("{s:i, s:o}", "at_interval", (int)k, "volumes", pv));
    }
#undef U
    json_t *w = json_pack("{s:{s:i}, s:o, s:o}", "node", "cpus", (int)cpus, "volumes", vols,
                          "phases", phases);
    if (json_dump_file(w, path, 0) != 0)
        fail_msg("cannot write the workload %s", path);
    json_decref(w);
}

/* One extension section per kind of certificate (helpers.h). */
static const char pki_cnf[] = "[req]\n"
                              "distinguished_name = dn\n"
                              "prompt = no\n"
                              "[dn]\n"
                              "CN = unused\n"
                              "[ca]\n"
                              "basicConstraints = critical,CA:TRUE\n"
                              "keyUsage = critical,keyCertSign,cRLSign\n"
                              "subjectKeyIdentifier = hash\n"
                              "[server]\n"
                              "basicConstraints = critical,CA:FALSE\n"
                              "keyUsage = critical,digitalSignature\n"
                              "extendedKeyUsage = serverAuth\n"
                              "subjectAltName = IP:127.0.0.1\n"
                              "[client]\n"
                              "basicConstraints = critical,CA:FALSE\n"
                              "keyUsage = critical,digitalSignature\n"
                              "extendedKeyUsage = clientAuth\n"
                              "[client_san]\n"
                              "basicConstraints = critical,CA:FALSE\n"
                              "keyUsage = critical,digitalSignature\n"
                              "extendedKeyUsage = clientAuth\n"
                              "subjectAltName = $ENV::SAN\n";

/* $1 = name, $2 = subject, $3 = signing CA, $4 = extension section, $5 = serial */
static const char pki_functions[] =
    "set -e\n"
    "key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
    "SAN=${SAN:-DNS:unused}; export SAN\n"
    "ca() {\n"
    "  openssl req -x509 -new -config openssl.cnf -extensions ca $key -days 2 \\\n"
    "    -keyout $1.key -out $1.pem -subj \"$2\"\n"
    "}\n"
    "leaf() {\n"
    "  openssl req -new -config openssl.cnf $key -keyout $1.key -out $1.csr -subj \"$2\"\n"
    "  openssl x509 -req -in $1.csr -CA $3.pem -CAkey $3.key -set_serial $5 -days 2 \\\n"
    "    -extfile openssl.cnf -extensions $4 -out $1.pem\n"
    "}\n";

void tt_openssl_pki(const char *dir, const char *script)
{
    char *cnf, *cmd, *out = NULL, *err = NULL;
    int rc;

    if (!tt_have_program("openssl"))
        fail_msg("the openssl CLI is needed to make the test certificates (apt-get install "
                 "openssl)");
    cnf = tt_path(dir, "openssl.cnf");
    tt_write_file(cnf, pki_cnf, sizeof(pki_cnf) - 1);
    if (asprintf(&cmd, "cd '%s' && { %s%s}", dir, pki_functions, script) < 0)
        fail_msg("asprintf");
    rc = tt_run((const char *const[]){"/bin/sh", "-c", cmd, NULL}, &out, &err);
    if (rc != 0)
        fail_msg("openssl failed (%d): %s%s", rc, out, err);
    free(out);
    free(err);
    free(cmd);
    free(cnf);
}
