#!/usr/bin/env bash
# Every benchmark behind one entry point (figures, not pass/fail): builds the release binary,
# runs benches/translate.rs and benches/envoy_xds.rs (build, push, mesh, edit), prints a table
# — figure, size, meshbridge, peer, ratio — and writes target/bench-results.json, a JSON list
# of {"figure", "size", "unit", "value", "peer", "peer_value"} (one record per peer; `peer`
# null where there is none; `backend` where a figure is per backend).
#   scripts/bench.sh            the issue's sizes (minutes on 2 cores)
#   scripts/bench.sh --quick    tiny sizes (a check that every benchmark runs)
#   scripts/bench.sh [--quick] translate build push mesh edit    only those (default: all)
# Peers: the Python grpcio ADS server (benches/envoy_peer/pyads.py), installed into
# .tools/bench-venv (grpcio, xds-protos from PyPI). The `edit` figures need Envoy (as
# scripts/test.sh installs it into .tools/). MESHBRIDGE_BENCH_PROFILE=dev builds with the dev
# profile instead of release (what scripts/test.sh does for its --quick check: figures from a
# debug build mean nothing, the check is that every benchmark builds and runs);
# MESHBRIDGE_BENCH_OUT names another results file than target/bench-results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--quick" ]; then export MESHBRIDGE_BENCH_QUICK=1; shift; fi
only="${*:-translate build push mesh edit}"
want() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
TOOLS="$PWD/.tools"
OUT=target/bench-raw.txt
RESULTS="${MESHBRIDGE_BENCH_OUT:-target/bench-results.json}"
mkdir -p target

if [ ! -x "$TOOLS/bench-venv/bin/python" ]; then
  python3 -m venv "$TOOLS/bench-venv"
fi
if ! "$TOOLS/bench-venv/bin/python" -c 'import grpc, envoy' >/dev/null 2>&1; then
  "$TOOLS/bench-venv/bin/pip" install --quiet --disable-pip-version-check \
    grpcio==1.85.1 xds-protos==1.85.0 >/dev/null || echo "warning: the Python peer could not be installed; its figures are skipped"
fi
if "$TOOLS/bench-venv/bin/python" -c 'import grpc' >/dev/null 2>&1; then
  export PYADS_PYTHON="$TOOLS/bench-venv/bin/python"
fi
if [ -z "${MESHBRIDGE_ENVOY:-}" ] && [ -x "$TOOLS/venv/bin/python" ]; then
  MESHBRIDGE_ENVOY="$("$TOOLS/venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))' 2>/dev/null || true)"
  export MESHBRIDGE_ENVOY
fi

PROFILE="${MESHBRIDGE_BENCH_PROFILE:-release}"
if [ "$PROFILE" = dev ]; then profile_dir=debug; else profile_dir="$PROFILE"; fi
cargo build --profile "$PROFILE" --quiet --bin meshbridge
export MESHBRIDGE_BIN="$PWD/target/$profile_dir/meshbridge"
: > "$OUT"
if want translate; then
  cargo bench --profile "$PROFILE" --quiet --bench translate 2>&1 | tee -a "$OUT"
fi
what=""
for w in build push mesh; do
  if want $w; then what="$what $w"; fi
done
if want edit; then
  if [ -n "${MESHBRIDGE_ENVOY:-}" ] && [ -x "$MESHBRIDGE_ENVOY" ]; then
    what="$what edit"
  else
    echo "edit: skipped (no Envoy: run scripts/test.sh once, or set MESHBRIDGE_ENVOY)" | tee -a "$OUT"
  fi
fi
for w in $what; do
  cargo bench --profile "$PROFILE" --quiet -p meshbridge-envoy --bench envoy_xds -- "$w" 2>&1 | tee -a "$OUT"
done

python3 - "$OUT" "$RESULTS" <<'PY'
import json, sys
raw = [json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("BENCH {")]
ours = [r for r in raw if r["impl"] == "meshbridge"]
peers = [r for r in raw if r["impl"] != "meshbridge"]
key = lambda r: (r["figure"], r["size"], r.get("backend"))
out = []
for r in ours:
    rec = {k: r[k] for k in ("figure", "size", "unit", "value")}
    if "backend" in r:
        rec["backend"] = r["backend"]
    same = [p for p in peers if key(p) == key(r)]
    if not same:
        out.append({**rec, "peer": None, "peer_value": None})
    for p in same:
        out.append({**rec, "peer": p["impl"], "peer_value": p["value"]})
json.dump(out, open(sys.argv[2], "w"), indent=1)
rows = [("figure", "size", "meshbridge", "peer", "ratio")]
for r in out:
    fig = r["figure"] + (f" ({r['backend']})" if "backend" in r else "")
    peer = "-" if r["peer"] is None else f"{r['peer']} {r['peer_value']:.4g} {r['unit']}"
    ratio = "-" if r["peer"] is None or not r["value"] else f"{r['peer_value'] / r['value']:.2f}x"
    rows.append((fig, str(r["size"]), f"{r['value']:.4g} {r['unit']}", peer, ratio))
w = [max(len(row[i]) for row in rows) for i in range(5)]
print()
for row in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)))
print(f"\n{len(out)} records in {sys.argv[2]} (ratio: peer / meshbridge; > 1 means meshbridge is faster or smaller)")
PY
