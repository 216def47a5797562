#!/usr/bin/env bash
# Set up a development environment from scratch (idempotent, fast when already done):
# a virtualenv in .venv with edgepack and every extra installed from pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: mmdebstrap builds base rootfs images and the aarch64 Python
# root that arm64 artifacts run in under qemu; skopeo and umoci validate OCI layouts; podman
# and runc run the images; promtool (prometheus) lints /metrics; mosquitto is the MQTT broker the
# device telemetry tests start and stop (mosquitto-clients subscribes to it); unzip -t checks the zips.
DEBIAN_PACKAGES=(mmdebstrap skopeo umoci podman runc prometheus mosquitto mosquitto-clients unzip)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "note: missing Debian packages (${missing[*]}): the tests that need them are skipped" >&2
  fi
fi

PYTHON=${PYTHON:-python3.11}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# uv resolves and installs the ~2.5 GB set in seconds where pip takes about a minute.
if [[ ! -x .venv/bin/uv ]]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[dev]'

# KServe, in a venv of its own (it pins protobuf below what TensorFlow takes): its SDK's models
# load the rendered Kubernetes manifests in the tests, its ModelServer is benchmarks/server.py's peer.
if [[ ! -x .venv-kserve/bin/python ]]; then
  "$PYTHON" -m venv .venv-kserve
fi
.venv/bin/uv pip install --quiet --python .venv-kserve/bin/python "kserve==0.21.0" "onnxruntime==1.32.0" "numpy>=2.0,<2.5" pyyaml

# The open-source Serverless Framework CLI (osls), pinned in package.json and package-lock.json:
# the tests package and deploy serverless.yml with it (npx osls ...). npm ci reinstalls from the
# lock file; skipped while node_modules is newer than the lock file (npm writes
# node_modules/.package-lock.json last).
if command -v npm >/dev/null; then
  if [[ ! -x node_modules/.bin/osls || ! node_modules/.package-lock.json -nt package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
else
  echo "note: npm not found: the Serverless CLI (osls) tests are skipped" >&2
fi

# Local Lambda invoke runs artifacts under the Python version Lambda would use.
for v in 3.12; do
  command -v "python$v" >/dev/null || echo "note: python$v not on PATH: local invoke of python$v artifacts is unavailable" >&2
done
