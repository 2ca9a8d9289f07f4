#!/bin/bash
# Shared by run-fork.sh, run-neo.sh and stop-fork.sh (sourced, not run): offline environment, start-up wait and
# warm-up, and stop of a CPU fork fixture. Callers set H (fixture folder), NAME, PORT, LOG, PIDF.

fork_refuse_if_running() {
  if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
    echo "$NAME already running (pid $(cat "$PIDF")); stop it first (FORK=$NAME bash stop-fork.sh)" >&2; exit 2
  fi
  if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then echo "port $PORT already in use" >&2; exit 2; fi
}

fork_offline_env() {  # no downloads, no telemetry; THREADS OpenMP/MKL threads
  export HF_HOME=$H/hf HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DIFFUSERS_OFFLINE=1
  export GRADIO_ANALYTICS_ENABLED=False DO_NOT_TRACK=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
  export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=${TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD:-1}
  export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
}

fork_wait() {  # $1: start time. With WAIT=1: the API answers from our pid, then (WARMUP=1) a tiny txt2img works
  local start=$1 deadline=$(($1 + 900)) up=0 tries=0 code resp t0
  [ "${WAIT:-0}" = 1 ] || exit 0
  while [ "$(date +%s)" -lt $deadline ]; do
    kill -0 "$(cat "$PIDF")" 2>/dev/null || { echo "$NAME exited during startup:" >&2; tail -30 "$LOG" >&2; exit 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$PORT/sdapi/v1/sd-models" || true)
    if [ "$code" = 200 ]; then
      if ss -ltnp "sport = :$PORT" 2>/dev/null | grep -q "pid=$(cat "$PIDF"),"; then up=1; break; fi
      echo "port $PORT answers but is not served by pid $(cat "$PIDF"); stopping ours:" >&2
      ss -ltnp "sport = :$PORT" >&2; kill -TERM -- "-$(cat "$PIDF")" 2>/dev/null; rm -f "$PIDF"; exit 1
    fi
    sleep 3
  done
  [ $up = 1 ] || { echo "timeout waiting for the API" >&2; exit 1; }
  echo "API up after $(( $(date +%s) - start ))s"
  [ "${WARMUP:-1}" = 1 ] || exit 0
  while [ "$(date +%s)" -lt $deadline ] && [ $tries -lt "${WARMUP_TRIES:-3}" ]; do
    tries=$((tries + 1)); t0=$(date +%s)
    resp=$(curl -s --max-time 600 -H 'Content-Type: application/json' \
      -d '{"prompt":"warmup","steps":1,"width":64,"height":64,"sampler_name":"Euler","seed":1}' \
      "http://127.0.0.1:$PORT/sdapi/v1/txt2img" || true)
    if echo "$resp" | grep -q '"images": *\["'; then
      echo "first txt2img took $(( $(date +%s) - t0 ))s; ready after $(( $(date +%s) - start ))s"; exit 0
    fi
    kill -0 "$(cat "$PIDF")" 2>/dev/null || { echo "$NAME died:" >&2; tail -30 "$LOG" >&2; exit 1; }
    echo "txt2img not ready yet: $(echo "$resp" | head -c 300)" >&2
    sleep 5
  done
  echo "no working txt2img after $tries tries (server left running; see $LOG)" >&2; exit 1
}

fork_stop() {  # the process group from webui.pid, then wait for the port to be free
  local pid
  if [ -f "$PIDF" ]; then
    pid=$(cat "$PIDF")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
    fi
    rm -f "$PIDF"
  fi
  for _ in $(seq 1 60); do
    (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null || { echo "$NAME stopped; port $PORT free"; return 0; }
    sleep 1
  done
  echo "port $PORT still in use" >&2; return 1
}

fork_defaults() {  # FORK -> fixture folder, port, live preview method that needs no download, threads
  case "$1" in
    neo) FIX=/root/neo-fixture; DEF_PORT=7862 ;;
    reforge) FIX=/root/reforge-fixture; DEF_PORT=7863; DEF_PREVIEW="Approx cheap"; DEF_THREADS=2 ;;
    classic) FIX=/root/classic-fixture; DEF_PORT=7864; DEF_PREVIEW=RGB; DEF_THREADS=1 ;;  # Classic: NN, TAESD, RGB
    forge) FIX=/root/forge-fixture; DEF_PORT=7865; DEF_PREVIEW="Approx cheap"; DEF_THREADS=1 ;;
    *) echo "FORK must be neo, reforge, classic or forge (got '$1')" >&2; exit 2 ;;
  esac
}
