/*
 * Fuzz target for the simulator's workload loader (dedupd/vdo/sim-workload.c)
 * and, for workloads it accepts, the model itself (sim-model.c, no I/O):
 *   - a refused input leaves the output untouched and says why;
 *   - an accepted one holds every documented range, unique safe names,
 *     duplicate_share + zero_share <= 1 in every phase, phases in order;
 *   - three intervals of the model keep the counter invariants (logical >=
 *     data, used <= physical, dedupe advice <= writes, counters monotone)
 *     and the stats text formats without error.
 * A violated invariant aborts.
 */
#include <errno.h>
#include <string.h>

#include "common/common.h"
#include "dedupd/vdo/sim-internal.h"
#include "dedupd/vdo/sim.h"
#include "fuzz.h"

static void check_params(const struct dd_vdo_volume_params *p)
{
    CHECK(p->write_mbps >= 0 && p->write_mbps <= 100000);
    CHECK(p->read_mbps >= 0 && p->read_mbps <= 100000);
    CHECK(p->duplicate_share >= 0 && p->duplicate_share <= 1);
    CHECK(p->zero_share >= 0 && p->zero_share <= 1);
    CHECK(p->duplicate_share + p->zero_share <= 1 + 1e-9);
    CHECK(p->compressible_share >= 0 && p->compressible_share <= 1);
    CHECK(p->cpu_load >= 0 && p->cpu_load <= DD_VDO_SIM_LOAD_MAX);
}

static void check_workload(const struct dd_vdo_workload *w)
{
    CHECK(w->cpus >= 1 && w->cpus <= 1024);
    CHECK(w->n_volumes >= 1 && w->n_volumes <= DD_VDO_SIM_MAX_VOLUMES);
    CHECK(w->n_phases <= DD_VDO_SIM_MAX_PHASES);
    for (size_t i = 0; i < w->n_volumes; i++) {
        const struct dd_vdo_volume_spec *v = &w->volumes[i];
        size_t n = strnlen(v->name, sizeof(v->name));
        CHECK(n > 0 && n < sizeof(v->name) && v->name[0] != '.');
        CHECK(strchr(v->name, '/') == NULL);
        CHECK(strcmp(v->name, "proc") != 0 && strcmp(v->name, "replay.json") != 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(v->name, w->volumes[j].name) != 0);
        check_params(&v->p);
        CHECK(v->fragments_per_block >= 2 && v->fragments_per_block <= 14);
        CHECK(v->index_entries <= (1ull << 40));
    }
    for (size_t i = 0; i < w->n_phases; i++) {
        CHECK(w->phases[i].at_interval <= DD_VDO_SIM_MAX_INTERVALS);
        if (i > 0)
            CHECK(w->phases[i].at_interval >= w->phases[i - 1].at_interval);
        for (size_t j = 0; j < w->phases[i].n_overrides; j++)
            CHECK(w->phases[i].overrides[j].volume < w->n_volumes);
    }
    for (size_t v = 0; v < w->n_volumes; v++)
        for (size_t i = 0; i < w->n_phases; i++) {
            struct dd_vdo_volume_params p;
            CHECK(dd_vdo_sim_params_at(w, v, w->phases[i].at_interval, &p) == 0);
            check_params(&p);
        }
}

static void check_model(const struct dd_vdo_workload *w, uint64_t seed)
{
    struct sim s;
    struct sim_stats prev[DD_VDO_SIM_MAX_VOLUMES];
    struct sim_buf b = {0};

    if (sim_init(&s, w, 3, 1.0, seed, NULL) < 0)
        return; /* sizes that cannot hold the volume: refused with a message */
    for (unsigned k = 0; k <= 3; k++) {
        if (k > 0)
            sim_step(&s);
        for (size_t i = 0; i < s.n_vol; i++) {
            const struct sim_stats *st = &s.vol[i].st;
            CHECK(st->logical_blocks_used >= st->data_blocks_used);
            CHECK(st->logical_blocks_used <= st->logical_blocks);
            CHECK(st->data_blocks_used + st->overhead_blocks_used <= st->physical_blocks);
            CHECK(st->advice_valid <= st->bios_in.write);
            CHECK(st->bm_dirty + st->bm_clean + st->bm_free == 32768);
            if (k > 0) {
                CHECK(st->bios_in.write >= prev[i].bios_in.write);
                CHECK(st->index_posts_not_found >= prev[i].index_posts_not_found);
                CHECK(st->journal_blocks_started >= prev[i].journal_blocks_started);
                CHECK(st->packer_fragments_written >= prev[i].packer_fragments_written);
                CHECK(st->bm_found_in_cache >= prev[i].bm_found_in_cache);
                for (unsigned t = 0; t < SIM_THREADS; t++)
                    CHECK(s.vol[i].thread_s[t] >= 0);
            }
            prev[i] = *st;
            sim_buf_reset(&b);
            sim_format_stats(&b, &s.vol[i]);
            CHECK(b.error == 0 && b.len > 0 && b.p[b.len - 1] == '\n');
        }
    }
    sim_buf_reset(&b);
    sim_format_proc_stat(&b, &s);
    sim_format_diskstats(&b, &s);
    CHECK(b.error == 0);
    sim_buf_free(&b);
    sim_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dd_vdo_workload w = {.cpus = 12345};
    struct dd_parse_error err = {.line = 999};
    int r = dd_vdo_sim_load_workload((const char *)data, size, &w, &err);

    if (r < 0) {
        CHECK(w.cpus == 12345 && w.volumes == NULL && w.phases == NULL);
        CHECK(r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG || r == -ENOMEM);
        CHECK(err.message[0] != '\0');
        return 0;
    }
    CHECK(r == 0);
    check_workload(&w);
    check_model(&w, size);
    dd_vdo_workload_release(&w);
    return 0;
}
