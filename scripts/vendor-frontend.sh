#!/usr/bin/env bash
# Refresh the vendored front-end files from the npm registry: WeUI and @wecom/jssdk for the sidebar,
# Chart.js for the console, Swagger UI for the API reference at /api/v1/docs.
#
#   scripts/vendor-frontend.sh [WEUI_VERSION] [JSSDK_VERSION] [CHARTJS_VERSION] [SWAGGER_UI_VERSION]
#
# Nothing here runs at build or start time: the built files are committed under
# sidebar/static/vendor/ so the server needs no front-end toolchain. Run this by hand to move
# to a new version, check the sidebar in a browser, update sidebar/static/vendor/README.md and commit.
set -euo pipefail

WEUI_VERSION="${1:-2.6.26}"
JSSDK_VERSION="${2:-2.4.4}"
CHARTJS_VERSION="${3:-4.6.1}"
SWAGGER_UI_VERSION="${4:-5.35.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/sidebar/static/vendor"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

cd "$TMP"
npm pack --silent "weui@${WEUI_VERSION}" "@wecom/jssdk@${JSSDK_VERSION}" "chart.js@${CHARTJS_VERSION}" \
  "swagger-ui-dist@${SWAGGER_UI_VERSION}" >/dev/null
mkdir weui jssdk chartjs swagger
tar xzf "weui-${WEUI_VERSION}.tgz" -C weui
tar xzf "wecom-jssdk-${JSSDK_VERSION}.tgz" -C jssdk
tar xzf "chart.js-${CHARTJS_VERSION}.tgz" -C chartjs
tar xzf "swagger-ui-dist-${SWAGGER_UI_VERSION}.tgz" -C swagger

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
SWAGGER="$ROOT/core/static/vendor/swagger-ui"
mkdir -p "$SWAGGER"
cp swagger/package/{swagger-ui-bundle.js,swagger-ui-bundle.js.LICENSE.txt,swagger-ui.css,LICENSE,NOTICE} "$SWAGGER/"
echo "swagger-ui-dist ${SWAGGER_UI_VERSION} (npm), Apache-2.0; refreshed by scripts/vendor-frontend.sh" > "$SWAGGER/VERSION"
echo "vendored swagger-ui-dist@${SWAGGER_UI_VERSION} into $SWAGGER"
echo "vendored weui@${WEUI_VERSION} and @wecom/jssdk@${JSSDK_VERSION} into $DEST, chart.js@${CHARTJS_VERSION} into $CHARTS"
echo "now update the versions in $DEST/README.md"
