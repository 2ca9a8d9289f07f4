#!/bin/bash
# Stop the Forge Neo fixture started by run-neo.sh (process group from webui.pid) and wait for the port to be free.
H=${FIXTURE:-/root/neo-fixture}
PORT=${PORT:-7862}
PIDF=$H/webui.pid
if [ -f "$PIDF" ]; then
  pid=$(cat "$PIDF")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
  fi
  rm -f "$PIDF"
fi
for i in $(seq 1 60); do
  (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null || { echo "neo stopped; port $PORT free"; exit 0; }
  sleep 1
done
echo "port $PORT still in use" >&2; exit 1
