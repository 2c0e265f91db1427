#!/usr/bin/env python3
"""Fit a per-stage decomposition of the proxy's cost to bench/calibrate data (python3 stdlib only).

This is the proxy's own analysis (it sees zero blocks and profiles the hash stage), kept for
its stage figures and plots. The daemon's prior is NOT fitted here: `dedupctl model fit`
fits placement/costmodel's five-term prior (new_block, index_lookup, duplicate_verify,
compression_on, lz4; see placement/costmodel.h) on the same data and on
bench/vdo-vm-series, and writes it into this file's "costmodel_prior" section, which this
script keeps as it is. The form fitted here:

  cost    = [a(1-z) + b(1-z)log2(E) + d u + w n + q c s'] / max(0.05, 1-L)
  latency = [l0 + l1(1-z)log2(E) + l2 n + l3 c s']        / max(0.05, 1-L)

z, u, n = zero, duplicate and new shares of the blocks (measured counts; n = 1-z-u),
c = compression on, s' = compressible share of new blocks x n, E = index entries,
L = node_cpu_util_ex_vdo as measured over the point. Both sides are multiplied by
max(0.05, 1-L) and the coefficients fitted by ordinary least squares.

Identifiability: (1-z) = u + n exactly, so a, d and w cannot all be fitted; only
D = a + d (per duplicate block) and W = a + w (per new block) can. The fit solves
for (b, D, W, q); a is then pinned to the measured zero-check + hash stage of the
profile pass (the work every non-zero block does before the index), and
d = D - a, w = W - a. Predictions, MAPE and R^2 do not depend on that split.

Reports in-sample MAPE and R^2 (on cost and latency themselves, not the
multiplied-through form) and a time-ordered hold-out: fit on the first 80 % of the
points by time, evaluate on the last 20 %.
"""
import argparse
import json
import math
import os
import statistics
import sys


def load(path):
    pts = []
    with open(path) as fh:
        for ln, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                pts.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{ln}: not JSON: {e}")
    pts.sort(key=lambda d: d["time_ms"])  # stable: file order within a millisecond
    return pts


def terms(d):
    p, f, c = d["point"], d["features"], d["counts"]
    blocks = c["blocks"]
    z, u, n = c["zero"] / blocks, c["dup"] / blocks, c["new"] / blocks
    load = f.get("node_cpu_util_ex_vdo")
    if load is None:
        load = p["cpu_load"] / 100.0
    E = f["index_entries"]
    return {
        "z": z, "u": u, "n": n, "c": float(p["compression"]),
        "sp": p["compressible_share"] * n, "E": E, "lg": math.log2(E),
        "L": load, "k": max(0.05, 1.0 - load),
        "cost": f["cost"], "latency": f["latency"],
    }


def cost_row(t):
    return [(1 - t["z"]) * t["lg"], t["u"], t["n"], t["c"] * t["sp"]]


def lat_row(t):
    return [1.0, (1 - t["z"]) * t["lg"], t["n"], t["c"] * t["sp"]]


def solve(A, b):
    """Gaussian elimination with partial pivoting; None if singular."""
    m = len(b)
    M = [row[:] + [b[i]] for i, row in enumerate(A)]
    for col in range(m):
        piv = max(range(col, m), key=lambda r: abs(M[r][col]))
        if abs(M[piv][col]) < 1e-12:
            return None
        M[col], M[piv] = M[piv], M[col]
        for r in range(m):
            if r != col:
                f = M[r][col] / M[col][col]
                for k in range(col, m + 1):
                    M[r][k] -= f * M[col][k]
    return [M[i][m] / M[i][i] for i in range(m)]


def ols(X, y):
    p = len(X[0])
    A = [[sum(x[i] * x[j] for x in X) for j in range(p)] for i in range(p)]
    b = [sum(x[i] * yy for x, yy in zip(X, y)) for i in range(p)]
    return solve(A, b)


def fit(ts, row, target, use_load=True):
    X = [row(t) for t in ts]
    y = [t[target] * (t["k"] if use_load else 1.0) for t in ts]
    return ols(X, y)


def predict(beta, t, row, use_load=True):
    return sum(b * x for b, x in zip(beta, row(t))) / (t["k"] if use_load else 1.0)


def metrics(beta, ts, row, target, use_load=True):
    if beta is None or not ts:
        return {"mape_percent": None, "r2": None}
    obs = [t[target] for t in ts]
    pred = [predict(beta, t, row, use_load) for t in ts]
    mape = 100.0 * statistics.fmean(abs(p - o) / o for p, o in zip(pred, obs))
    mean = statistics.fmean(obs)
    ss_tot = sum((o - mean) ** 2 for o in obs)
    ss_res = sum((o - p) ** 2 for p, o in zip(pred, obs))
    return {"mape_percent": round(mape, 2), "r2": round(1 - ss_res / ss_tot, 4) if ss_tot > 0 else None}


def rnd(x, nd=6):
    return None if x is None else float(f"{x:.{nd}g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot-dir", help="write TSV tables for plot.gp here")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--meta", action="append", default=[], help="key=value for the 'run' object")
    a = ap.parse_args()

    docs = load(a.data)
    ts = [terms(d) for d in docs]
    N = len(ts)
    if N < 6:
        sys.exit(f"{a.data}: {N} points, need at least 6 to fit")

    # a: the zero check + hash stage, per non-zero share, in the prior's units
    # (with the load divisor the prior's a is the stage x max(0.05, 1-L))
    a_vals, a_raw = [], []
    for d, t in zip(docs, ts):
        st = d.get("stages_cpu_s_per_gib")
        if st and t["z"] < 1:
            a_raw.append((st["zero_check"] + st["hash"]) / (1 - t["z"]))
            a_vals.append(a_raw[-1] * t["k"])
    a_pin = statistics.median(a_vals) if a_vals else 0.0
    a_nd = statistics.median(a_raw) if a_raw else 0.0

    cb = fit(ts, cost_row, "cost")
    lb = fit(ts, lat_row, "latency")
    if cb is None or lb is None:
        sys.exit("singular fit: the points do not vary enough (need several E, u and compression values)")
    b, D, W, q = cb
    cost = {"a": rnd(a_pin), "b": rnd(b), "d": rnd(D - a_pin), "w": rnd(W - a_pin), "q": rnd(q)}
    lat = dict(zip(["l0", "l1", "l2", "l3"], [rnd(x) for x in lb]))
    cm, lm = metrics(cb, ts, cost_row, "cost"), metrics(lb, ts, lat_row, "latency")

    nfit = int(math.floor(N * (1 - a.holdout)))
    tr, te = ts[:nfit], ts[nfit:]
    hcb, hlb = fit(tr, cost_row, "cost"), fit(tr, lat_row, "latency")
    sweeps_te = {}
    for d in docs[nfit:]:
        sweeps_te[d.get("sweep", "")] = sweeps_te.get(d.get("sweep", ""), 0) + 1
    holdout = {
        "fit_points": nfit, "test_points": N - nfit,
        "test_index_entries": sorted({t["E"] for t in te}),
        "test_sweeps": sweeps_te,
        "cost": metrics(hcb, te, cost_row, "cost"),
        "latency": metrics(hlb, te, lat_row, "latency"),
        "cost_coefficients_bDWq": [rnd(x) for x in hcb] if hcb else None,
    }
    if hcb is None or hlb is None:
        holdout["note"] = "the first points alone leave a term constant (singular fit); no hold-out"

    # diagnostics: the same terms without the load divisor, to show whether
    # the measured target follows 1 / (1 - L)
    nb_c, nb_l = fit(ts, cost_row, "cost", False), fit(ts, lat_row, "latency", False)
    diag = {
        "without_load_divisor": {
            "cost": metrics(nb_c, ts, cost_row, "cost", False),
            "latency": metrics(nb_l, ts, lat_row, "latency", False),
            "cost_coefficients": {"a": rnd(a_nd), "b": rnd(nb_c[0]), "d": rnd(nb_c[1] - a_nd),
                                  "w": rnd(nb_c[2] - a_nd), "q": rnd(nb_c[3])} if nb_c else None,
            "latency_coefficients": dict(zip(["l0", "l1", "l2", "l3"], [rnd(x) for x in nb_l]))
            if nb_l else None,
            "holdout_time_ordered": {
                "cost": metrics(fit(tr, cost_row, "cost", False), te, cost_row, "cost", False),
                "latency": metrics(fit(tr, lat_row, "latency", False), te, lat_row, "latency", False),
            },
        },
        "a_from_profile_points": len(a_vals),
        "a_spread_p10_p90": [rnd(x) for x in (statistics.quantiles(a_vals, n=10)[0],
                                              statistics.quantiles(a_vals, n=10)[-1])] if len(a_vals) >= 10 else None,
        "per_duplicate_D": rnd(D), "per_new_W": rnd(W),
        "load_measured_range": [rnd(min(t["L"] for t in ts), 3), rnd(max(t["L"] for t in ts), 3)],
    }

    run = {}
    old = {}
    costmodel_prior = None  # dedupctl model fit's section (prior-fit.json), kept as it is
    if os.path.exists(a.out):
        try:
            with open(a.out) as fh:
                prev = json.load(fh)
            old = prev.get("run", {})
            costmodel_prior = prev.get("costmodel_prior")
        except (OSError, json.JSONDecodeError):
            old = {}
    for kv in a.meta:
        k, _, v = kv.partition("=")
        run[k] = v if v != "" else old.get(k, "")

    out = {
        "model": {
            "cost": "[a(1-z) + b(1-z)log2(E) + d u + w n + q c s'] / max(0.05, 1-L)",
            "latency": "[l0 + l1(1-z)log2(E) + l2 n + l3 c s'] / max(0.05, 1-L)",
            "terms": "z,u,n: zero/duplicate/new shares (measured); c: compression on; "
                     "s': compressible share of new blocks x n; E: index entries; "
                     "L: node_cpu_util_ex_vdo (measured)",
            "units": "cost: CPU s per logical GiB; latency: ms per 4 KiB block",
            "identifiability": "(1-z) = u + n, so only a+d and a+w are fitted; a is pinned to the "
                               "profiled zero-check + hash stage (median over points)",
        },
        "source": "bench/calibrate: userspace proxy of VDO's per-block work, not VDO",
        "hash": "murmur3-x64-128",
        "cost": cost,
        "latency": lat,
        "mape_percent": cm["mape_percent"],
        "r2": cm["r2"],
        "latency_mape_percent": lm["mape_percent"],
        "latency_r2": lm["r2"],
        "points": N,
        "holdout_time_ordered": holdout,
        "diagnostics": diag,
        "run": run,
    }
    if costmodel_prior is not None:
        out["costmodel_prior"] = costmodel_prior
    with open(a.out + ".tmp", "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    os.replace(a.out + ".tmp", a.out)

    print(f"points {N}; cost  a={cost['a']} b={cost['b']} d={cost['d']} w={cost['w']} q={cost['q']} (s/GiB)")
    print(f"        in-sample MAPE {cm['mape_percent']} %, R2 {cm['r2']}; "
          f"hold-out (last {N - nfit}) MAPE {holdout['cost']['mape_percent']} %, R2 {holdout['cost']['r2']}")
    print(f"latency l0={lat['l0']} l1={lat['l1']} l2={lat['l2']} l3={lat['l3']} (ms)")
    print(f"        in-sample MAPE {lm['mape_percent']} %, R2 {lm['r2']}; "
          f"hold-out MAPE {holdout['latency']['mape_percent']} %, R2 {holdout['latency']['r2']}")
    wl = diag["without_load_divisor"]
    wh = wl["holdout_time_ordered"]
    print(f"without the 1/(1-L) divisor: cost MAPE {wl['cost']['mape_percent']} % R2 {wl['cost']['r2']} "
          f"(hold-out {wh['cost']['mape_percent']} %, {wh['cost']['r2']}); "
          f"latency MAPE {wl['latency']['mape_percent']} % R2 {wl['latency']['r2']} "
          f"(hold-out {wh['latency']['mape_percent']} %, {wh['latency']['r2']})")
    print(f"-> {a.out}")

    if a.plot_dir:
        os.makedirs(a.plot_dir, exist_ok=True)
        cols = ("E_Mi log2E u z s c L_nominal L_meas cost mib_s latency_us pred_cost "
                "pred_latency_us nodiv_cost nodiv_latency_us")
        tables = {}
        for d, t in zip(docs, ts):
            row = [t["E"] / 1048576, t["lg"], t["u"], t["z"], d["point"]["compressible_share"],
                   int(t["c"]), d["point"]["cpu_load"], t["L"], t["cost"], d["throughput_mib_s"],
                   t["latency"] * 1000, predict(cb, t, cost_row), predict(lb, t, lat_row) * 1000,
                   predict(nb_c, t, cost_row, False), predict(nb_l, t, lat_row, False) * 1000]
            for name in (d.get("sweep", "other"), "all"):
                tables.setdefault(name, []).append(row)
        mid = [t["E"] for d, t in zip(docs, ts) if d.get("sweep") in ("dup", "load")]
        with open(os.path.join(a.plot_dir, "labels.gp"), "w") as fh:
            fh.write('emid = "%s"\n' % (f"{mid[0] / 1048576:g} Mi" if mid else "?"))
        xcol = {"index": 0, "dup": 2, "load": 7}  # sorted along the plot's x
        for name, rows in tables.items():
            if name in xcol:
                rows.sort(key=lambda r: r[xcol[name]])
            with open(os.path.join(a.plot_dir, f"{name}.tsv"), "w") as fh:
                fh.write("# " + cols + "\n")
                for r in rows:
                    fh.write("\t".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in r) + "\n")


if __name__ == "__main__":
    main()
