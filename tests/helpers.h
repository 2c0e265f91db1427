/*
 * Helpers shared by the test binaries: temporary directories that clean up
 * after themselves, file writers, a deterministic PRNG for unique block
 * content, and a runner that captures a child's output. cmocka is included
 * here in the order it needs.
 */
#ifndef DD_TEST_HELPERS_H
#define DD_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

/* A fresh directory under $TMPDIR (or /var/tmp); the caller frees the string. */
char *tt_tmpdir(void);
/* rm -rf, without following symlinks. */
void tt_rmtree(const char *path);
/* dir + "/" + name; the caller frees. */
char *tt_path(const char *dir, const char *name);
void tt_write_file(const char *path, const void *data, size_t len);
void tt_append_file(const char *path, const void *data, size_t len);

/* splitmix64: deterministic pseudo-random bytes (no two 4 KiB blocks alike). */
uint64_t tt_rand64(uint64_t *state);
void tt_fill_random(void *buf, size_t len, uint64_t *state);

/*
 * Runs argv (argv[0] a path) with stdin from /dev/null; stdout and stderr
 * are captured into NUL-terminated strings the caller frees (either pointer
 * may be NULL). Returns the exit status, or -1 if the child did not exit.
 */
int tt_run(const char *const argv[], char **ret_stdout, char **ret_stderr);

/*
 * Reads tests/fixtures/<rel> (under $DD_SOURCE_DIR, set by ctest) and returns
 * its body: the leading '#' comment lines that every reference capture
 * starts with are dropped, the rest is returned byte for byte. The caller
 * frees; *ret_len (may be NULL) gets the body's length.
 */
char *tt_fixture(const char *rel, size_t *ret_len);

/* True under CI=true, where no check may silently not run. */
int tt_in_ci(void);

/* A required real part (a tool, root, /proc) is missing: outside CI the
 * test skips and says why; under CI=true it fails with the reason. */
#define tt_skip(...)                                                                               \
    do {                                                                                           \
        if (tt_in_ci())                                                                            \
            fail_msg(__VA_ARGS__);                                                                 \
        print_message(__VA_ARGS__);                                                                \
        print_message(" (skipped)\n");                                                             \
        skip();                                                                                    \
    } while (0)

/* True when the named program is on PATH. */
int tt_have_program(const char *name);

/* A whole text file (a daemon's log) as a NUL-terminated string the caller
 * frees; "" when it cannot be read yet. */
char *tt_read_text(const char *path);

/* A program of the build under test: $DD_BUILD_DIR/name (a static buffer,
 * overwritten by the next call). */
const char *tt_bin(const char *name);

/* The build's dedupd with argv, its stderr (the log) to log: the child's
 * pid. Fails the test when fork fails. */
pid_t tt_daemon_fork(const char *const *argv, const char *log);
/* The port a started dedupd logged ("(port N)"), polling its log every
 * 25 ms up to tries times; 0 when it never did. */
unsigned tt_daemon_port(const char *log, unsigned tries);

/* dedupctl vdo-sim: writes a replay of the workload file in out, with
 * `intervals` 10 s intervals and the given seed; fails the test with
 * vdo-sim's message otherwise. */
void tt_vdo_sim(const char *workload_file, unsigned intervals, unsigned seed, const char *out);

/* A workload file for dedupctl vdo-sim: `volumes` volumes v0, v1, ... with
 * rates, duplicate shares, index sizes, load and compression drawn from
 * seed, and a new phase of them every 10 intervals up to `intervals`. */
void tt_random_workload(const char *path, unsigned volumes, unsigned intervals, unsigned cpus,
                        uint64_t seed);

/*
 * Test certificates made with the openssl CLI in dir (a missing openssl
 * fails the test: TLS checks never silently do not run). script is shell
 * run in dir with two functions:
 *   ca NAME SUBJECT                       NAME.pem/.key, a self-signed CA
 *   leaf NAME SUBJECT CA SECTION SERIAL   NAME.pem/.key signed by CA.pem
 * SUBJECT is openssl's "/CN=.../O=..." form; SECTION is one of
 *   server       serverAuth, subjectAltName IP:127.0.0.1
 *   client       clientAuth, no subjectAltName
 *   client_san   clientAuth, subjectAltName from $SAN ("DNS:a,DNS:b")
 * Certificates are EC P-256, valid for 2 days.
 */
void tt_openssl_pki(const char *dir, const char *script);

/* An HTTP answer: status -1 when no answer came; body NUL-terminated, never
 * NULL, freed by the caller. */
struct tt_reply {
    long status;
    char *body;
    size_t len;
};

/*
 * One plain-HTTP request with libcurl (path as given: no normalising, so
 * "/../" reaches the server). body NULL sends none; blen 0 means
 * strlen(body). timeout_s bounds the whole call.
 */
struct tt_reply tt_http(const char *url, const char *method, const char *body, size_t blen,
                        long timeout_s);
/* The same with extra request headers ("Name: value", NULL-terminated;
 * NULL: none). */
struct tt_reply tt_http_headers(const char *url, const char *method, const char *body, size_t blen,
                                long timeout_s, const char *const *headers);

#endif
