#!/usr/bin/env python3
"""Writes the VM test's data: streams of 4 KiB blocks with a known structure.

Each stream is written to a VDO volume in one O_DIRECT dd run, in the order
of its segments, and estimated with `dedupctl estimate` before it is written.

  w-vdo0.bin   bare V4 table, compression off (176 MiB)
               A  48 MiB random                 12288 new blocks
               A  48 MiB the same again             0 new (duplicates of A)
               Z  16 MiB zeros                      0 (VDO stores no zero block)
               T1 32 MiB log text, block-unique  8192 new
               P  32 MiB half fresh random, half copies of A's blocks
                                                 ~4096 new (seeded coin per block)
  w-lv0.bin    LVM VDO pool, compression on (136 MiB)
               B  32 MiB random (incompressible)  8192 new, stored whole
               T2 32 MiB log text, very compressible (fragments ~0.6-1 KB)
               T3 32 MiB blocks of 200-1200 random bytes then log text: LZ4
                         fragments of ~1.3-2 KB, two (some three) to a block
               T2 32 MiB the same again            0 new
               Z   8 MiB zeros                     0
  w-vdo0b.bin  vdo0 again after it was removed and re-created (32 MiB)
               A' 16 MiB = A's first 16 MiB         0 new (on the volume already)
               C  16 MiB random                   4096 new

Usage: mkdata.py OUTDIR [SEED]. Writes OUTDIR/*.bin and OUTDIR/manifest.json.
"""
import json
import os
import random
import sys

BLOCK = 4096
MIB = 1 << 20

def random_bytes(rng, n):
    return rng.randbytes(n)


def log_text(rng, n, tag):
    """Block-unique, very compressible log lines (a counter in every line)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += (f"2025-06-01T12:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z INFO "
                f"{tag} worker-{i % 8} request id={i:09d} status=ok bytes={4096 * (i % 7)} "
                f"latency_ms={i % 97}\n").encode()
        i += 1
    return bytes(out[:n])


def mixed_blocks(rng, n, lo, hi):
    """Each block: lo..hi random bytes, then log text. LZ4 keeps the random
    part whole and shrinks the text to about a quarter, so the fragment size
    is spread over a known range."""
    text = log_text(rng, n, "mix")
    out = bytearray()
    for k in range(n // BLOCK):
        x = rng.randrange(lo, hi)
        out += rng.randbytes(x) + text[k * BLOCK + x:(k + 1) * BLOCK]
    return bytes(out)


def main():
    outdir = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20250601
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(seed)

    a = random_bytes(rng, 48 * MIB)
    t1 = log_text(rng, 32 * MIB, "vdo0")
    p = bytearray()
    p_fresh = 0
    for _ in range(32 * MIB // BLOCK):
        if rng.random() < 0.5:
            p += random_bytes(rng, BLOCK)
            p_fresh += 1
        else:
            k = rng.randrange(len(a) // BLOCK)
            p += a[k * BLOCK:(k + 1) * BLOCK]
    b = random_bytes(rng, 32 * MIB)
    t2 = log_text(rng, 32 * MIB, "lv0")
    t3 = mixed_blocks(rng, 32 * MIB, 200, 1200)
    c = random_bytes(rng, 16 * MIB)

    streams = {
        "w-vdo0.bin": [("A", a), ("A", a), ("Z", bytes(16 * MIB)), ("T1", t1), ("P", bytes(p))],
        "w-lv0.bin": [("B", b), ("T2", t2), ("T3", t3), ("T2", t2), ("Z", bytes(8 * MIB))],
        "w-vdo0b.bin": [("A'", a[:16 * MIB]), ("C", c)],
    }
    expected_new = {  # blocks VDO must store (no compression)
        "w-vdo0.bin": 12288 + 8192 + p_fresh,
        "w-lv0.bin": 8192 + 8192 + 8192,
        "w-vdo0b.bin": 4096,
    }
    manifest = {"seed": seed, "block_size": BLOCK, "streams": {}}
    for name, segs in streams.items():
        with open(os.path.join(outdir, name), "wb") as f:
            off = 0
            layout = []
            for tag, data in segs:
                f.write(data)
                layout.append({"segment": tag, "offset": off, "bytes": len(data)})
                off += len(data)
        manifest["streams"][name] = {"bytes": off, "blocks": off // BLOCK, "segments": layout,
                                     "expected_distinct_blocks": expected_new[name]}
    manifest["p_fresh_blocks"] = p_fresh
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
