#!/bin/bash
# Start the offline CPU Forge Neo 2.6 fixture (commit 283cb2c4) on port 7862.
# Reconstructed from webui_tier/tools/neo_fixture.md ("What run-neo.sh runs") and shared/real-webui/run-webui.sh.
# env: EXT_DIR   folder holding an extension under test -> copied fresh to webui/extensions/<basename>
#      CKPT      checkpoint (default models/Stable-diffusion/neo-random-chroma.safetensors, relative to webui/ or
#                absolute); its file name goes into config.json as sd_model_checkpoint (Neo has no --ckpt);
#                a file outside models/Stable-diffusion adds its folder with --ckpt-dirs
#      MODULES   comma-separated forge_additional_modules written into config.json (file names, stored as full paths);
#                default: Chroma's T5 + AE when CKPT is the default; "none" writes []; unset otherwise keeps config.json's
#      PORT      default 7862
#      WAIT=1    block until /sdapi/v1/sd-models answers and (unless WARMUP=0) a tiny txt2img works (max 15 min)
#      WARMUP    default 1; WARMUP_TRIES  give up after this many failed warm-up txt2img requests (default 3)
#      EXTRA_ARGS extra command-line flags
#      NICE      niceness (default 10); THREADS  OMP/MKL threads (default 1)
set -u
source "$(dirname "$0")/fork-lib.sh"
NAME=neo
H=${FIXTURE:-/root/neo-fixture}
W=$H/webui
PORT=${PORT:-7862}
DEFAULT_CKPT=models/Stable-diffusion/neo-random-chroma.safetensors
CKPT=${CKPT:-$DEFAULT_CKPT}
WAIT=${WAIT:-0}
WARMUP=${WARMUP:-1}
NICE=${NICE:-10}
THREADS=${THREADS:-1}
LOG=$H/webui.log
PIDF=$H/webui.pid

fork_refuse_if_running

if [ -n "${EXT_DIR:-}" ]; then
  [ -d "$EXT_DIR" ] || { echo "EXT_DIR $EXT_DIR is not a directory" >&2; exit 2; }
  name=$(basename "$(realpath "$EXT_DIR")")
  rm -rf "$W/extensions/$name"
  cp -a "$(realpath "$EXT_DIR")" "$W/extensions/$name"
  echo "installed extension $name"
fi

case "$CKPT" in /*) ckpt_path=$CKPT ;; *) ckpt_path=$W/$CKPT ;; esac
[ -f "$ckpt_path" ] || { echo "checkpoint $ckpt_path not found" >&2; exit 2; }
ckpt_args=()
ckpt_dir=$(dirname "$(realpath "$ckpt_path")")
[ "$ckpt_dir" = "$(realpath "$W/models/Stable-diffusion")" ] || ckpt_args=(--ckpt-dirs "$ckpt_dir")
if [ -z "${MODULES+x}" ] && [ "$CKPT" = "$DEFAULT_CKPT" ]; then
  MODULES=neo-random-t5xxl.safetensors,neo-random-ae-f8c16.safetensors
fi
"$H/venv/bin/python" - "$W/config.json" "$(basename "$ckpt_path")" "${MODULES-__keep__}" <<'PY' || exit 2
import json, os, sys
path, ckpt, modules = sys.argv[1:4]
cfg = json.load(open(path)) if os.path.exists(path) else {}
cfg.setdefault("show_progress_type", "RGB")
cfg["sd_model_checkpoint"] = ckpt
if modules != "__keep__":
    # Neo stores full paths here (modules_forge/main_entry.modules_change); resolve file names in models/VAE, models/text_encoder
    webui = os.path.dirname(os.path.abspath(path))
    full = []
    for m in ([] if modules in ("", "none") else modules.split(",")):
        hits = [os.path.join(webui, "models", d, m) for d in ("text_encoder", "VAE")]
        hits = [h for h in hits if os.path.isfile(h)] or ([m] if os.path.isabs(m) and os.path.isfile(m) else [])
        if not hits:
            sys.exit(f"module {m} not found in models/text_encoder or models/VAE")
        full.append(hits[0])
    cfg["forge_additional_modules"] = full
json.dump(cfg, open(path, "w"), indent=4)
print(f"config.json: sd_model_checkpoint={ckpt!r} forge_additional_modules={cfg.get('forge_additional_modules')}")
PY

fork_offline_env

cd "$W"
start=$(date +%s)
setsid nohup nice -n "$NICE" "$H/venv/bin/python" launch.py --api --skip-prepare-environment --skip-install \
  --skip-python-version-check --skip-torch-cuda-test --skip-version-check --always-cpu --disable-bnb \
  --enable-insecure-extension-access --port "$PORT" "${ckpt_args[@]}" ${EXTRA_ARGS:-} \
  > "$LOG" 2>&1 < /dev/null &
echo $! > "$PIDF"
echo "neo pid $(cat $PIDF), log $LOG, port $PORT"

fork_wait "$start"
