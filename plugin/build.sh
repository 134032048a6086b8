#!/usr/bin/env bash
# Builds the uploadable Mattermost plugin bundle:
#
#   bash plugin/build.sh [OUTDIR]      # OUTDIR defaults to dist/ at the repository root
#
# It writes OUTDIR/com.sealgate.capture-<version>.tar.gz, whose top folder is
# the plugin id and holds plugin.json and server/dist/plugin-linux-amd64
# (static, CGO off). Upload it in System Console > Plugins > Plugin
# Management, or with `mmctl plugin add`. Prints the bundle's path.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest=$root/plugin/plugin.json
out=${1:-$root/dist}

id=$(sed -n 's/^ *"id": *"\([^"]*\)".*/\1/p' "$manifest" | head -n1)
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$manifest" | head -n1)
if [[ "$id" != com.sealgate.capture || -z "$version" ]]; then
	echo "build.sh: cannot read id and version from $manifest" >&2
	exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$out/$id
rm -rf "$stage"
mkdir -p "$stage/server/dist"

(cd "$root" && GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' \
	-o "$stage/server/dist/plugin-linux-amd64" ./plugin/server)
cp "$manifest" "$stage/plugin.json"

bundle=$out/$id-$version.tar.gz
tar --owner=0 --group=0 --numeric-owner -czf "$bundle" -C "$out" "$id"
rm -rf "$stage"
echo "$bundle"
