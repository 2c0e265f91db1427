#!/usr/bin/env bash
# ctest test-deploy (label integration): the deploy/ manifests, rendered
# and checked without an API server (there is none here, so kubectl apply
# --dry-run cannot run).
#   1. `kubectl kustomize` renders deploy/base and every deploy/overlays/*
#      with kubectl 1.27 and 1.33 (both ship with this machine image: the
#      google-cloud-sdk's kubectl.1.NN beside its dispatcher), the same
#      bytes from both;
#   2. real daemons: a placement role against the test API server
#      (tests/kubeapi via kubeapi-record, which records every call), a node
#      role pushing reports to it, and an `all` role on a vdo-sim replay;
#      `promtool check metrics` on each /metrics, and the extender routes
#      that the scheduler configurations name answer 200;
#   3. tests/deploy/check-deploy.py: every object parses, names and labels
#      match across objects, the flags exist in `dedupd --help`, RBAC covers
#      every recorded API call, the scheduler configurations follow the
#      extender checklist, every metric the dashboard uses exists;
#   4. `promtool check config` on the scrape configuration (its
#      kubernetes_sd_configs as static_configs: Debian's promtool lacks them).
# Exit 77 (ctest's skip) outside CI when a tool is missing; under CI=true
# that is a failure.
set -euo pipefail
src=${DD_SOURCE_DIR:?}
build=${DD_BUILD_DIR:?}
dedupd=${DEDUPD:-$build/dedupd}
dedupctl=${DEDUPCTL:-$build/dedupctl}
recorder=${KUBEAPI_RECORD:-$build/tests/kubeapi-record}
t_start=$(date +%s.%N)

skip() {
  if [ "${CI:-}" = true ]; then
    echo "test-deploy: FAIL (CI=true, a skip is a failure): $*" >&2
    exit 1
  fi
  echo "test-deploy: SKIP: $*"
  exit 77
}
fail() { echo "test-deploy: FAIL: $*" >&2; exit 1; }

# --- tools
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3 || true)
[ -n "$py" ] && "$py" -c 'import yaml' 2>/dev/null ||
  skip "python3 with PyYAML is missing (apt-get install python3-yaml)"
command -v promtool >/dev/null || skip "promtool is missing (apt-get install prometheus)"
kubectls=()
for v in 1.27 1.33; do
  for d in /usr/lib/google-cloud-sdk/bin "$(dirname "$(readlink -f "$(command -v kubectl || echo /nonexistent)")")"; do
    if [ -x "$d/kubectl.$v" ]; then
      kubectls+=("$d/kubectl.$v")
      break
    fi
  done
done
if [ ${#kubectls[@]} -eq 0 ]; then
  command -v kubectl >/dev/null || skip "kubectl is missing"
  kubectls=("$(command -v kubectl)")
  echo "test-deploy: kubectl 1.27/1.33 not found beside the dispatcher; using $(command -v kubectl) alone"
fi
for b in "$dedupd" "$dedupctl" "$recorder"; do
  [ -x "$b" ] || fail "$b is not built"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dedupd-deploy.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${keep:-0}" = 1 ]; then echo "test-deploy: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
keep=${DEDUPD_DEPLOY_KEEP:-0}

# --- 1. render
mkdir -p "$tmp/render"
targets=(base)
for o in "$src"/deploy/overlays/*/; do targets+=("overlays/$(basename "$o")"); done
for t in "${targets[@]}"; do
  name=${t//\//-}
  for k in "${kubectls[@]}"; do
    ver=$("$k" version --client -o json 2>/dev/null | "$py" -c 'import json,sys; v=json.load(sys.stdin)["clientVersion"]; print(v["major"]+"."+v["minor"])')
    if ! "$k" kustomize "$src/deploy/$t" >"$tmp/render/$name.$ver.yaml" 2>"$tmp/render/$name.$ver.err"; then
      cat "$tmp/render/$name.$ver.err" >&2
      fail "kubectl $ver kustomize deploy/$t"
    fi
  done
  first=$(ls "$tmp/render/$name".*.yaml | head -n 1)
  for f in "$tmp/render/$name".*.yaml; do
    cmp -s "$first" "$f" || fail "deploy/$t renders differently with $(basename "$first") and $(basename "$f")"
  done
  cp "$first" "$tmp/render/$name.yaml"
  echo "test-deploy: rendered deploy/$t ($(grep -c '^kind:' "$first") objects; kubectl ${kubectls[*]##*/})"
done
rm -f "$tmp"/render/*.*.yaml "$tmp"/render/*.err
"$dedupd" --help >"$tmp/dedupd-help.txt"

# --- 2. daemons
cat >"$tmp/workload.json" <<'EOF'
{"node": {"cpus": 2},
 "volumes": [{"name": "v1", "write_mbps": 200, "read_mbps": 400, "duplicate_share": 0.5,
              "zero_share": 0.05, "compressible_share": 0.3, "index_entries": 50000000,
              "stored_gib": 300, "cpu_load": 0.25, "compression": true}]}
EOF
"$dedupctl" vdo-sim --workload "$tmp/workload.json" --intervals 20 --interval-seconds 10 \
  --seed 12 --out "$tmp/replay" >/dev/null
printf 'deploy-test-token-0123456789\n' >"$tmp/token"
chmod 600 "$tmp/token"

# tests/deploy/fixtures: a class of ours for the node's pool v1 and the
# placement Deployment (the capacity publisher's owner)
"$recorder" "$src/tests/fixtures/k8s:$src/tests/deploy/fixtures" "$tmp/kubeapi.url" "$tmp/requests.json" \
  2>"$tmp/kubeapi.log" &
rec_pid=$!
pids+=("$rec_pid")
for _ in $(seq 100); do [ -s "$tmp/kubeapi.url" ] && break; sleep 0.1; done
[ -s "$tmp/kubeapi.url" ] || { cat "$tmp/kubeapi.log" >&2; fail "kubeapi-record did not start"; }
kube=$(cat "$tmp/kubeapi.url")

# free loopback ports from the kernel (bind to 0, read, close)
ports=$("$py" -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
read -r p_place p_node p_all <<<"$ports"

start() { # NAME ARGS...
  local name=$1; shift
  "$dedupd" "$@" >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
}
# with leader election (as overlays/ha runs it): its Lease and pod-label
# calls are recorded and checked against the RBAC too
export POD_NAMESPACE=dedupd-system
start placement --role placement --listen "127.0.0.1:$p_place" --data-dir "$tmp/d-placement" \
  --token-file "$tmp/token" --kube-api "$kube" --log-level info \
  --leader-elect --pod-name dedupd-placement-0 --retry-period 0.2 \
  --publish-capacity --publish-capacity-interval 0.2 \
  --publish-capacity-owner Deployment/dedupd-placement \
  --pod-events --pod-events-window 3600
unset POD_NAMESPACE
start node --role node --listen "127.0.0.1:$p_node" --data-dir "$tmp/d-node" \
  --source "replay:$tmp/replay" --proc-root "$tmp/replay/proc" --interval 0.5 \
  --node-name gpu-node-a --placement-url "http://127.0.0.1:$p_place" \
  --placement-token-file "$tmp/token"
start all --role all --listen "127.0.0.1:$p_all" --data-dir "$tmp/d-all" \
  --source "replay:$tmp/replay" --proc-root "$tmp/replay/proc" --interval 0.5 \
  --kube-api "$kube"

metric() { # PORT -> /metrics into stdout
  curl -sf --max-time 5 "http://127.0.0.1:$1/metrics"
}
ready=0
for _ in $(seq 150); do
  if metric "$p_place" >"$tmp/placement.prom" 2>/dev/null &&
     metric "$p_all" >"$tmp/all.prom" 2>/dev/null &&
     metric "$p_node" >"$tmp/node.prom" 2>/dev/null &&
     [ "$(grep -c '^dedupd_kube_synced{.*} 1$' "$tmp/placement.prom")" -ge 6 ] &&
     [ "$(grep -c '^dedupd_kube_synced{.*} 1$' "$tmp/all.prom")" -ge 6 ] &&
     grep -q '^dedupd_reports_received_total [1-9]' "$tmp/placement.prom" &&
     grep -q '^dedupd_capacity_publish_writes_total{op="create"} [1-9]' "$tmp/placement.prom" &&
     grep -q '^dedupd_samples_total [1-9]' "$tmp/node.prom"; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  tail -n 20 "$tmp"/*.log >&2
  fail "the daemons did not sync with the test API server, exchange a report and publish a CSIStorageCapacity within 30 s"
fi
sleep 1 # one more sample and report, so every family has its samples
for r in placement node all; do
  port_var=p_${r/placement/place}
  metric "${!port_var}" >"$tmp/$r.prom"
  if ! promtool check metrics <"$tmp/$r.prom" >"$tmp/$r.promtool" 2>&1; then
    cat "$tmp/$r.promtool" >&2
    fail "promtool check metrics on the $r role's /metrics"
  fi
  echo "test-deploy: promtool check metrics: $r role ok ($(grep -vc '^#' "$tmp/$r.prom") samples)"
done

# the extender routes the scheduler configurations name: POST urlPrefix/verb.
# The pod is one we place (a GPU, the claim deploy-data of the class
# dedupd-v1, pool v1 on gpu-node-a), so the prioritize also posts its pod
# Event (--pod-events): that call is recorded and checked against the RBAC.
body='{"Pod":{"metadata":{"name":"p","namespace":"ml","uid":"u1"},"spec":{"containers":[{"name":"c","resources":{"requests":{"nvidia.com/gpu":"1"},"limits":{"nvidia.com/gpu":"1"}}}],"volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"deploy-data"}}]}},"Nodes":null,"NodeNames":["gpu-node-a"]}'
for verb in filter prioritize; do
  code=$(curl -s -o "$tmp/extender-$verb.json" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/json' --data "$body" "http://127.0.0.1:$p_place/scheduler/$verb")
  [ "$code" = 200 ] || fail "POST /scheduler/$verb answered $code: $(cat "$tmp/extender-$verb.json")"
done
echo "test-deploy: POST /scheduler/filter and /scheduler/prioritize: 200 without a token"
sent=0
for _ in $(seq 100); do
  if metric "$p_place" | grep -q '^dedupd_pod_events_total{outcome="sent"} 1$'; then
    sent=1
    break
  fi
  sleep 0.1
done
[ "$sent" = 1 ] || { metric "$p_place" | grep dedupd_pod_events >&2; tail -n 20 "$tmp/placement.log" >&2; fail "the prioritize posted no pod Event within 10 s"; }
echo "test-deploy: the prioritize posted its pod Event (--pod-events)"

# the webhook's path (deploy/components/rightsize-webhook): the reference
# AdmissionReview answered 200 without a token, uid echoed, allowed
code=$(curl -s -o "$tmp/mutate.json" -w '%{http_code}' --max-time 5 -X POST \
  -H 'Content-Type: application/json' \
  --data @"$src/tests/fixtures/k8s/admission/admission-review.request.pod-create.json" \
  "http://127.0.0.1:$p_place/admission/mutate")
[ "$code" = 200 ] || fail "POST /admission/mutate answered $code: $(cat "$tmp/mutate.json")"
"$py" - "$tmp/mutate.json" <<'PY' || fail "POST /admission/mutate: not an allowed AdmissionReview"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["apiVersion"] == "admission.k8s.io/v1" and r["kind"] == "AdmissionReview", r
assert r["response"]["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002", r
assert r["response"]["allowed"] is True, r
PY
echo "test-deploy: POST /admission/mutate: 200 without a token, an allowed AdmissionReview"

# stop the daemons, then the recorder (it writes the calls it served)
for p in "${pids[@]:1}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]:1}"; do wait "$p" 2>/dev/null || true; done
kill -TERM "$rec_pid"
wait "$rec_pid" || fail "kubeapi-record exited $?"
pids=()

# --- 3. the checks
"$py" "$src/tests/deploy/check-deploy.py" \
  --src "$src" --render-dir "$tmp/render" --help-text "$tmp/dedupd-help.txt" \
  --requests "$tmp/requests.json" \
  --metrics "$tmp/placement.prom" --metrics "$tmp/node.prom" --metrics "$tmp/all.prom" ||
  fail "check-deploy.py"

# --- 4. the scrape configuration. Debian's prometheus is built without
# the Kubernetes service discovery, so its promtool refuses
# kubernetes_sd_configs: those blocks become static_configs for the check
# (everything else, relabelling included, is checked as written).
"$py" - "$src/deploy/monitoring/prometheus-scrape.yaml" "$tmp/prometheus-check.yaml" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
for job in cfg["scrape_configs"]:
    sd = job.pop("kubernetes_sd_configs")
    assert sd and all(s["role"] == "pod" and s["namespaces"]["names"] == ["dedupd-system"] for s in sd), job["job_name"]
    job["static_configs"] = [{"targets": ["127.0.0.1:7450"]}]
yaml.safe_dump(cfg, open(sys.argv[2], "w"))
PY
promtool check config "$tmp/prometheus-check.yaml" >"$tmp/promtool-config" 2>&1 ||
  { cat "$tmp/promtool-config" >&2; fail "promtool check config deploy/monitoring/prometheus-scrape.yaml"; }
echo "test-deploy: promtool check config: ok (kubernetes_sd_configs as static_configs)"
awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "test-deploy: passed in %.1f s\n", b - a }'
