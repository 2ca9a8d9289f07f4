#!/bin/bash
# Stop a fork fixture started by run-fork.sh or run-neo.sh (its process group) and wait for its port to be free.
# env: FORK  neo | reforge | classic | forge (required); FIXTURE, PORT as given to the start script
source "$(dirname "$0")/fork-lib.sh"
NAME=${FORK:-}
fork_defaults "$NAME"
H=${FIXTURE:-$FIX}
PORT=${PORT:-$DEF_PORT}
PIDF=$H/webui.pid
fork_stop
