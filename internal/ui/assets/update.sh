#!/bin/sh
# Re-downloads the vendored front-end libraries at the versions pinned
# below from their release addresses and rewrites SHA256SUMS, which
# TestVendoredChecksums checks against the embedded files. To move to a
# new version: change it here, run this script, read the diff, run the
# browser tests (go test ./internal/ui/ with chromium installed).
set -eu
cd "$(dirname "$0")"

HTMX_VERSION=v2.0.10
# htmx-ext-sse 2.2.3 (the extensions repository has no tags: pinned by commit)
HTMX_SSE_COMMIT=c328002fd124c7a6745cf8a302f163d1e291cc3f
UPLOT_VERSION=1.6.32

get() { # URL FILE
	tmp="$2.tmp"
	curl -fsSL --retry 3 -o "$tmp" "$1"
	mv "$tmp" "$2"
}

get "https://raw.githubusercontent.com/bigskysoftware/htmx/$HTMX_VERSION/dist/htmx.min.js" htmx.min.js
get "https://raw.githubusercontent.com/bigskysoftware/htmx-extensions/$HTMX_SSE_COMMIT/src/sse/sse.js" htmx-sse.js
get "https://raw.githubusercontent.com/leeoniya/uPlot/$UPLOT_VERSION/dist/uPlot.iife.min.js" uPlot.iife.min.js
get "https://raw.githubusercontent.com/leeoniya/uPlot/$UPLOT_VERSION/dist/uPlot.min.css" uPlot.min.css

{
	echo "# vendored libraries: htmx $HTMX_VERSION, htmx-ext-sse @$HTMX_SSE_COMMIT, uPlot $UPLOT_VERSION (written by update.sh)"
	sha256sum htmx.min.js htmx-sse.js uPlot.iife.min.js uPlot.min.css
} > SHA256SUMS.tmp
mv SHA256SUMS.tmp SHA256SUMS
cat SHA256SUMS
