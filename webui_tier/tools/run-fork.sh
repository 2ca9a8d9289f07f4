#!/bin/bash
# Start an offline CPU fixture of Forge Classic, Forge `main` or reForge (Forge Neo: run-neo.sh), with the checkpoint
# selected at start. Recipes: classic_fixture.md (port 7864), forge_fixture.md (7865), reforge_fixture.md (7863).
# env: FORK      classic | forge | reforge (required)
#      FIXTURE   default /root/<fork>-fixture (webui/, venv/)
#      CKPT      checkpoint (default models/Stable-diffusion/random-sdxl.safetensors, relative to webui/ or absolute):
#                its file name into config.json as sd_model_checkpoint, its path to --ckpt
#      PORT, PREVIEW (live preview method), NICE (10), THREADS (OMP/MKL), EXTRA_ARGS (more flags)
#      WAIT=1    block until the API answers and (unless WARMUP=0) a tiny txt2img works (max 15 min; WARMUP_TRIES 3)
set -u
source "$(dirname "$0")/fork-lib.sh"
NAME=${FORK:-}
[ "$NAME" != neo ] || { echo "Forge Neo: use run-neo.sh (its text encoders and VAE)" >&2; exit 2; }
fork_defaults "$NAME"
H=${FIXTURE:-$FIX}
W=$H/webui
PORT=${PORT:-$DEF_PORT}
PREVIEW=${PREVIEW:-$DEF_PREVIEW}
THREADS=${THREADS:-$DEF_THREADS}
CKPT=${CKPT:-models/Stable-diffusion/random-sdxl.safetensors}
LOG=$H/webui.log
PIDF=$H/webui.pid
fork_refuse_if_running
case "$CKPT" in /*) ckpt_path=$CKPT ;; *) ckpt_path=$W/$CKPT ;; esac
[ -f "$ckpt_path" ] || { echo "checkpoint $ckpt_path not found" >&2; exit 2; }
"$H/venv/bin/python" - "$W/config.json" "$(basename "$ckpt_path")" "$PREVIEW" <<'PY' || exit 2
import json, os, sys
path, ckpt, preview = sys.argv[1:4]
config = json.load(open(path)) if os.path.exists(path) else {}
config.update(show_progress_type=preview, sd_model_checkpoint=ckpt)
json.dump(config, open(path, "w"), indent=4)
print(f"config.json: sd_model_checkpoint={ckpt!r} show_progress_type={preview!r}")
PY
fork_offline_env
cd "$W" || exit 2
started=$(date +%s)
setsid nohup nice -n "${NICE:-10}" "$H/venv/bin/python" launch.py --api --skip-prepare-environment --skip-install \
  --skip-python-version-check --skip-torch-cuda-test --skip-version-check --no-download-sd-model --always-cpu \
  --enable-insecure-extension-access --port "$PORT" --ckpt "$ckpt_path" ${EXTRA_ARGS:-} \
  > "$LOG" 2>&1 < /dev/null &
echo $! > "$PIDF"
echo "$NAME pid $(cat "$PIDF"), log $LOG, port $PORT"
fork_wait "$started"
