/*
 * Figures derived from two samples (formulas in node.h): CPU utilisation,
 * with and without VDO's threads, and per-device disk rates. Pure: no I/O,
 * no allocation.
 *
 * Guards as lvm2's dmvdostats: a counter that went backwards contributes
 * nothing (CPU) or marks the interval reset (disks), a ratio with a zero
 * denominator is reported absent rather than computed, and fractions are
 * clamped to their range so a sampling skew never shows as a negative or
 * above-100% figure.
 */
#include "dedupd/node/node.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/common.h"

static uint64_t delta(uint64_t prev, uint64_t cur)
{
    return cur >= prev ? cur - prev : 0;
}

int dd_cpu_util(const struct dd_cpu_times *prev, const struct dd_cpu_times *cur, long clk_tck,
                double vdo_seconds, struct dd_cpu_util *ret)
{
    struct dd_cpu_util u;

    if (!prev || !cur || !ret || clk_tck <= 0 || !isfinite(vdo_seconds) || vdo_seconds < 0.0)
        return -EINVAL;
    /* each term at most 2^64 - 1 ticks; summed in double, which cannot overflow */
    memset(&u, 0, sizeof(u));
    u.busy_seconds =
        ((double)delta(prev->user, cur->user) + (double)delta(prev->nice, cur->nice) +
         (double)delta(prev->system, cur->system) + (double)delta(prev->irq, cur->irq) +
         (double)delta(prev->softirq, cur->softirq) + (double)delta(prev->steal, cur->steal)) /
        (double)clk_tck;
    u.total_seconds = u.busy_seconds + ((double)delta(prev->idle, cur->idle) +
                                        (double)delta(prev->iowait, cur->iowait)) /
                                           (double)clk_tck;
    u.vdo_seconds = DD_MIN(vdo_seconds, u.busy_seconds);
    if (u.total_seconds > 0.0) {
        u.valid = true;
        u.util = u.busy_seconds / u.total_seconds;
        u.util_excl_vdo = (u.busy_seconds - u.vdo_seconds) / u.total_seconds;
        /* rounding must not take either out of 0..1 */
        u.util = DD_MIN(DD_MAX(u.util, 0.0), 1.0);
        u.util_excl_vdo = DD_MIN(DD_MAX(u.util_excl_vdo, 0.0), u.util);
    }
    *ret = u;
    return 0;
}

/* Fields compared for a reset: every cumulative counter (in_flight is a
 * gauge and may go down). */
static bool went_backwards(const struct dd_diskstat *p, const struct dd_diskstat *c)
{
    return c->reads < p->reads || c->reads_merged < p->reads_merged ||
           c->sectors_read < p->sectors_read || c->read_ms < p->read_ms || c->writes < p->writes ||
           c->writes_merged < p->writes_merged || c->sectors_written < p->sectors_written ||
           c->write_ms < p->write_ms || c->io_ms < p->io_ms || c->weighted_ms < p->weighted_ms ||
           c->discards < p->discards || c->discards_merged < p->discards_merged ||
           c->sectors_discarded < p->sectors_discarded || c->discard_ms < p->discard_ms ||
           c->flushes < p->flushes || c->flush_ms < p->flush_ms;
}

int dd_disk_rates(const struct dd_diskstat *prev, const struct dd_diskstat *cur, double interval_s,
                  struct dd_disk_rates *ret)
{
    struct dd_disk_rates d;
    uint64_t rms, wms;

    if (!prev || !cur || !ret || !isfinite(interval_s) || !(interval_s > 0.0))
        return -EINVAL;
    if (prev->major != cur->major || prev->minor != cur->minor)
        return -EINVAL;
    memset(&d, 0, sizeof(d));
    if (went_backwards(prev, cur)) {
        d.reset = true;
        *ret = d;
        return 0;
    }
    d.reads = cur->reads - prev->reads;
    d.writes = cur->writes - prev->writes;
    d.read_iops = (double)d.reads / interval_s;
    d.write_iops = (double)d.writes / interval_s;
    /* 512-byte sectors, 10^6-byte megabytes */
    d.read_mbps = (double)(cur->sectors_read - prev->sectors_read) * 512.0 / 1e6 / interval_s;
    d.write_mbps =
        (double)(cur->sectors_written - prev->sectors_written) * 512.0 / 1e6 / interval_s;
    rms = cur->read_ms - prev->read_ms;
    wms = cur->write_ms - prev->write_ms;
    if (d.reads > 0) {
        d.has_read_latency = true;
        d.read_latency_ms = (double)rms / (double)d.reads;
    }
    if (d.writes > 0) {
        d.has_write_latency = true;
        d.write_latency_ms = (double)wms / (double)d.writes;
    }
    d.util = (double)(cur->io_ms - prev->io_ms) / (interval_s * 1000.0);
    d.util = DD_MIN(DD_MAX(d.util, 0.0), 1.0);
    /* a tiny interval can overflow a rate to infinity: report what is finite */
    if (!isfinite(d.read_iops) || !isfinite(d.write_iops) || !isfinite(d.read_mbps) ||
        !isfinite(d.write_mbps))
        return DD_E_RANGE;
    *ret = d;
    return 0;
}
