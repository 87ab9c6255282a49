#!/usr/bin/env bash
# Installs pinned Streamlit, Plotly Dash and HoloViz Panel from PyPI into a virtualenv of their own
# (never the service's), cached between runs and keyed by the three versions:
#   ${SCREENSHOT_APPS_CACHE:-~/.cache/screenshot-service/apps}/apps-<key>/bin/python
# With --print-python, prints that interpreter; with --cached, only that, failing when nothing is
# cached. Only PyPI is used.
set -euo pipefail

STREAMLIT_VERSION="${STREAMLIT_VERSION:-1.67.0}"
DASH_VERSION="${DASH_VERSION:-4.4.1}"
PANEL_VERSION="${PANEL_VERSION:-1.9.4}"
CACHE_ROOT="${SCREENSHOT_APPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/screenshot-service/apps}"
DIR="$CACHE_ROOT/streamlit-$STREAMLIT_VERSION-dash-$DASH_VERSION-panel-$PANEL_VERSION"
PYTHON="${APPS_PYTHON:-python3}"

print_python() { case "${1:-}" in --print-python | --cached) echo "$DIR/bin/python" ;; esac; }

if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -c 'import streamlit, dash, panel' 2>/dev/null; then
  print_python "${1:-}"
  exit 0
fi
if [ "${1:-}" = --cached ]; then
  echo "install-apps: the dashboard apps are not installed in $CACHE_ROOT: run $0" >&2
  exit 1
fi

mkdir -p "$CACHE_ROOT"
WORK="$(mktemp -d "$CACHE_ROOT/.install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
echo "install-apps: streamlit $STREAMLIT_VERSION, dash $DASH_VERSION, panel $PANEL_VERSION into $DIR (once)" >&2
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "streamlit==$STREAMLIT_VERSION" "dash==$DASH_VERSION" "panel==$PANEL_VERSION" >&2
"$WORK/venv/bin/python" -c 'import streamlit, dash, panel'
# Whole or not at all: a run that stopped half-way leaves no cache entry behind. The tests start
# the apps with `python -m`, so the venv's scripts' shebangs (which name the work folder) are unused.
mv "$WORK/venv" "$DIR" 2>/dev/null || [ -x "$DIR/bin/python" ]
trap - EXIT
rm -rf "$WORK"
print_python "${1:-}"
