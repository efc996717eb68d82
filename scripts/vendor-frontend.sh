#!/usr/bin/env bash
# Refresh the vendored front-end files from the npm registry: WeUI and @wecom/jssdk for the sidebar,
# Chart.js for the console.
#
#   scripts/vendor-frontend.sh [WEUI_VERSION] [JSSDK_VERSION] [CHARTJS_VERSION]
#
# Nothing here runs at build or start time: the built files are committed under
# sidebar/static/vendor/ so the server needs no front-end toolchain. Run this by hand to move
# to a new version, check the sidebar in a browser, update sidebar/static/vendor/README.md and commit.
set -euo pipefail

WEUI_VERSION="${1:-2.6.26}"
JSSDK_VERSION="${2:-2.4.4}"
CHARTJS_VERSION="${3:-4.6.1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/sidebar/static/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

cd "$TMP"
npm pack --silent "weui@${WEUI_VERSION}" "@wecom/jssdk@${JSSDK_VERSION}" "chart.js@${CHARTJS_VERSION}" >/dev/null
mkdir weui jssdk chartjs
tar xzf "weui-${WEUI_VERSION}.tgz" -C weui
tar xzf "wecom-jssdk-${JSSDK_VERSION}.tgz" -C jssdk
tar xzf "chart.js-${CHARTJS_VERSION}.tgz" -C chartjs

mkdir -p "$DEST/weui" "$DEST/wecom-jssdk"
cp weui/package/dist/style/weui.min.css "$DEST/weui/weui.min.css"
cp weui/package/LICENSE.txt "$DEST/weui/LICENSE.txt"
# The global build defines `window.ww`; the page loads it with a plain <script> (no bundler).
cp jssdk/package/dist/wecom.global.prod.js "$DEST/wecom-jssdk/wecom.global.prod.js"
node -e 'const p=require("./jssdk/package/package.json"); console.log(`${p.name} ${p.version} licence ${p.license}`)' \
  > "$DEST/wecom-jssdk/VERSION"
node -e 'const p=require("./weui/package/package.json"); console.log(`${p.name} ${p.version} licence ${p.license}`)' \
  > "$DEST/weui/VERSION"
CHARTS="$ROOT/console/static/vendor/chartjs"
mkdir -p "$CHARTS"
cp chartjs/package/dist/chart.umd.min.js chartjs/package/LICENSE.md "$CHARTS/"
node -e 'const p=require("./chartjs/package/package.json"); console.log(`${p.name} ${p.version} licence ${p.license}`)' \
  > "$CHARTS/VERSION"
echo "vendored weui@${WEUI_VERSION} and @wecom/jssdk@${JSSDK_VERSION} into $DEST, chart.js@${CHARTJS_VERSION} into $CHARTS"
echo "now update the versions in $DEST/README.md"
