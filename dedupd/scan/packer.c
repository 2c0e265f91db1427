/*
 * A simulation of VDO's packer, used to turn sampled LZ4 fragment sizes into
 * physical blocks. VDO keeps DEFAULT_PACKER_BINS (16) open bins sorted by free
 * space and puts a new fragment into the fullest bin it fits; a bin is written
 * when it holds VDO_MAX_COMPRESSION_SLOTS (14) fragments, and when a fragment
 * fits no bin the fullest bin is written to make room. Each written bin is one
 * 4 KiB physical block (a bin with a single fragment is written uncompressed,
 * also one block). This models the steady state, not VDO's timing-driven
 * flushes, which only ever write bins earlier (and so pack less well).
 */
#include <string.h>

#include "common/common.h"
#include "dedupd/scan/scan-internal.h"

void dd_packer_init(struct dd_packer *p)
{
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < DD_VDO_PACKER_BINS; i++)
        p->free[i] = DD_VDO_COMPRESSED_DATA_SIZE;
}

static void write_bin(struct dd_packer *p, size_t i)
{
    if (p->slots[i] > 0)
        p->blocks_written++;
    p->slots[i] = 0;
    p->free[i] = DD_VDO_COMPRESSED_DATA_SIZE;
}

void dd_packer_add(struct dd_packer *p, uint32_t size)
{
    size_t best = DD_VDO_PACKER_BINS;

    if (size == 0 || size > DD_VDO_COMPRESSED_DATA_SIZE)
        return;
    p->fragments++;
    /* fullest bin that still fits */
    for (size_t i = 0; i < DD_VDO_PACKER_BINS; i++) {
        if (p->free[i] >= size && (best == DD_VDO_PACKER_BINS || p->free[i] < p->free[best]))
            best = i;
    }
    if (best == DD_VDO_PACKER_BINS) {
        /* nothing fits: write the fullest bin and start it afresh */
        best = 0;
        for (size_t i = 1; i < DD_VDO_PACKER_BINS; i++) {
            if (p->free[i] < p->free[best])
                best = i;
        }
        write_bin(p, best);
    }
    p->free[best] -= size;
    p->slots[best]++;
    if (p->slots[best] == DD_VDO_MAX_COMPRESSION_SLOTS || p->free[best] == 0)
        write_bin(p, best);
}

uint64_t dd_packer_flush(struct dd_packer *p)
{
    for (size_t i = 0; i < DD_VDO_PACKER_BINS; i++)
        write_bin(p, i);
    return p->blocks_written;
}
