#!/usr/bin/env bash
# Home Assistant's own Wyoming integration classes, for tests/bridges/test_home_assistant.py: a
# venv of its own (.venv-ha), since HA pins its dependencies (wyoming 1.5.3, aiohttp 3.9, ...) and
# the project's venv must not take them. HA 2024.3.3 is the last release that installs on
# Python 3.11 (later ones need 3.12/3.13); installed --no-deps with the pins of
# scripts/ha-requirements.txt, because a plain install backtracks for a long time.
# Idempotent: a stamp records what was installed. Usage: scripts/ha-venv.sh [PYTHON] [VENV]
set -euo pipefail

PYTHON=${1:-python3}
VENV=${2:-.venv-ha}
HERE=$(cd "$(dirname "$0")" && pwd)
REQS="$HERE/ha-requirements.txt"
STAMP="$VENV/.ha-installed"

if [ -f "$STAMP" ] && cmp -s "$STAMP" "$REQS"; then
  exit 0
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "ha-venv: Home Assistant 2024.3.3 needs Python 3.11 ($PYTHON is not); its tests will skip" >&2
  exit 0
}
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q --no-deps "homeassistant==2024.3.3"
"$VENV/bin/python" -m pip install -q -r "$REQS"
"$VENV/bin/python" -c "import homeassistant.components.wyoming.stt, homeassistant.components.wyoming.tts, homeassistant.components.wyoming.wake_word"
cp "$REQS" "$STAMP"
