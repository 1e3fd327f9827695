#!/usr/bin/env bash
# Makes sure a Docker engine answers: starts dockerd in the background (as root)
# when `docker info` fails, clearing a stale pid file a killed dockerd leaves.
set -euo pipefail
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin  # dockerd lives in /usr/sbin
docker info >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v dockerd >/dev/null; then
    echo "no Docker engine answers, and this script can start one only as root with dockerd installed" >&2
    exit 1
fi
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
fi
log=${MUX_DOCKERD_LOG:-/var/log/mux-dockerd.log}
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { echo "dockerd started (log: $log)"; exit 0; }
    sleep 1
done
echo "dockerd did not answer within 60 s; its log says:" >&2
tail -20 "$log" >&2
exit 1
