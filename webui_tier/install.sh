#!/usr/bin/env bash
# Install this working tree's extension and the trace extension into a WebUI folder (for the real-WebUI tier).
#   bash webui_tier/install.sh WEBUI_DIR
# -> WEBUI_DIR/extensions/negative-prompt-delay (tracked and untracked, not ignored, files: no .venv)
#    WEBUI_DIR/extensions/zz-npd-trace          (webui_tier/trace_extension; its name sorts after the extension)
# Restart the WebUI afterwards.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
webui="${1:?usage: bash webui_tier/install.sh WEBUI_DIR}"
[ -d "$webui/extensions" ] || { echo "$webui/extensions not found" >&2; exit 2; }
ext="$webui/extensions/negative-prompt-delay"
trace="$webui/extensions/zz-npd-trace"
rm -rf "$ext" "$trace"
mkdir -p "$ext"
(cd "$root" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -x -C "$ext"
cp -r "$root/webui_tier/trace_extension" "$trace"
echo "installed $ext and $trace"
