#!/usr/bin/env bash
# The main job on the bundled sample: build every default target of samples/digits,
# verify every artifact, and invoke each Lambda artifact locally with the sample events
# (the arm64 one under qemu user-mode emulation with Debian's aarch64 CPython 3.13).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EP=.venv/bin/edgepack
SAMPLE=samples/digits
KEY=$SAMPLE/keys/dev

[[ -f $KEY.key ]] || $EP keys generate --out "$KEY"
$EP build "$SAMPLE" --out dist
for artifact in dist/digits-*; do
  $EP verify "$artifact" --key "$KEY.pub"
done
for arch in x86_64 arm64; do
  $EP invoke "dist/digits-1.0.0-lambda-$arch.zip" \
    --event $SAMPLE/events/direct.json \
    --event $SAMPLE/events/oip.json \
    --event $SAMPLE/events/apigw-v2.json
done
