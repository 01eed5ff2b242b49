#!/usr/bin/env bash
# make demo: a real multi-app pod on stage1-ns — redis-server and a busybox
# client sharing the pod's network — then its status and logs. Uses its own
# data and config dirs (DEMO_DIR) so the host's /var/lib/skiff and
# /etc/skiff are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-/var/tmp/skiff-demo}
skiff() { bin/skiff --dir="$DEMO_DIR/data" --local-config="$DEMO_DIR/config" "$@"; }
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say skiff trust --prefix skiff.local bin/images/test-key.asc
skiff trust --prefix skiff.local bin/images/test-key.asc

client='for i in $(seq 50); do echo PING | nc 127.0.0.1 6379 2>/dev/null | grep -q PONG && break; sleep 0.1; done
printf "SET greeting \"hello from a skiff pod\"\r\nGET greeting\r\nQUIT\r\n" | nc 127.0.0.1 6379'
uuidfile=$(mktemp)
console=$(mktemp)
say skiff run --net=none bin/images/redis.aci --- bin/images/busybox.aci --name=client --exec=/bin/sh -- -c "'<redis client script>'" '>console &'
skiff run --net=none --uuid-file-save="$uuidfile" \
    bin/images/redis.aci --- \
    bin/images/busybox.aci --name=client --exec=/bin/sh -- -c "$client" >"$console" 2>&1 &
run_pid=$!
trap 'kill $run_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$uuidfile" ] && break; sleep 0.1; done
uuid=$(cat "$uuidfile"); rm -f "$uuidfile"
skiff status --wait-ready=60s "$uuid" >/dev/null
for _ in $(seq 100); do skiff status "$uuid" | grep -q '^app-client=' && break; sleep 0.1; done

say skiff list
skiff list
say skiff status "$uuid"
skiff status "$uuid"
say skiff logs "$uuid"
skiff logs "$uuid"
say skiff stop "$uuid"
skiff stop "$uuid"
wait $run_pid || true
trap - EXIT
say skiff status "$uuid"
skiff status "$uuid"
say cat console '   # what skiff run printed: the apps output, as on a terminal'
cat "$console"; rm -f "$console"
say skiff rm "$uuid"
skiff rm "$uuid"
