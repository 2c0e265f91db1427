/*
 * vmseries: the guest-side helper of bench/vdo-vm-series.sh (built in the
 * VM's Debian 13 root with chroot, run inside the VM).
 *
 *   vmseries gen --kind random|text --seed S [--dup D --dup-seed S0 --dup-blocks M]
 *                [--seconds T] [--max-blocks N] [--count-file FILE]
 *     writes 4 KiB blocks to stdout until T seconds have passed or N blocks
 *     are out: each block is, with probability D (a seeded coin per block),
 *     a copy of block k < M of the stream (kind, S0) (k seeded too), else
 *     block i of the stream (kind, S). Block i of a stream is a function of
 *     (kind, seed, i) alone, so a copy is regenerated, never stored. random:
 *     bytes LZ4 cannot shrink; text: 4 KiB of log lines from a 1 MiB pool at
 *     a seeded offset, stamped with (seed, i) so every block is unique (LZ4
 *     keeps about 40 % of it: two fragments to a packer block). Only whole
 *     blocks are written. FILE gets "blocks dup_blocks" at the end.
 *
 *   vmseries jsonl NAME < HISTORY.json
 *     turns dedupd's /v1/volumes/NAME/history reply into JSON lines, one
 *     stored sample per line: {"time_ms": T, "volume": NAME, ...the sample}
 *     (the form `dedupctl model fit --data` reads).
 *
 * Exit: 0 ok; 1 an error (named); 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define BLOCK 4096
#define POOL  (1u << 20)
#define BATCH 64 /* blocks per write(2) */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* a 64-bit hash of (seed, i, salt) */
static uint64_t h3(uint64_t seed, uint64_t i, uint64_t salt)
{
    return mix64(mix64(seed * 0x9e3779b97f4a7c15ULL + salt) ^ (i + 0x632be59bd9b4e019ULL));
}

static void random_block(uint64_t seed, uint64_t i, unsigned char *out)
{
    uint64_t x = h3(seed, i, 1), w[BLOCK / 8];
    for (size_t k = 0; k < BLOCK / 8; k++) {
        x += 0x9e3779b97f4a7c15ULL;
        w[k] = mix64(x);
    }
    memcpy(out, w, BLOCK);
}

static char *pool;

/* 1 MiB of log lines with a few random fields (fixed seed: the same pool in
 * every run and every stream). */
static int make_pool(void)
{
    static const char *const ops[] = {"GET", "PUT", "POST", "DELETE", "HEAD"};
    static const char *const res[] = {"items", "users", "orders", "blobs", "sessions", "carts"};
    uint64_t x = 20250601;
    size_t n = 0;
    unsigned line = 0;

    pool = malloc(POOL + 256);
    if (!pool)
        return -1;
    while (n < POOL) {
        uint64_t r1 = mix64(++x), r2 = mix64(++x);
        int k = snprintf(pool + n, 256,
                         "2025-06-01T12:%02u:%02u.%03uZ INFO svc-%u req=%012" PRIx64
                         " user=u%05u op=%s path=/api/v1/%s/%u status=%u ms=%u\n",
                         (line / 60) % 60, line % 60, line % 1000, (unsigned)(r2 % 8), r1 >> 16,
                         (unsigned)(r2 >> 8) % 100000, ops[(r2 >> 24) % 5], res[(r2 >> 32) % 6],
                         (unsigned)(r2 >> 40) % 10000, (r2 >> 56) % 16 ? 200 : 500,
                         (unsigned)(r2 >> 48) % 250);
        if (k <= 0)
            return -1;
        n += (size_t)k;
        line++;
    }
    return 0;
}

static void text_block(uint64_t seed, uint64_t i, unsigned char *out)
{
    uint64_t h = h3(seed, i, 2);
    size_t off = (size_t)(h % ((POOL - BLOCK) / 64)) * 64;
    char tag[48];
    int k;

    memcpy(out, pool + off, BLOCK);
    k = snprintf(tag, sizeof(tag), "#blk %016" PRIx64 " %012" PRIx64 "\n", seed, i);
    memcpy(out, tag, (size_t)k);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end)
        return -1;
    *ret = v;
    return 0;
}

static int parse_double(const char *s, double *ret)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end)
        return -1;
    *ret = v;
    return 0;
}

static int cmd_gen(int argc, char **argv)
{
    bool text = false;
    uint64_t seed = 1, dup_seed = 0, dup_blocks = 0, max_blocks = UINT64_MAX, n = 0, ndup = 0;
    double dup = 0, seconds = 0, t0;
    const char *count_file = NULL;
    unsigned char *buf;

    for (int a = 2; a < argc; a++) {
        const char *k = argv[a], *v = a + 1 < argc ? argv[a + 1] : NULL;
        int bad = 0;
        if (!v)
            bad = 1;
        else if (strcmp(k, "--kind") == 0)
            bad = strcmp(v, "text") == 0 ? (text = true, 0) : strcmp(v, "random") != 0;
        else if (strcmp(k, "--seed") == 0)
            bad = parse_u64(v, &seed);
        else if (strcmp(k, "--dup") == 0)
            bad = parse_double(v, &dup) || dup < 0 || dup > 1;
        else if (strcmp(k, "--dup-seed") == 0)
            bad = parse_u64(v, &dup_seed);
        else if (strcmp(k, "--dup-blocks") == 0)
            bad = parse_u64(v, &dup_blocks);
        else if (strcmp(k, "--seconds") == 0)
            bad = parse_double(v, &seconds) || seconds < 0;
        else if (strcmp(k, "--max-blocks") == 0)
            bad = parse_u64(v, &max_blocks);
        else if (strcmp(k, "--count-file") == 0)
            count_file = v;
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "vmseries gen: bad option or value: %s %s\n", k, v ? v : "");
            return 2;
        }
        a++;
    }
    if (dup > 0 && dup_blocks == 0) {
        fprintf(stderr, "vmseries gen: --dup needs --dup-blocks M > 0 (the stream copied)\n");
        return 2;
    }
    if (seconds <= 0 && max_blocks == UINT64_MAX) {
        fprintf(stderr, "vmseries gen: --seconds or --max-blocks is needed\n");
        return 2;
    }
    if (text && make_pool() < 0) {
        fprintf(stderr, "vmseries gen: cannot make the text pool\n");
        return 1;
    }
    buf = aligned_alloc(BLOCK, (size_t)BLOCK * BATCH);
    if (!buf)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    t0 = now_s();
    while (n < max_blocks && (seconds <= 0 || now_s() - t0 < seconds)) {
        size_t k = 0;
        for (; k < BATCH && n + k < max_blocks; k++) {
            uint64_t i = n + k, s = seed, j = i;
            /* the coin and the copied block's index: 53-bit uniform draws */
            if (dup > 0 && (double)(h3(seed, i, 3) >> 11) * 0x1.0p-53 < dup) {
                s = dup_seed;
                j = h3(seed, i, 4) % dup_blocks;
                ndup++;
            }
            if (text)
                text_block(s, j, buf + k * BLOCK);
            else
                random_block(s, j, buf + k * BLOCK);
        }
        if (write_all(STDOUT_FILENO, buf, k * BLOCK) < 0) {
            fprintf(stderr, "vmseries gen: write: %s after %" PRIu64 " blocks\n", strerror(errno),
                    n);
            free(buf);
            return 1;
        }
        n += k;
    }
    free(buf);
    free(pool);
    if (count_file) {
        FILE *f = fopen(count_file, "we");
        if (!f || fprintf(f, "%" PRIu64 " %" PRIu64 "\n", n, ndup) < 0 || fclose(f) != 0) {
            fprintf(stderr, "vmseries gen: cannot write %s\n", count_file);
            return 1;
        }
    }
    return 0;
}

static int cmd_jsonl(int argc, char **argv)
{
    json_error_t je;
    json_t *doc, *pts, *p;
    size_t i;

    if (argc != 3) {
        fprintf(stderr, "usage: vmseries jsonl NAME < HISTORY.json\n");
        return 2;
    }
    doc = json_loadf(stdin, 0, &je);
    pts = doc ? json_object_get(doc, "points") : NULL;
    if (!json_is_array(pts)) {
        fprintf(stderr, "vmseries jsonl: line %d: %s\n", je.line,
                doc ? "no \"points\" array" : je.text);
        json_decref(doc);
        return 1;
    }
    json_array_foreach(pts, i, p)
    {
        json_t *s = json_object_get(p, "sample"), *line;
        if (!json_is_object(s))
            continue;
        line = json_pack("{s:O, s:s}", "time_ms", json_object_get(p, "time_ms"), "volume", argv[2]);
        if (!line || json_object_update_missing(line, s) < 0 ||
            json_dumpf(line, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10)) < 0 ||
            putchar('\n') == EOF) {
            json_decref(line);
            json_decref(doc);
            fprintf(stderr, "vmseries jsonl: cannot write a line\n");
            return 1;
        }
        json_decref(line);
    }
    json_decref(doc);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "gen") == 0)
        return cmd_gen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "jsonl") == 0)
        return cmd_jsonl(argc, argv);
    fprintf(stderr, "usage: vmseries gen ... | vmseries jsonl NAME < HISTORY.json\n");
    return 2;
}
