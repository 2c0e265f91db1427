#!/usr/bin/env python3
"""bench/vdo-vm-series: the host side of the real-VDO series (no numpy).

  report.py collect --from VM_OUT --versions FILE --out RESULTS
      the result disk's files into RESULTS: series.jsonl (dedupd's stored
      samples, one per line), phases.tsv (the guest's phase runs: windows,
      blocks, VDO thread ticks, dd's CPU), base.tsv (the pipe alone),
      host-load.txt (the host's CPU each second), phase-stats.json (per phase
      run: the VDO stats counters that moved, the index entries before and
      after), sample-phases.tsv, timings.txt, versions.txt, model-prior.json
      (the built-in prior the guest's dedupd served).

  report.py report --results RESULTS --dedupctl BIN
      the per-phase table (rounds merged), the built-in and the fitted prior
      beside the measured cost (the built-in prior of BIN; model-prior.json's
      when BIN does not print one), and `dedupctl model fit` four ways: every row
      or only the rows the host did not contend, each in time order (the
      hold-out is the newest fifth: the end of fill 2) and interleaved (every
      fifth row held out: the hold-out spans every phase); plus the built-in
      prior times one fitted factor (its shape without its scale). Writes
      RESULTS/report.txt, phase-table.json, fits.json, sample-phases.tsv.

A sample's interval is (previous sample's time, its time]. It is *inside* a
phase when that interval lies within the phase's writing window (dd start to
dd end), *edge* when it overlaps the window only in part, *gap* when it lies
in the idle seconds after the window. A sample is *contended* when other
processes on the host used more than HOST_BUSY_MAX cores over its interval
(widened a second each side): TCG's guest time is host time, so a vCPU the
host does not run still has its guest thread charged, and other load
inflates VDO's measured CPU. Per-phase means are over uncontended inside
samples.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "vm"))
from check import parse_vdo_message  # noqa: E402  (tests/vm/check.py: the stats reply parser)

GIB = float(1 << 30)
# the counters a phase's table and notes use (deltas)
STAT_KEYS = (
    "biosIn.write", "hashLock.dedupeAdviceValid", "hashLock.dedupeAdviceStale",
    "hashLock.concurrentDataMatches", "hashLock.concurrentHashCollisions", "dedupeAdviceTimeouts",
    "dataBlocksUsed", "logicalBlocksUsed", "packer.compressedFragmentsWritten",
    "packer.compressedBlocksWritten", "index.entriesIndexed", "index.postsFound",
    "index.postsNotFound", "index.queriesFound", "index.queriesNotFound", "index.updatesFound",
    "index.updatesNotFound", "biosOut.write", "biosOut.read", "biosMeta.write", "biosMeta.read",
    "journal.blocks.written", "blockMap.pagesLoaded", "blockMap.pagesSaved",
)


def read_tsv(path):
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        return [dict(zip(head, l.rstrip("\n").split("\t"))) for l in f if l.strip()]


def read_jsonl(path):
    rows = []
    with open(path) as f:
        for l in f:
            if l.strip():
                rows.append(json.loads(l))
    rows.sort(key=lambda r: r["time_ms"])
    return rows


def run_id(p):
    """A phase run's name: NAME-rROUND."""
    return f"{p['name']}-r{p.get('round', '1')}"


def label_samples(rows, phases):
    """[(time_ms, phase or '-', where, round)] for each row, in time order."""
    out, prev = [], None
    for r in rows:
        t = r["time_ms"]
        lab = ("-", "idle", "-")
        if prev is not None:
            for p in phases:
                s, e, g = int(p["start_ms"]), int(p["end_ms"]), int(p["gap_end_ms"])
                if prev >= s and t <= e:
                    lab = (p["name"], "inside", p.get("round", "1"))
                    break
                if prev < e and t > s:
                    lab = (p["name"], "edge", p.get("round", "1"))
                    break
                if prev >= e and t <= g + 500:
                    lab = (p["name"], "gap", p.get("round", "1"))
                    break
        out.append((t,) + lab)
        prev = t
    return out


def collect(a):
    src, dst = a.src, a.out
    os.makedirs(dst, exist_ok=True)
    for name in ("series.jsonl", "phases.tsv", "base.tsv", "host-load.txt"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    phases = read_tsv(os.path.join(dst, "phases.tsv"))
    ps = {}
    for p in phases:
        d = {}
        for side in ("before", "after"):
            with open(os.path.join(src, f"stats-{run_id(p)}-{side}.out")) as f:
                d[side] = parse_vdo_message(f.read())
        b, e = d["before"], d["after"]
        ps[run_id(p)] = {
            "entries_before": int(b["index.entriesIndexed"]),
            "entries_after": int(e["index.entriesIndexed"]),
            "delta": {k: int(e[k]) - int(b[k]) for k in STAT_KEYS if k in b and k in e},
        }
    with open(os.path.join(dst, "phase-stats.json"), "w") as f:
        json.dump(ps, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(dst, "timings.txt"), "w") as f:
        for name in ("host-timings.txt", "timings.txt"):
            p = os.path.join(src, name)
            if os.path.exists(p):
                with open(p) as g:
                    f.write(g.read())
        for name in ("clk-tck", "nproc", "uname", "vdostats-version"):
            p = os.path.join(src, name + ".out")
            if os.path.exists(p):
                with open(p) as g:
                    f.write(f"guest {name} {g.read().strip()}\n")
    if a.versions and os.path.exists(a.versions):
        shutil.copyfile(a.versions, os.path.join(dst, "versions.txt"))
    try:
        with open(os.path.join(src, "model.body")) as f:
            prior = json.load(f).get("prior")
        with open(os.path.join(dst, "model-prior.json"), "w") as f:
            json.dump(prior, f, indent=1)
            f.write("\n")
    except (OSError, ValueError, AttributeError):
        pass
    write_labels(dst)


def sample_contention(rows, load, tck):
    """Other processes' cores on the host over each sample's interval, widened
    by a second each side (the guest's clock starts from the RTC's whole
    second, so it may trail the host's by up to one)."""
    out, prev = [], None
    for r in rows:
        t = r["time_ms"]
        out.append(host_window(load, tck, (prev if prev is not None else t - 1000) - 1000, t + 1000)[0]
                   if load else float("nan"))
        prev = t
    return out


def write_labels(res):
    rows = read_jsonl(os.path.join(res, "series.jsonl"))
    phases = read_tsv(os.path.join(res, "phases.tsv"))
    load, tck = read_host_load(os.path.join(res, "host-load.txt"))
    other = sample_contention(rows, load, tck)
    with open(os.path.join(res, "sample-phases.tsv"), "w") as f:
        f.write("time_ms\tphase\tround\twhere\thost_other_cores\n")
        for (t, p, w, rd), o in zip(label_samples(rows, phases), other):
            f.write(f"{t}\t{p}\t{rd}\t{w}\t{fmt(o)}\n")


# --- the prior, as placement/costmodel.c's dd_cm_prior_predict computes it ----------

def clamp(x, lo, hi):
    return lo if x is None or not math.isfinite(x) else min(max(x, lo), hi)


def prior_terms(c, first):
    """A target's coefficients in the five-term form (placement/costmodel.h);
    the earlier four-term form (first, index_lookup, new_block_write,
    compression) converts exactly, as dd_cm_prior_from_json does."""
    if "new_block_write" in c:
        return {first: c[first] + c["new_block_write"], "index_lookup": c["index_lookup"],
                "duplicate_verify": -c["new_block_write"], "compression_on": 0.0, "lz4": c["compression"],
                "cpu_contention": c.get("cpu_contention", 1.0)}
    return c


def prior_eval(c, first, f):
    """[first + b log2 E + v u + r c + q c p n] x (1 + k L / (1 - L))"""
    c = prior_terms(c, first)
    e = f.get("index_entries")
    u = clamp(f.get("dedup_hit_rate"), 0, 1)
    comp = clamp(f.get("compression"), 0, 1)
    pk = clamp(f.get("packer_savings"), 0, 1)
    lg = math.log2(e if e is not None and e > 2 else 2)
    load = clamp(f.get("node_cpu_util_ex_vdo"), 0, 0.95)
    slow = 1 + c.get("cpu_contention", 1.0) * load / (1 - load)
    return slow * (c[first] + c["index_lookup"] * lg + c["duplicate_verify"] * u + c["compression_on"] * comp
                   + c["lz4"] * comp * pk * (1 - u))


def prior_cost(pr, f):
    return prior_eval(pr["cost"], "new_block" if "new_block" in pr["cost"] else "hash", f)


def read_host_load(path):
    """[(ms, busy, idle, qemu)] in jiffies, and the host's clock tick."""
    out, tck = [], 100.0
    if not os.path.exists(path):
        return out, tck
    for l in open(path):
        p = l.split()
        if l.startswith("#") and "clk_tck" in p:
            tck = float(p[p.index("clk_tck") + 1])
        elif len(p) == 4:
            out.append(tuple(int(x) for x in p))
    return out, tck


def host_window(load, tck, start, end):
    """(other processes' cores, qemu's cores) on the host from the last
    reading at or before start to the first at or after end (ms)."""
    a = [x for x in load if x[0] <= start]
    b = [x for x in load if x[0] >= end]
    if not a or not b or b[0][0] - a[-1][0] < 1000:
        return float("nan"), float("nan")
    x, y = a[-1], b[0]
    dt = (y[0] - x[0]) / 1000.0
    return ((y[1] - x[1]) - (y[3] - x[3])) / tck / dt, (y[3] - x[3]) / tck / dt


def mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def sd(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if len(xs) < 2:
        return float("nan")
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def fmt(x, nd=2):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


HOST_BUSY_MAX = 0.15  # other processes' cores on the host above which a sample is contended


def run_fit(dedupctl, path):
    r = subprocess.run([dedupctl, "model", "fit", "--data", path, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return json.loads(r.stdout), None


def has_target(r):
    f = r.get("features") or {}
    return any(isinstance(f.get(t), (int, float)) and f.get(t) > 0 for t in ("cost", "latency"))


def write_rows(rows, path, interleaved):
    """rows (time-ordered) to path; interleaved: reordered so that every
    fifth row with a target lands in the newest fifth (the hold-out), with
    time_ms rewritten to the new position (model fit sorts by time)."""
    keep = [r for r in rows if has_target(r)]
    if interleaved:
        keep = [r for i, r in enumerate(keep) if i % 5 != 4] + [r for i, r in enumerate(keep) if i % 5 == 4]
    with open(path, "w") as f:
        for i, r in enumerate(keep):
            d = dict(r)
            if interleaved:
                d["time_ms"] = 1000 * (i + 1)
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    return len(keep)


def prior_latency(pr, f):
    return prior_eval(pr["latency"], "base", f)


def scaled_prior_holdout(prior, path):
    """The built-in prior times one factor fitted (relative least squares) on
    the older 80 % of each target's rows, scored on the newest 20 % as model
    fit splits them: the prior's shape without its absolute scale."""
    rows = read_jsonl(path)
    out = {}
    for t, fn in (("cost", prior_cost), ("latency", prior_latency)):
        pts = [(fn(prior, r["features"]), r["features"][t]) for r in rows
               if isinstance(r["features"].get(t), (int, float)) and r["features"][t] > 0]
        nh = int(len(pts) * 0.2)
        train, hold = pts[:len(pts) - nh], pts[len(pts) - nh:]
        den = sum((p / y) ** 2 for p, y in train)
        k = sum(p / y for p, y in train) / den if den > 0 else float("nan")
        ys = [y for _, y in hold]
        m = mean(ys)
        ssr = sum((k * p - y) ** 2 for p, y in hold)
        sst = sum((y - m) ** 2 for y in ys)
        out[t] = {"scale": k, "mape_percent": 100 * mean([abs(k * p - y) / y for p, y in hold]),
                  "r2": 1 - ssr / sst if sst > 0 else float("nan"), "n": len(hold)}
    return out


def report(a):
    res = a.results
    out_lines = []

    def say(s=""):
        print(s)
        out_lines.append(s)

    rows = read_jsonl(os.path.join(res, "series.jsonl"))
    phases = read_tsv(os.path.join(res, "phases.tsv"))
    with open(os.path.join(res, "phase-stats.json")) as f:
        pstats = json.load(f)
    prior = None
    if os.path.exists(os.path.join(res, "model-prior.json")):
        with open(os.path.join(res, "model-prior.json")) as f:
            prior = json.load(f)
    tck = 100.0
    for l in open(os.path.join(res, "timings.txt")):
        if l.startswith("guest clk-tck "):
            tck = float(l.split()[2])
    load, htck = read_host_load(os.path.join(res, "host-load.txt"))
    other = sample_contention(rows, load, htck)
    clean = [not (o > HOST_BUSY_MAX) for o in other]  # NaN (no host record) counts as clean
    pipe = {}
    if os.path.exists(os.path.join(res, "base.tsv")):
        for b in read_tsv(os.path.join(res, "base.tsv")):
            if int(b["blocks"] or 0):
                pipe[b["kind"]] = float(b["dd_sys_s"]) / (int(b["blocks"]) * 4096 / GIB)
    labels = label_samples(rows, phases)
    by_phase = {}
    for r, (_, p, w, _), c in zip(rows, labels, clean):
        by_phase.setdefault((p, w, c), []).append(r)
    runs = {}
    for p in phases:
        runs.setdefault(p["name"], []).append(p)

    # the fits: every row, and only the rows the host did not contend, each
    # in time order and interleaved
    fits, errs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for subset, sel in (("all", rows), ("uncontended", [r for r, c in zip(rows, clean) if c])):
            for order in ("time", "interleaved"):
                path = os.path.join(tmp, f"{subset}-{order}.jsonl")
                n = write_rows(sel, path, order == "interleaved")
                fits[(subset, order)], errs[(subset, order)] = run_fit(a.dedupctl, path) if n >= 25 else \
                    (None, f"{n} rows")
                # the built-in prior of the dedupctl that fits (model-prior.json
                # holds the one the guest's dedupd served at the time)
                if fits[(subset, order)] and fits[(subset, order)].get("prior_builtin"):
                    prior = fits[(subset, order)]["prior_builtin"]
                if fits[(subset, order)] and prior:
                    sc = scaled_prior_holdout(prior, path)
                    for t in ("cost", "latency"):
                        fits[(subset, order)]["holdout"][t]["prior_builtin_scaled"] = sc[t]
    fitted = fits[("all", "time")]["prior_fitted"] if fits[("all", "time")] else None

    with_cost = [r for r in rows if (r.get("features") or {}).get("cost")]
    idle_cost = [r for r, (_, p, w, _) in zip(rows, labels)
                 if w in ("idle", "gap") and (r.get("features") or {}).get("cost")]
    zero_cost = [r for r, (_, p, w, _) in zip(rows, labels)
                 if w == "inside" and not (r.get("features") or {}).get("cost")]
    say(f"{len(rows)} samples, {len(with_cost)} with a cost; idle or gap samples with a cost: {len(idle_cost)}; "
        f"writing samples without one: {len(zero_cost)}; contended by the host (> {HOST_BUSY_MAX} other cores): "
        f"{sum(1 for c in clean if not c)}")
    say()
    say("cost = VDO thread CPU-s per GiB written (TCG-emulated CPU), mean +- sd over the phase's inside samples")
    say("  the host did not contend (n = those / all inside); total = the VDO threads' CPU from /proc over the")
    say("  phase and its idle gap / GiB the phase wrote (* = the host contended part of it); dd = the writer's")
    say("  system CPU per GiB less the pipe's share (dd to /dev/null): submission and VDO's work in the submitter's")
    say("  context; prior / fitted = the built-in / fitted (all rows, time order) prior for those samples;")
    say("  lat = the dm device's write latency (ms, 1 MiB writes)")
    say()
    hdr = (f"{'phase':<16} {'n':>7} {'cost':>13} {'total':>7} {'dd':>5} {'prior':>5} {'fitted':>6} "
           f"{'lat ms':>6} {'E (k)':>6} {'MB/s':>5} {'hit':>4} {'asked':>5} {'L':>4} {'host':>4} {'packed':>6}")
    say(hdr)
    say("-" * len(hdr))
    table = []
    for name, rs in runs.items():
        p = rs[0]
        ins = by_phase.get((name, "inside", True), [])
        nall = len(ins) + len(by_phase.get((name, "inside", False), []))
        f = [r.get("features") or {} for r in ins]
        cost = [x.get("cost") for x in f]
        sts = [pstats.get(run_id(x), {}) for x in rs]
        dl = {}
        for st in sts:
            for k, v in st.get("delta", {}).items():
                dl[k] = dl.get(k, 0) + v
        blocks = sum(int(x["blocks"] or 0) for x in rs)
        gib = blocks * 4096 / GIB
        secs = sum((int(x["end_ms"]) - int(x["start_ms"])) / 1000.0 for x in rs)
        ticks = sum(int(x["vdo_ticks_end"]) - int(x["vdo_ticks_start"]) for x in rs)
        total = ticks / tck / gib if gib else float("nan")
        ddsys = sum(float(x["dd_sys_s"] or 0) for x in rs) / gib - pipe.get(p["kind"], 0.0) if gib else float("nan")
        hw = [host_window(load, htck, int(x["start_ms"]) - 1000, int(x["gap_end_ms"]) + 1000)[0] for x in rs]
        hother = max(hw) if hw and all(math.isfinite(h) for h in hw) else float("nan")
        inw = dl.get("biosIn.write", 0)
        adv = dl.get("hashLock.dedupeAdviceValid", 0)
        hit = adv / inw if inw else float("nan")
        asked = sum(int(x["dup_blocks"] or 0) for x in rs) / blocks if blocks else float("nan")
        packed = dl.get("packer.compressedFragmentsWritten", 0) / (inw - adv) if inw > adv else float("nan")
        st = {"entries_before": min((x.get("entries_before") for x in sts if x), default=None),
              "entries_after": max((x.get("entries_after") for x in sts if x), default=None)}
        row = {
            "phase": name, "compression": p["compression"], "kind": p["kind"], "dup": float(p["dup"]),
            "fill": int(p["fill"]) if p["fill"].isdigit() else 0, "runs": len(rs), "n_clean": len(ins), "n_inside": nall,
            "cost": mean(cost), "cost_sd": sd(cost), "total": total, "dd_sys_per_gib": ddsys,
            "prior_builtin": mean([prior_cost(prior, x) for x in f]) if prior else float("nan"),
            "prior_fitted": mean([prior_cost(fitted, x) for x in f]) if fitted else float("nan"),
            "latency_ms": mean([x.get("latency") for x in f]),
            "entries_before": st.get("entries_before"), "entries_after": st.get("entries_after"),
            "write_mbps": blocks * 4096 / 1e6 / secs if secs > 0 else float("nan"), "hit": hit, "asked": asked,
            "node_cpu_util_ex_vdo": mean([x.get("node_cpu_util_ex_vdo") for x in f]),
            "packer_savings_feature": mean([x.get("packer_savings") for x in f]),
            "host_other_cores_max": hother, "fragments_per_new_block": packed,
        }
        table.append(row)
        row["entries_mean"] = mean([x.get("index_entries") for x in f])
        ent = fmt(row["entries_mean"] / 1000, 0)
        star = "*" if hother > HOST_BUSY_MAX else " "  # the worst of its runs
        say(f"{name:<16} {len(ins):>3}/{nall:<3} {fmt(row['cost'], 1):>5} +-{fmt(row['cost_sd'], 1):>5} "
            f"{fmt(total, 1):>6}{star} {fmt(ddsys, 1):>5} {fmt(row['prior_builtin']):>5} "
            f"{fmt(row['prior_fitted'], 1):>6} {fmt(row['latency_ms'], 1):>6} {ent:>6} "
            f"{fmt(row['write_mbps'], 1):>5} {fmt(hit):>4} {fmt(asked):>5} {fmt(row['node_cpu_util_ex_vdo']):>4} "
            f"{fmt(max(hother, 0.0) if math.isfinite(hother) else hother, 1):>4} {fmt(packed):>6}")
    say()
    say("hit = VDO's dedupe advice valid / 4 KiB writes over the phase (stats); asked = the generator's copies;")
    say("L = node_cpu_util_ex_vdo (guest); host = other processes' cores on the host over the phase (qemu")
    say("excluded); packed = compressed fragments written per non-duplicate block; E = index.entriesIndexed")
    say("(the samples' mean, thousands). The pipe alone (dd to /dev/null) costs dd "
        + ", ".join(f"{v:.1f} ({k})" for k, v in sorted(pipe.items())) + " sys CPU-s/GiB.")

    # where the CPU goes: each VDO queue's CPU-s per GiB over the same samples
    qnames = ["reqQ", "cpuQ", "bioQ", "ackQ", "callbackW", "indexW"]
    say()
    say("VDO thread CPU-s per GiB by queue (the same samples; other = dedupeQ, UDS reader and writer, ...):")
    say(f"{'phase':<16}" + "".join(f" {q:>9}" for q in qnames + ["other"]))
    for row in table:
        ins = by_phase.get((row["phase"], "inside", True), [])
        gib = sum((r["features"].get("write_mbps") or 0) * 1e6 / GIB for r in ins)
        byq = {}
        for r in ins:
            for q, v in (r.get("vdo_cpu_seconds_by_queue") or {}).items():
                q = q if q in qnames else "other"
                byq[q] = byq.get(q, 0.0) + v
        row["cost_by_queue"] = {q: v / gib for q, v in byq.items()} if gib else {}
        say(f"{row['phase']:<16}" + "".join(f" {fmt(row['cost_by_queue'].get(q, 0.0) if gib else float('nan')):>9}"
                                            for q in qnames + ["other"]))
    with open(os.path.join(res, "phase-table.json"), "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")

    say()
    say("== dedupctl model fit: fitted on the older 80 % of the rows with a target, scored on the newest 20 %")
    say("   time = rows in time order (the hold-out is the newest samples: most of fill 2's last round);")
    say("   interleaved = every 5th row moved to the end (the hold-out spans every phase);")
    say("   all = every sample dedupd stored; uncontended = without the samples the host contended;")
    say("   built-in x scale = the built-in prior times one factor fitted on the same 80 % (its shape alone)")
    cols = [k for k in (("all", "time"), ("all", "interleaved"), ("uncontended", "time"),
                        ("uncontended", "interleaved"))]
    say(f"{'target':<8} {'model':<17}" + "".join(f" {k[0] + '/' + k[1]:>26}" for k in cols))
    say(f"{'':<8} {'rows (hold-out)':<17}" + "".join(
        f" {(str(fits[k]['rows']) + ' (' + str(fits[k]['holdout']['cost']['xgboost']['n']) + ')') if fits[k] else errs[k]:>26}"
        for k in cols))
    for t in ("cost", "latency"):
        for key, label in (("prior_builtin", "prior (built-in)"), ("prior_builtin_scaled", "built-in x scale"),
                           ("prior_fitted", "prior (fitted)"), ("xgboost", "xgboost")):
            cells = []
            for k in cols:
                e = fits[k]["holdout"][t].get(key) if fits[k] else None
                cells.append(f"MAPE {fmt(e['mape_percent'], 1):>6} % R2 {fmt(e['r2'], 2):>6}" if e else "-")
            say(f"{t:<8} {label:<17}" + "".join(f" {c:>26}" for c in cells))
    for k in cols:
        if fits[k]:
            sc = fits[k]["holdout"]["cost"].get("prior_builtin_scaled", {}).get("scale", float("nan"))
            say(f"cost prior fitted ({k[0]}/{k[1]}): "
                + ", ".join(f"{n} {v:.3g}" for n, v in fits[k]["prior_fitted"]["cost"].items())
                + f"; built-in scale {sc:.3g}")
    with open(os.path.join(res, "fits.json"), "w") as f:
        json.dump({f"{k[0]}/{k[1]}": v for k, v in fits.items()}, f, indent=1)
        f.write("\n")
    with open(os.path.join(res, "report.txt"), "w") as f:
        f.write("\n".join(out_lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--from", dest="src", required=True)
    c.add_argument("--versions")
    c.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--dedupctl", required=True)
    a = ap.parse_args()
    if a.cmd == "collect":
        collect(a)
    else:
        write_labels(a.results)
        report(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
