#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, check the code (ruff, mypy), then run the tests.
# Usage: bash scripts/test.sh [--fast] [pytest args...]
#   --fast: only the tests that need no TensorFlow, Ray, browser or other process (tests/lanes.py);
#           a test that imports TensorFlow there fails.
set -euo pipefail
cd "$(dirname "$0")/.."

pip_install() { python -m pip install --quiet --disable-pip-version-check "$@"; }
pip_install -r requirements.txt -r requirements-test.txt -r requirements-ray.txt  # Ray: the tests run a local one
pip_install --no-deps -e .  # the project itself (tlcore, dashboard) and the `tllab` command

# The browser tests drive Debian's chromium with Playwright (Playwright's own
# browser download cannot work offline).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
  $apt_get update -qq
  DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The project's own checks (settings in pyproject.toml), before the tests.
python -m ruff check .
python -m ruff format --check .
python -m mypy

if [ "${1:-}" = "--fast" ]; then
  shift
  export TLLAB_FAST_LANE=1
  exec python -m pytest -m "not tensorflow and not ray and not browser and not subprocess" "$@"
fi
exec python -m pytest "$@"
