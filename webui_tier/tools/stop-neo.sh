#!/bin/bash
# Stop the Forge Neo fixture started by run-neo.sh (kept under this name for the recipes that call it).
FORK=neo exec bash "$(dirname "$0")/stop-fork.sh"
