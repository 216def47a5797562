#!/usr/bin/env bash
# The main job on the bundled sample: build every default target of samples/digits,
# verify every artifact, and invoke each Lambda artifact locally with the sample events
# (the arm64 one under qemu user-mode emulation with Debian's aarch64 CPython 3.13); then the
# container image (built, verified, served) and a device (bundle published, installed by the agent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EP=.venv/bin/edgepack
SAMPLE=samples/digits
KEY=$SAMPLE/keys/dev

[[ -f $KEY.key ]] || $EP keys generate --out "$KEY"
$EP build "$SAMPLE" --out dist
shopt -s nullglob
for artifact in dist/digits-*.zip dist/digits-*.tar.gz; do
  $EP verify "$artifact" --key "$KEY.pub" --name digits --min-version 1.0.0
done
for arch in x86_64 arm64; do
  $EP invoke "dist/digits-1.0.0-lambda-$arch.zip" --key "$KEY.pub" \
    --event $SAMPLE/events/direct.json \
    --event $SAMPLE/events/oip.json \
    --event $SAMPLE/events/apigw-v2.json
done

# The container target: an OCI image on a Debian base built offline (no daemon, no registry),
# verified down to every blob, then served locally by the server the image runs.
$EP base-image --out dist/base-image
$EP build "$SAMPLE" --target container-cpu --out dist --base-image dist/base-image
$EP verify dist/digits-1.0.0-container-cpu --key "$KEY.pub"
skopeo inspect --raw oci:dist/digits-1.0.0-container-cpu/oci:1.0.0 >/dev/null
PORT=${EDGEPACK_DEMO_PORT:-18080}
$EP serve dist/digits-1.0.0-container-cpu.tar.gz --key "$KEY.pub" --port "$PORT" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
.venv/bin/python - "$PORT" "$SAMPLE/events/oip.json" <<'PY'
import json, sys, time, urllib.request

port, request = sys.argv[1], open(sys.argv[2], "rb").read()
base = f"http://127.0.0.1:{port}"
for _ in range(300):
    try:
        urllib.request.urlopen(f"{base}/v2/health/ready", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
reply = urllib.request.urlopen(urllib.request.Request(f"{base}/v2/models/digits/infer", data=request), timeout=10)
print(json.dumps(json.load(reply))[:300])
PY
kill -TERM $server
wait $server
trap - EXIT

# A device: the x86_64 OpenVINO bundle published to a channel directory, then installed by the
# device agent into a fresh root (verified, health-checked under the bundle's python3.12, switched).
$EP build "$SAMPLE" --target intel-openvino --out dist
$EP publish dist/digits-1.0.0-intel-openvino.bundle.tar.gz --channel dist/channel --key "$KEY.key"
rm -rf dist/device
# The bundle's Python (3.12) as local invoke finds it: the interpreter itself, not a version
# manager's shim, since the health check runs with a minimal environment.
PY312=$(.venv/bin/python -c "from edgepack.invoke.lambda_base import find_python; print(find_python('python3.12', 'x86_64').path)")
$EP device agent --channel dist/channel --root dist/device --trust "$KEY.pub" --once --python "$PY312"
$EP device status --root dist/device
