#!/usr/bin/env python3
"""Checks the rendered deploy/ manifests (tests/deploy/check-deploy.sh).

Every check prints one line; any failure exits 1 after all checks ran.
"""
import argparse
import glob
import json
import os
import re
import sys

import yaml

NS = "dedupd-system"
# labels that the daemon sets at run time (never in a pod template)
RUNTIME_LABELS = {"dedupd.io/leader"}
# objects the README tells the operator to create (never in git)
EXTERNAL = {("Secret", NS, "dedupd-token"), ("Secret", NS, "dedupd-placement-tls"),
            ("ConfigMap", NS, "kube-root-ca.crt")}
# built-in roles that bindings may name
BUILTIN_ROLES = {("ClusterRole", None, "system:kube-scheduler"),
                 ("ClusterRole", None, "system:volume-scheduler"),
                 ("Role", "kube-system", "extension-apiserver-authentication-reader")}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "RuntimeClass", "StorageClass", "PersistentVolume", "Node", "CSIDriver",
                  "MutatingWebhookConfiguration"}
EXTENDER_FIELDS = {"urlPrefix", "filterVerb", "preemptVerb", "prioritizeVerb", "weight",
                   "bindVerb", "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable",
                   "managedResources", "ignorable"}
# what dedupd serves under urlPrefix (dedupd/api/extender.c)
SERVED_VERBS = {"filter", "prioritize"}

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)
    return ok


def load_renders(d):
    renders = {}
    for path in sorted(glob.glob(os.path.join(d, "*.yaml"))):
        name = os.path.basename(path)[:-5]
        with open(path) as f:
            docs = [x for x in yaml.safe_load_all(f) if x is not None]
        renders[name] = docs
    return renders


def key(o):
    m = o.get("metadata", {})
    return (o.get("kind"), m.get("namespace"), m.get("name"))


def pod_templates(docs):
    for o in docs:
        if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield o, o["spec"]["template"]


def duration_seconds(s):
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ms|s|m|h))+)", str(s))
    if not m:
        return None
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check_objects(name, docs, help_flags):
    objs = {}
    for o in docs:
        ok = (isinstance(o, dict) and o.get("apiVersion") and o.get("kind")
              and o.get("metadata", {}).get("name"))
        check(bool(ok), f"{name}: {key(o) if isinstance(o, dict) else o!r} has apiVersion, kind, name")
        if not ok:
            continue
        if o["kind"] not in CLUSTER_SCOPED:
            check(bool(o["metadata"].get("namespace")), f"{name}: {key(o)} is namespaced and has a namespace")
        check(key(o) not in objs, f"{name}: {key(o)} is unique")
        objs[key(o)] = o

    def exists(kind, ns, nm):
        return (kind, ns, nm) in objs or (kind, ns, nm) in EXTERNAL

    nss = {o["metadata"]["name"]: o for o in docs if o["kind"] == "Namespace"}
    check(NS in nss, f"{name}: namespace {NS} is rendered")
    for o in docs:
        ns = o["metadata"].get("namespace")
        if ns and ns not in ("kube-system",):
            check(ns in nss, f"{name}: {key(o)}'s namespace is rendered")

    templates = list(pod_templates(docs))
    for w, t in templates:
        ns = w["metadata"]["namespace"]
        labels = t.get("metadata", {}).get("labels", {})
        sel = w["spec"]["selector"].get("matchLabels", {})
        check(sel and all(labels.get(k) == v for k, v in sel.items()),
              f"{name}: {key(w)} selector {sel} matches its pod template's labels")
        spec = t["spec"]
        sa = spec.get("serviceAccountName", "default")
        check(sa == "default" or exists("ServiceAccount", ns, sa),
              f"{name}: {key(w)} service account {sa} is rendered")
        for v in spec.get("volumes", []):
            if "secret" in v:
                check(exists("Secret", ns, v["secret"]["secretName"]),
                      f"{name}: {key(w)} Secret {v['secret']['secretName']} is rendered or created by the operator (README)")
            if "configMap" in v:
                check(exists("ConfigMap", ns, v["configMap"]["name"]),
                      f"{name}: {key(w)} ConfigMap {v['configMap']['name']} is rendered")
        vols = {v["name"] for v in spec.get("volumes", [])}
        for c in spec["containers"] + spec.get("initContainers", []):
            for m in c.get("volumeMounts", []):
                check(m["name"] in vols, f"{name}: {key(w)} mount {m['name']} has a volume")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if field in ref:
                        check(exists(kind, ns, ref[field]["name"]), f"{name}: {key(w)} env {e['name']} {kind} is rendered")
            if c.get("image", "").split(":")[0].endswith("dedupd"):
                for a in c.get("args", []):
                    flag = a.split("=", 1)[0]
                    check(flag in help_flags, f"{name}: {key(w)} flag {flag} is in dedupd --help")
                for a in c.get("args", []):
                    m = re.match(r"--placement-url=https?://([^.:/]+)\.([^.:/]+)\.svc:(\d+)", a)
                    if m:
                        svc = objs.get(("Service", m.group(2), m.group(1)))
                        check(svc is not None and any(p["port"] == int(m.group(3)) for p in svc["spec"]["ports"]),
                              f"{name}: {key(w)} --placement-url names a rendered Service and port")
                        # fanning out to every replica needs a name that lists them all
                        if "--placement-resolve-all" in c.get("args", []) and svc is not None:
                            check(svc["spec"].get("clusterIP") == "None"
                                  and svc["spec"].get("publishNotReadyAddresses") is True,
                                  f"{name}: {key(w)} --placement-resolve-all: {m.group(1)} is headless "
                                  "and lists not-ready replicas")

    for s in (o for o in docs if o["kind"] == "Service"):
        ns = s["metadata"]["namespace"]
        sel = s["spec"].get("selector", {})
        static = {k: v for k, v in sel.items() if k not in RUNTIME_LABELS}
        matched = [(w, t) for w, t in templates if w["metadata"]["namespace"] == ns and
                   all(t["metadata"].get("labels", {}).get(k) == v for k, v in static.items())]
        check(bool(sel) and len(matched) > 0, f"{name}: Service {s['metadata']['name']} selector {sel} matches a pod template"
              + (" (less the run-time label(s) " + ",".join(sorted(set(sel) - set(static))) + ")" if set(sel) - set(static) else ""))
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            for w, t in matched:
                ports = [cp for c in t["spec"]["containers"] for cp in c.get("ports", [])]
                check(any(cp.get("name") == tp or cp["containerPort"] == tp for cp in ports),
                      f"{name}: Service {s['metadata']['name']} targetPort {tp} is a port of {key(w)}")

    for b in (o for o in docs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        rr = b["roleRef"]
        rns = b["metadata"].get("namespace") if rr["kind"] == "Role" else None
        check((rr["kind"], rns, rr["name"]) in objs or (rr["kind"], rns, rr["name"]) in BUILTIN_ROLES,
              f"{name}: {key(b)} roleRef {rr['kind']}/{rr['name']} is rendered or built in")
        for sub in b.get("subjects", []):
            if sub["kind"] == "ServiceAccount":
                check(("ServiceAccount", sub["namespace"], sub["name"]) in objs,
                      f"{name}: {key(b)} subject {sub['namespace']}/{sub['name']} is rendered")
    return objs


def check_node_daemonset(name, objs):
    ds = objs.get(("DaemonSet", NS, "dedupd-node"))
    if not check(ds is not None, f"{name}: DaemonSet dedupd-node"):
        return
    spec = ds["spec"]["template"]["spec"]
    c = spec["containers"][0]
    hp = {v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    check({"/proc", "/sys", "/dev/mapper"} <= hp, f"{name}: node pods mount the host's /proc, /sys, /dev/mapper")
    check(c.get("securityContext", {}).get("privileged") is True, f"{name}: node container privileged (dm ioctls, /dev/mapper/control)")
    check(spec.get("priorityClassName") == "system-node-critical", f"{name}: node pods system-node-critical")
    check(any(t.get("key") == "nvidia.com/gpu" and t.get("operator") == "Exists" and "effect" not in t
              for t in spec.get("tolerations", [])), f"{name}: node pods tolerate nvidia.com/gpu taints (every effect)")
    env = {e["name"]: e for e in c.get("env", [])}
    check(env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
          f"{name}: NODE_NAME from the downward API (spec.nodeName)")
    check(env.get("NVIDIA_VISIBLE_DEVICES", {}).get("value") == "all", f"{name}: NVIDIA_VISIBLE_DEVICES=all")
    res = c.get("resources", {})
    check(not any("nvidia.com" in r for part in res.values() for r in part),
          f"{name}: node pods request no GPU")
    nsobj = objs[("Namespace", None, NS)]
    check(nsobj["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "privileged",
          f"{name}: namespace enforces Pod Security 'privileged' (the DaemonSet's level)")


def check_placement_restricted(name, objs):
    d = objs.get(("Deployment", NS, "dedupd-placement"))
    if not check(d is not None, f"{name}: Deployment dedupd-placement"):
        return
    spec = d["spec"]["template"]["spec"]
    psc = spec.get("securityContext", {})
    ok = psc.get("runAsNonRoot") is True and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        ok = ok and sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"]
    ok = ok and not any("hostPath" in v for v in spec.get("volumes", []))
    check(ok, f"{name}: placement pods meet Pod Security 'restricted'")


def parse_path(path):
    """/api/v1/[namespaces/NS/]RES[/NAME[/SUB]] or /apis/G/V/... ->
    (group, resource, namespace, name)"""
    seg = [s for s in path.split("/") if s]
    if seg[:2] == ["api", "v1"]:
        group, rest = "", seg[2:]
    elif seg[0] == "apis" and len(seg) >= 3:
        group, rest = seg[1], seg[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest:
        return None
    res = rest[0] + ("/" + rest[2] if len(rest) >= 3 else "")
    return group, res, ns, rest[1] if len(rest) >= 2 else None


def rules_for(objs, sa_ns, sa_name):
    """[(rule, namespace or None for cluster-wide)] bound to the account"""
    out = []
    for (kind, ns, nm), b in objs.items():
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa_name and s["namespace"] == sa_ns
                   for s in b.get("subjects", [])):
            continue
        rr = b["roleRef"]
        role = objs.get((rr["kind"], ns if rr["kind"] == "Role" else None, rr["name"]))
        if role is None:
            continue
        scope = None if kind == "ClusterRoleBinding" else ns
        out += [(r, scope) for r in role.get("rules", [])]
    return out


def covered(rules, verb, group, res, ns, name):
    for r, scope in rules:
        if scope is not None and scope != ns:
            continue
        if group not in r.get("apiGroups", []) and "*" not in r.get("apiGroups", []):
            continue
        if res not in r.get("resources", []) and "*" not in r.get("resources", []):
            continue
        if verb not in r.get("verbs", []) and "*" not in r.get("verbs", []):
            continue
        if r.get("resourceNames") and name not in r["resourceNames"]:
            continue
        return True
    return False


def check_rbac(name, objs, requests):
    d = objs[("Deployment", NS, "dedupd-placement")]
    sa = d["spec"]["template"]["spec"].get("serviceAccountName", "default")
    rules = rules_for(objs, NS, sa)
    for q in requests:
        p = parse_path(q["path"])
        if not check(p is not None, f"{name}: recorded call {q['verb']} {q['path']} is an API path"):
            continue
        group, res, ns, nm = p
        check(covered(rules, q["verb"], group, res, ns, nm),
              f"{name}: RBAC lets {NS}/{sa} {q['verb']} {q['path']} (recorded {q['count']}x)")


def check_extender_config(what, cfg, services):
    check(cfg.get("apiVersion") == "kubescheduler.config.k8s.io/v1" and cfg.get("kind") == "KubeSchedulerConfiguration",
          f"{what}: KubeSchedulerConfiguration v1")
    exts = cfg.get("extenders") or []
    check(len(exts) == 1, f"{what}: one extender")
    for e in exts:
        check(set(e) <= EXTENDER_FIELDS, f"{what}: only v1 extender fields (strict decoding): {sorted(set(e) - EXTENDER_FIELDS) or 'none extra'}")
        url = e.get("urlPrefix", "")
        check(not url.endswith("/"), f"{what}: urlPrefix has no trailing '/'")
        m = re.fullmatch(r"(https?)://([^.:/]+)\.([^.:/]+)\.svc:(\d+)(/.*)", url)
        if check(m is not None, f"{what}: urlPrefix {url} names a Service"):
            svc = services.get((m.group(3), m.group(2)))
            check(svc is not None and any(p["port"] == int(m.group(4)) for p in svc["spec"]["ports"]),
                  f"{what}: urlPrefix's Service {m.group(3)}/{m.group(2)}:{m.group(4)} is rendered")
            check(m.group(5) == "/scheduler", f"{what}: urlPrefix path /scheduler (dedupd's routes)")
            check((m.group(1) == "https") == bool(e.get("enableHTTPS")), f"{what}: enableHTTPS matches the scheme")
        check(e.get("filterVerb") in SERVED_VERBS and e.get("prioritizeVerb") in SERVED_VERBS,
              f"{what}: filter and prioritize verbs are served by dedupd")
        check("preemptVerb" not in e and "bindVerb" not in e, f"{what}: no preempt or bind verb (dedupd serves neither)")
        check(isinstance(e.get("weight"), int) and e["weight"] > 0, f"{what}: integer weight > 0 with a prioritize verb")
        check(e.get("nodeCacheCapable") is True, f"{what}: names only (nodeCacheCapable: true)")
        check(e.get("ignorable") is True, f"{what}: ignorable: true (fail open)")
        t = duration_seconds(e.get("httpTimeout", ""))
        check(t is not None and 0 < t <= 5, f"{what}: httpTimeout {e.get('httpTimeout')} is a short duration (<= 5s)")
        mr = e.get("managedResources") or []
        check(any(r.get("name") == "nvidia.com/gpu" and r.get("ignoredByScheduler") is False for r in mr),
              f"{what}: managedResources nvidia.com/gpu, still counted by the scheduler")
        if e.get("enableHTTPS"):
            tls = e.get("tlsConfig") or {}
            check(bool(tls.get("caFile") or tls.get("caData")) and not tls.get("insecure"),
                  f"{what}: HTTPS verifies the server (caFile/caData, not insecure)")


def check_webhooks(name, objs, services):
    """The right-sizing MutatingWebhookConfiguration (issue 13's fixed settings)."""
    for (kind, _, nm), o in objs.items():
        if kind != "MutatingWebhookConfiguration":
            continue
        hooks = o.get("webhooks") or []
        check(len(hooks) == 1, f"{name}: {nm} has one webhook")
        for w in hooks:
            what = f"{name}: {nm}/{w.get('name')}"
            check(w.get("failurePolicy") == "Ignore", f"{what}: failurePolicy Ignore (fail open)")
            check(w.get("timeoutSeconds") == 3, f"{what}: timeoutSeconds 3")
            check(w.get("sideEffects") == "NoneOnDryRun", f"{what}: sideEffects NoneOnDryRun")
            check(w.get("reinvocationPolicy") == "IfNeeded", f"{what}: reinvocationPolicy IfNeeded")
            check(w.get("admissionReviewVersions") == ["v1"], f"{what}: admissionReviewVersions [v1]")
            rules = w.get("rules") or []
            check(any(r.get("operations") == ["CREATE"] and r.get("resources") == ["pods"]
                      and r.get("apiGroups") == [""] for r in rules), f"{what}: rules: pods CREATE")
            svc = (w.get("clientConfig") or {}).get("service") or {}
            sobj = services.get((svc.get("namespace"), svc.get("name")))
            check(sobj is not None and any(p["port"] == svc.get("port") for p in sobj["spec"]["ports"]),
                  f"{what}: clientConfig names a rendered Service and port "
                  f"({svc.get('namespace')}/{svc.get('name')}:{svc.get('port')})")
            check(svc.get("path") == "/admission/mutate", f"{what}: path /admission/mutate (dedupd's route)")
            ex = set()
            for e in (w.get("namespaceSelector") or {}).get("matchExpressions") or []:
                if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn":
                    ex |= set(e.get("values") or [])
            check({"kube-system", svc.get("namespace")} <= ex,
                  f"{what}: namespaceSelector excludes kube-system and {svc.get('namespace')}")
            ann = (o.get("metadata") or {}).get("annotations") or {}
            check("caBundle" in (w.get("clientConfig") or {}) or any(k.startswith("cert-manager.io/inject-ca-from") for k in ann),
                  f"{what}: caBundle set or injected by cert-manager")
            # kube-apiserver calls webhooks over HTTPS only
            tls = [t for w2, t in pod_templates(list(objs.values()))
                   if w2["metadata"]["name"] == svc.get("name")
                   and any("--tls-cert" in a for c in t["spec"]["containers"] for a in c.get("args", []))]
            check(len(tls) > 0, f"{what}: the placement role serves HTTPS (--tls-cert)")


def metric_names(paths):
    names = set()
    for p in paths:
        with open(p) as f:
            for line in f:
                if line.startswith("# TYPE "):
                    _, _, n, t = line.split()[:4]
                    names.add(n)
                    if t == "histogram":
                        names |= {n + "_bucket", n + "_sum", n + "_count"}
                elif line.strip() and not line.startswith("#"):
                    names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--render-dir", required=True)
    ap.add_argument("--help-text", required=True)
    ap.add_argument("--requests", required=True)
    ap.add_argument("--metrics", action="append", required=True)
    a = ap.parse_args()

    with open(a.help_text) as f:
        help_flags = set(re.findall(r"--[a-z][a-z0-9-]*", f.read()))
    renders = load_renders(a.render_dir)
    check(len(renders) >= 2, f"renders: {', '.join(sorted(renders))}")
    with open(a.requests) as f:
        requests = json.load(f)
    kinds = {parse_path(q["path"])[1] for q in requests if parse_path(q["path"])}
    check({"pods", "persistentvolumeclaims", "persistentvolumes", "nodes", "storageclasses",
           "namespaces", "events", "csistoragecapacities", "leases"} <= kinds,
          f"the test API server recorded the cache's calls ({len(requests)} distinct)")

    all_objs = {}
    for name, docs in renders.items():
        objs = check_objects(name, docs, help_flags)
        all_objs[name] = objs
        check_node_daemonset(name, objs)
        check_placement_restricted(name, objs)
        check_rbac(name, objs, requests)
        services = {(k[1], k[2]): o for k, o in objs.items() if k[0] == "Service"}
        check_webhooks(name, objs, services)
        for (kind, ns, nm), o in objs.items():
            if kind == "ConfigMap" and "config.yaml" in o.get("data", {}):
                cfg = yaml.safe_load(o["data"]["config.yaml"])
                if cfg.get("kind") == "KubeSchedulerConfiguration":
                    check_extender_config(f"{name}: ConfigMap {nm}", cfg, services)
                    profiles = [p.get("schedulerName") for p in cfg.get("profiles", [])]
                    check(profiles == ["dedupd-scheduler"], f"{name}: second scheduler's profile is dedupd-scheduler")
                    le = cfg.get("leaderElection", {})
                    check(le.get("resourceName") not in (None, "kube-scheduler"),
                          f"{name}: second scheduler has its own Lease ({le.get('resourceName')})")
                    dep = [w for w, t in pod_templates(renders[name]) if any(
                        v.get("configMap", {}).get("name") == nm for v in t["spec"].get("volumes", []))]
                    check(len(dep) == 1, f"{name}: ConfigMap {nm} is mounted by the scheduler Deployment")

    default_services = {(k[1], k[2]): o for k, o in all_objs.get("overlays-default", {}).items() if k[0] == "Service"}
    with open(os.path.join(a.src, "deploy/scheduler/kube-scheduler-config.yaml")) as f:
        check_extender_config("deploy/scheduler/kube-scheduler-config.yaml", yaml.safe_load(f), default_services)

    names = metric_names(a.metrics)
    with open(os.path.join(a.src, "deploy/monitoring/grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("expr", "query") and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(dash)
    used = sorted({m for e in exprs for m in re.findall(r"\bdedupd_[a-zA-Z0-9_]+", e)})
    check(len(used) > 0, f"dashboard: {len(exprs)} queries use {len(used)} dedupd metrics")
    for m in used:
        check(m in names, f"dashboard: metric {m} exists on a running dedupd's /metrics")

    with open(os.path.join(a.src, "README.md")) as f:
        readme = f.read()
    check("## Deploying on Kubernetes" in readme, "README has 'Deploying on Kubernetes'")
    rendered_hooks = [o for objs in all_objs.values() for k, o in objs.items() if k[0] == "MutatingWebhookConfiguration"]
    check(len(rendered_hooks) > 0, "an overlay renders the right-sizing MutatingWebhookConfiguration")
    check("caBundle" in readme and "dedupd-rightsize" in readme, "README tells how the webhook's caBundle is set")
    for kind, ns, nm in sorted(EXTERNAL):
        if kind == "Secret":
            check(nm in readme, f"README tells how to create Secret {nm}")

    print(f"check-deploy: {len(failures)} failed" if failures else "check-deploy: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
