/*
 * The VDO text parsers on every reference capture (real dm-vdo 6.12, lvm2's
 * unit-test reply, kvdo status lines, synthesized files) and on bad input,
 * with the exact error. Includes the tripwire: a key the project relies on
 * must be present in the real captures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/vdo.h"
#include "helpers.h"

static const char *const v36_replies[] = {
    "vdo-real-6.12/set0-empty-dmsetup-message-vdo0-stats.txt",
    "vdo-real-6.12/set0-empty-dmsetup-message-lvm-stats.txt",
    "vdo-real-6.12/set1-dmsetup-message-vdo0-stats.txt",
    "vdo-real-6.12/set1-dmsetup-message-lvm-stats.txt",
    "vdo-real-6.12/set2-dmsetup-message-vdo0-stats.txt",
    "vdo-real-6.12/set2-dmsetup-message-lvm-stats.txt",
    "vdo/lvm2-unit-test-dm-vdo-stats-message-v36.txt",
    "vdo/synth-dm-vdo-stats-message-v36-normal.txt",
    "vdo/synth-dm-vdo-stats-message-v36-recovering.txt",
};

static void parse_fixture(const char *rel, struct dd_vdo_stats *s)
{
    struct dd_parse_error err = {0};
    size_t len;
    char *text = tt_fixture(rel, &len);
    if (dd_vdo_stats_parse(text, len, s, &err) != 0)
        fail_msg("%s: %u:%u: %s", rel, err.line, err.column, err.message);
    free(text);
}

static void test_all_v36_replies_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(v36_replies); i++) {
        struct dd_vdo_stats s;
        char missing[512];
        parse_fixture(v36_replies[i], &s);
        assert_int_equal(s.n, 156);
        assert_int_equal(s.groups, 26);
        assert_string_equal(dd_vdo_stats_get(&s, "version"), "36");
        /* tripwire: every key we rely on is still in the reference */
        if (dd_vdo_stats_missing(&s, missing, sizeof(missing)) != 0)
            fail_msg("%s lacks required keys: %s", v36_replies[i], missing);
        dd_vdo_stats_release(&s);
    }
}

static void test_paths_and_values(void **state)
{
    struct dd_vdo_stats s;
    uint64_t v;
    (void)state;
    parse_fixture("vdo-real-6.12/set1-dmsetup-message-vdo0-stats.txt", &s);
    assert_int_equal(dd_vdo_stats_u64(&s, "dataBlocksUsed", &v), 0);
    assert_int_equal(v, 81920);
    /* names repeat across groups: paths keep them apart */
    assert_int_equal(dd_vdo_stats_u64(&s, "biosIn.write", &v), 0);
    assert_int_equal(v, 163840);
    assert_int_equal(dd_vdo_stats_u64(&s, "biosOut.write", &v), 0);
    assert_int_equal(v, 81920);
    assert_int_equal(dd_vdo_stats_u64(&s, "biosMetaCompleted.write", &v), 0);
    assert_int_equal(v, 114); /* submitted != completed on real hardware */
    assert_int_equal(dd_vdo_stats_u64(&s, "journal.entries.started", &v), 0);
    assert_int_equal(v, 164222);
    assert_string_equal(dd_vdo_stats_get(&s, "mode"), "normal");
    assert_int_equal(dd_vdo_stats_u64(&s, "mode", &v), DD_E_PARSE);
    assert_int_equal(dd_vdo_stats_u64(&s, "nosuch.key", &v), -ENOENT);
    assert_string_equal(s.kv[0].key, "version");
    assert_string_equal(s.kv[s.n - 1].key, "index.entriesDiscarded");
    dd_vdo_stats_release(&s);
}

static void test_v35_and_unknown_keys(void **state)
{
    /* kvdo 8.x (version 35): releaseVersion present, entriesDiscarded absent;
     * a key we do not know is kept, not rejected */
    static const char reply[] =
        "{ version : 35, releaseVersion : 133524, dataBlocksUsed : 10, overheadBlocksUsed : 5, "
        "logicalBlocksUsed : 20, physicalBlocks : 100, logicalBlocks : 200, blockSize : 4096, "
        "mode : normal, inRecoveryMode : 0, futureGroup : { newCounter : 7, }, "
        "index : { entriesIndexed : 3, postsFound : 1, postsNotFound : 3, }, }\n";
    struct dd_vdo_stats s;
    struct dd_parse_error err;
    char missing[1024];
    (void)state;
    assert_int_equal(dd_vdo_stats_parse(reply, strlen(reply), &s, &err), 0);
    assert_string_equal(dd_vdo_stats_get(&s, "releaseVersion"), "133524");
    assert_string_equal(dd_vdo_stats_get(&s, "futureGroup.newCounter"), "7");
    assert_null(dd_vdo_stats_get(&s, "index.entriesDiscarded"));
    /* the model's keys that are missing are named */
    assert_true(dd_vdo_stats_missing(&s, missing, sizeof(missing)) > 0);
    assert_non_null(strstr(missing, "biosIn.write"));
    assert_non_null(strstr(missing, "hashLock.dedupeAdviceValid"));
    assert_null(strstr(missing, "dataBlocksUsed"));
    dd_vdo_stats_release(&s);
}

static void test_config_reply(void **state)
{
    struct dd_vdo_stats c;
    uint64_t v;
    (void)state;
    parse_fixture("vdo-real-6.12/set1-dmsetup-message-vdo0-config.txt", &c);
    assert_int_equal(c.n, 6);
    assert_int_equal(dd_vdo_stats_u64(&c, "physicalSize", &v), 0);
    assert_int_equal(v, 12884901888ull);
    assert_int_equal(dd_vdo_stats_u64(&c, "slabSize", &v), 0);
    assert_int_equal(v, 131072);
    assert_string_equal(dd_vdo_stats_get(&c, "index.memorySize"), "0.25");
    assert_string_equal(dd_vdo_stats_get(&c, "index.isSparse"), "0");
    dd_vdo_stats_release(&c);
}

static void test_bad_replies(void **state)
{
    static const struct {
        const char *in;
        int ret;
        unsigned line, column;
        const char *msg;
    } cases[] = {
        {"", DD_E_PARSE, 1, 1, "unexpected end of input: a reply starts with '{'"},
        {"version : 36", DD_E_PARSE, 1, 1, "unexpected 'v': a reply starts with '{'"},
        {"{ version : 36, ", DD_E_PARSE, 1, 17, "unexpected end of input: expected a key or '}'"},
        {"{ version 36, }", DD_E_PARSE, 1, 11, "unexpected '3': expected ':' after a key"},
        {"{ version : , }", DD_E_PARSE, 1, 13, "unexpected ',': value"},
        {"{ a : 1 b : 2, }", DD_E_PARSE, 1, 9, "unexpected 'b': expected ',' or '}' after a value"},
        {"{ a : { b : 1, }", DD_E_PARSE, 1, 17, "unexpected end of input: expected a key or '}'"},
        {"{ a : 1, }, }", DD_E_PARSE, 1, 11, "unexpected ',': text after the closing '}'"},
        {"{ }", DD_E_PARSE, 1, 4, "reply holds no values"},
        {"{ a : 1,\n b : \x01, }", DD_E_PARSE, 2, 6, "unexpected byte 0x01: value"},
        {"{ a : \"x\", }", DD_E_PARSE, 1, 7, "unexpected '\"': value"},
        {"{ a : 1, g : { b : 2, }, a : 3, }", DD_E_PARSE, 1, 31, "duplicate key 'a'"},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(cases); i++) {
        struct dd_vdo_stats s;
        struct dd_parse_error err = {0};
        int r = dd_vdo_stats_parse(cases[i].in, strlen(cases[i].in), &s, &err);
        if (r != cases[i].ret || err.line != cases[i].line || err.column != cases[i].column ||
            strcmp(err.message, cases[i].msg) != 0)
            fail_msg("case %zu '%s': got %d at %u:%u '%s'", i, cases[i].in, r, err.line, err.column,
                     err.message);
        assert_int_equal(s.n, 0);
    }
}

static void test_limits(void **state)
{
    struct dd_vdo_stats s;
    struct dd_parse_error err;
    char *big, *deep;
    size_t pos = 0;
    (void)state;

    /* truncated real reply: every prefix fails cleanly */
    size_t len;
    char *text = tt_fixture("vdo-real-6.12/set1-dmsetup-message-vdo0-stats.txt", &len);
    for (size_t cut = 0; cut + 2 < len; cut += 37)
        assert_int_equal(dd_vdo_stats_parse(text, cut, &s, &err), DD_E_PARSE);
    free(text);

    /* a reply past the size cap */
    big = malloc(DD_VDO_MAX_REPLY_BYTES + 2);
    memset(big, ' ', DD_VDO_MAX_REPLY_BYTES + 1);
    big[0] = '{';
    assert_int_equal(dd_vdo_stats_parse(big, DD_VDO_MAX_REPLY_BYTES + 1, &s, &err), DD_E_TOOBIG);
    free(big);

    /* too many keys */
    size_t cap = 16 * (DD_VDO_MAX_KEYS + 2);
    big = malloc(cap);
    pos = (size_t)snprintf(big, cap, "{");
    for (unsigned i = 0; i <= DD_VDO_MAX_KEYS; i++)
        pos += (size_t)snprintf(big + pos, cap - pos, " k%u : 1,", i);
    pos += (size_t)snprintf(big + pos, cap - pos, " }");
    assert_int_equal(dd_vdo_stats_parse(big, pos, &s, &err), DD_E_TOOBIG);
    assert_non_null(strstr(err.message, "more than"));
    free(big);

    /* nesting past the cap */
    deep = malloc(1024);
    pos = 0;
    deep[pos++] = '{';
    for (unsigned i = 0; i < DD_VDO_MAX_DEPTH + 1; i++) {
        memcpy(deep + pos, " g : {", 6);
        pos += 6;
    }
    deep[pos] = '\0';
    assert_int_equal(dd_vdo_stats_parse(deep, pos, &s, &err), DD_E_PARSE);
    assert_non_null(strstr(err.message, "nested deeper"));
    free(deep);

    /* an over-long token */
    char longtok[400];
    memset(longtok, 'a', sizeof(longtok));
    memcpy(longtok, "{ k : ", 6);
    assert_int_equal(dd_vdo_stats_parse(longtok, sizeof(longtok), &s, &err), DD_E_PARSE);
    assert_non_null(strstr(err.message, "longer than"));
}

static void test_status_lines(void **state)
{
    static const struct {
        const char *rel;
        const char *device, *mode, *index;
        bool compression;
        uint64_t used, total;
    } good[] = {
        {"vdo-real-6.12/set1-dmsetup-status-vdo0.txt", "/dev/vdb", "normal", "online", false,
         873360, 3145728},
        {"vdo-real-6.12/messages-dmsetup-status-vdo0-after-compression-on.txt", "/dev/vdb",
         "normal", "online", true, 0, 0},
        {"vdo/dmsetup-status-kvdo-6.1.1.125-issue25.txt", "/dev/sda", "normal", "online", false,
         6552105, 976562432},
        {"vdo/dmsetup-status-kvdo-6.2.7.17-issue61.txt", "/dev/sda4", "normal", "online", false,
         9540440, 188610043},
        {"vdo/synth-dmsetup-status-dm-vdo.txt", "/dev/dm-2", "normal", "online", true, 6293723,
         26214400},
    };
    (void)state;
    for (size_t i = 0; i < DD_ARRAY_SIZE(good); i++) {
        struct dd_vdo_status st;
        struct dd_parse_error err = {0};
        char *text = tt_fixture(good[i].rel, NULL);
        if (dd_vdo_status_parse(text, &st, &err) != 0)
            fail_msg("%s: %u:%u %s", good[i].rel, err.line, err.column, err.message);
        assert_string_equal(st.device, good[i].device);
        assert_string_equal(st.mode, good[i].mode);
        assert_string_equal(st.index_state, good[i].index);
        assert_int_equal(st.compression, good[i].compression);
        if (good[i].total) {
            assert_int_equal(st.used_blocks, good[i].used);
            assert_int_equal(st.total_blocks, good[i].total);
        }
        free(text);
    }
    /* "name: " prefixed lines from a plain `dmsetup status` */
    struct dd_vdo_status st;
    struct dd_parse_error err;
    assert_int_equal(dd_vdo_status_parse("vg0-vpool0-vpool: 0 41945088 vdo /dev/dm-1 normal - "
                                         "online online 857064 2621440",
                                         &st, &err),
                     0);
    assert_true(st.compression);
    assert_int_equal(
        dd_vdo_status_parse("/dev/vdb recovering recovering suspended offline 1 2", &st, &err), 0);
    assert_true(st.recovering);
    assert_string_equal(st.index_state, "suspended");

    static const struct {
        const char *in, *msg;
        unsigned column;
    } bad[] = {
        {"",
         "expected 7 status fields (device mode recovering index compression used total), "
         "found 0",
         0},
        {"/dev/vdb normal - online offline 873360",
         "expected 7 status fields (device mode "
         "recovering index compression used total), "
         "found 6",
         1},
        {"/dev/vdb weird - online offline 1 2", "mode must be normal, recovering or read-only", 10},
        {"/dev/vdb normal x online offline 1 2", "recovery flag must be '-' or recovering", 17},
        {"/dev/vdb normal - dancing offline 1 2", "unknown index state 'dancing'", 19},
        {"/dev/vdb normal - online maybe 1 2", "compression must be online or offline", 26},
        {"/dev/vdb normal - online offline x1 2", "used blocks is not a non-negative integer: 'x1'",
         34},
        {"/dev/vdb normal - online offline 5 2", "used blocks 5 exceed total 2", 34},
        {"/dev/vdb normal - online offline 1 99999999999999999999",
         "total blocks is not a non-negative integer: '99999999999999999999'", 36},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(dd_vdo_status_parse(bad[i].in, &st, &err), DD_E_PARSE);
        if (strcmp(err.message, bad[i].msg) != 0 || err.column != bad[i].column)
            fail_msg("'%s': got col %u '%s'", bad[i].in, err.column, err.message);
    }
}

static void test_table_lines(void **state)
{
    struct dd_vdo_table t;
    struct dd_parse_error err = {0};
    (void)state;
    char *text = tt_fixture("vdo-real-6.12/set1-dmsetup-table-vdo0.txt", NULL);
    assert_int_equal(dd_vdo_table_parse(text, &t, &err), 0);
    assert_int_equal(t.version, 4);
    assert_int_equal(t.logical_sectors, 41943040);
    assert_string_equal(t.device, "/dev/vdb");
    assert_int_equal(t.physical_blocks, 3145728);
    assert_int_equal(t.minimum_io, 4096);
    assert_int_equal(t.block_map_cache_blocks, 32768);
    assert_int_equal(t.block_map_era, 16380);
    assert_true(t.deduplication);
    assert_false(t.compression); /* a bare table leaves compression off */
    free(text);

    text = tt_fixture("vdo-real-6.12/set1-dmsetup-table-lvm.txt", NULL);
    /* the lvm file lists the linear LV first: pick the pool's line */
    char *line = strstr(text, "vg0-vpool0-vpool:");
    if (!line)
        line = text;
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    assert_int_equal(dd_vdo_table_parse(line, &t, &err), 0);
    assert_string_equal(t.device, "/dev/dm-1");
    assert_true(t.compression);
    assert_int_equal(t.threads_bio, 4);
    assert_int_equal(t.bio_rotation, 64);
    assert_int_equal(t.threads_cpu, 2);
    free(text);

    /* every example line of the kernel documentation */
    text = tt_fixture("vdo/dmsetup-table-examples-kernel-vdo-rst.txt", NULL);
    size_t n = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), n++) {
        if (dd_vdo_table_parse(l, &t, &err) != 0)
            fail_msg("'%s': %s", l, err.message);
    }
    assert_int_equal(n, 5);
    assert_int_equal(t.minimum_io, 512);
    assert_int_equal(t.threads_logical, 3);
    free(text);

    /* kvdo 6.2's V2 form */
    assert_int_equal(dd_vdo_table_parse("0 2097152 vdo V2 /dev/sdb 262144 4096 32768 16380 off "
                                        "auto vdo0 maxDiscard 1 ack 1 bio 4",
                                        &t, &err),
                     0);
    assert_int_equal(t.version, 2);
    assert_string_equal(t.write_policy, "auto");
    assert_string_equal(t.pool_name, "vdo0");

    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"0 10 vdo V9 /dev/x 1 4096 2 3", "unsupported table version (expected V4 or V2)"},
        {"V4 /dev/x 1 4096 2", "V4 table needs 6 fields, found 5"},
        {"V4 /dev/x 1 1024 2 3", "minimum I/O size must be 512 or 4096"},
        {"V4 /dev/x one 4096 2 3", "physical blocks is not a non-negative integer: 'one'"},
        {"V4 /dev/x 1 4096 2 3 compression maybe", "compression must be on or off"},
        {"V4 /dev/x 1 4096 2 3 hash", "option 'hash' has no value"},
        {"V4 /dev/x 1 4096 2 3 hash 5000", "hash 5000 is out of range"},
    };
    for (size_t i = 0; i < DD_ARRAY_SIZE(bad); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(dd_vdo_table_parse(bad[i].in, &t, &err), DD_E_PARSE);
        if (strcmp(err.message, bad[i].msg) != 0)
            fail_msg("'%s': got '%s'", bad[i].in, err.message);
    }
}

static void test_derived_and_rates(void **state)
{
    struct dd_vdo_stats s1, s2, c;
    struct dd_vdo_derived d;
    struct dd_vdo_rates r;
    (void)state;
    parse_fixture("vdo-real-6.12/set1-dmsetup-message-vdo0-stats.txt", &s1);
    parse_fixture("vdo-real-6.12/set2-dmsetup-message-vdo0-stats.txt", &s2);
    parse_fixture("vdo-real-6.12/set1-dmsetup-message-vdo0-config.txt", &c);
    assert_int_equal(dd_vdo_derive(&s1, &c, &d), 0);
    assert_true(d.normal);
    assert_int_equal(d.used_percent, 28);           /* 27.76 rounds */
    assert_int_equal(d.saving_percent, 50);         /* truncates */
    assert_true(fabs(d.dedup_ratio - 2.0) < 1e-12); /* 163840 / 81920 */
    assert_int_equal(d.index_entries, 81920);
    assert_true(fabs(d.index_fill - 81920.0 / (64.0 * 1024 * 1024)) < 1e-12);
    assert_true(d.compression_share == 0.0);
    assert_true(d.packer_savings == 0.0);

    /* the LVM pool with compression on: 16357 fragments in 1169 blocks over
     * 99500 data blocks; compression_share passes 1's meaning, packer
     * savings stay a share */
    struct dd_vdo_stats lvm;
    struct dd_vdo_derived dl;
    parse_fixture("vdo-real-6.12/set2-dmsetup-message-lvm-stats.txt", &lvm);
    assert_int_equal(dd_vdo_derive(&lvm, NULL, &dl), 0);
    assert_true(fabs(dl.compression_share - 16357.0 / 99500.0) < 1e-12);
    assert_true(fabs(dl.packer_savings - (16357.0 - 1169.0) / (99500.0 + 16357.0 - 1169.0)) <
                1e-12);
    dd_vdo_stats_release(&lvm);

    /* set1 -> set2 on vdo0, as if 10 s apart */
    assert_int_equal(dd_vdo_rates(&s1, &s2, 10.0, &r), 0);
    assert_true(r.valid);
    uint64_t w1, w2, a1, a2;
    dd_vdo_stats_u64(&s1, "biosIn.write", &w1);
    dd_vdo_stats_u64(&s2, "biosIn.write", &w2);
    dd_vdo_stats_u64(&s1, "hashLock.dedupeAdviceValid", &a1);
    dd_vdo_stats_u64(&s2, "hashLock.dedupeAdviceValid", &a2);
    assert_true(fabs(r.bios_in_write - (double)(w2 - w1) / 10.0) < 1e-9);
    assert_true(fabs(r.write_mb_per_s - (double)(w2 - w1) * 4096.0 / 1e6 / 10.0) < 1e-9);
    assert_true(fabs(r.dedup_hit_rate - (double)(a2 - a1) / (double)(w2 - w1)) < 1e-12);

    /* counters going backwards (reload) or no time: no rates, no garbage */
    assert_int_equal(dd_vdo_rates(&s2, &s1, 10.0, &r), 0);
    assert_false(r.valid);
    assert_int_equal(dd_vdo_rates(&s1, &s2, 0.0, &r), 0);
    assert_false(r.valid);
    /* a sample in recovery: nothing derived */
    struct dd_vdo_stats rec;
    parse_fixture("vdo/synth-dm-vdo-stats-message-v36-recovering.txt", &rec);
    assert_int_equal(dd_vdo_rates(&rec, &rec, 10.0, &r), 0);
    assert_false(r.valid);
    assert_true(r.not_normal);
    dd_vdo_stats_release(&rec);
    /* same counters: no writes, hit rate undefined */
    assert_int_equal(dd_vdo_rates(&s1, &s1, 10.0, &r), 0);
    assert_true(r.valid);
    assert_true(isnan(r.dedup_hit_rate));

    /* a reply without the basics cannot be derived */
    struct dd_vdo_stats tiny;
    struct dd_parse_error err;
    assert_int_equal(dd_vdo_stats_parse("{ version : 36, }", 17, &tiny, &err), 0);
    assert_int_equal(dd_vdo_derive(&tiny, NULL, &d), -ENOENT);
    dd_vdo_stats_release(&tiny);
    /* values no VDO volume can have: refused, not printed as garbage (fuzz find) */
    static const char absurd[] =
        "{ dataBlocksUsed : 1, overheadBlocksUsed : 1, logicalBlocksUsed : 1, "
        "physicalBlocks : 134217728, blockSize : 40966761285649007, mode : normal, }";
    assert_int_equal(dd_vdo_stats_parse(absurd, strlen(absurd), &tiny, &err), 0);
    assert_int_equal(dd_vdo_derive(&tiny, NULL, &d), DD_E_RANGE);
    dd_vdo_stats_release(&tiny);
    static const char wraps[] =
        "{ dataBlocksUsed : 18446744073708760176, overheadBlocksUsed : 791440, "
        "logicalBlocksUsed : 1, physicalBlocks : 3145728, blockSize : 4096, mode : normal, }";
    assert_int_equal(dd_vdo_stats_parse(wraps, strlen(wraps), &tiny, &err), 0);
    assert_int_equal(dd_vdo_derive(&tiny, NULL, &d), DD_E_RANGE);
    dd_vdo_stats_release(&tiny);
    dd_vdo_stats_release(&s1);
    dd_vdo_stats_release(&s2);
    dd_vdo_stats_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_v36_replies_parse), cmocka_unit_test(test_paths_and_values),
        cmocka_unit_test(test_v35_and_unknown_keys),  cmocka_unit_test(test_config_reply),
        cmocka_unit_test(test_bad_replies),           cmocka_unit_test(test_limits),
        cmocka_unit_test(test_status_lines),          cmocka_unit_test(test_table_lines),
        cmocka_unit_test(test_derived_and_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
