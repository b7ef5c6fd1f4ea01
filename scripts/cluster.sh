#!/usr/bin/env bash
# Local multi-process QuorumDB cluster: one `quorumdb etcd` member plus N node
# processes, each with its own data directory and ports.
#
#   scripts/cluster.sh start [N]   start etcd and N nodes (default 3)
#   scripts/cluster.sh stop        stop everything (SIGTERM, then SIGKILL)
#   scripts/cluster.sh kill I      SIGKILL node I
#   scripts/cluster.sh pause I     SIGSTOP node I
#   scripts/cluster.sh resume I    SIGCONT node I
#   scripts/cluster.sh restart I   restart node I on the same data directory
#   scripts/cluster.sh status      which processes run, and the cluster's nodes
#   scripts/cluster.sh logs I      follow node I's log ("etcd" for etcd)
#
# Node I serves SQL on 127.0.0.1:(3999+I) (node 1 on 4000), Raft/KV RPC on
# 127.0.0.1:(4999+I) and HTTP (health, metrics, admin page) on 127.0.0.1:(8079+I).
# Environment: QDB_DIR (state directory, default ./.cluster), QDB_BIN (binary,
# default bin/quorumdb), QDB_ETCD_PORT (default 2379), QDB_SQL_PORT,
# QDB_RPC_PORT, QDB_HTTP_PORT (node 1's ports, defaults 4000, 5000, 8080),
# QDB_NODE_FLAGS (extra flags for every node, e.g. "--dead-node-grace 5s").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${QDB_DIR:-$root/.cluster}
bin=${QDB_BIN:-$root/bin/quorumdb}
etcd_port=${QDB_ETCD_PORT:-2379}
etcd_peer_port=$((etcd_port + 1))
etcd_url="http://127.0.0.1:$etcd_port"
sql_port=${QDB_SQL_PORT:-4000}
rpc_port=${QDB_RPC_PORT:-5000}
http_port=${QDB_HTTP_PORT:-8080}

die() { echo "cluster.sh: $*" >&2; exit 1; }

pidfile() { echo "$dir/$1.pid"; }

running() {
  local f; f=$(pidfile "$1")
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

node_args() {
  local i=$1
  echo --node-name "n$i" --data-dir "$dir/n$i" \
    --sql-addr "127.0.0.1:$((sql_port + i - 1))" --rpc-addr "127.0.0.1:$((rpc_port + i - 1))" \
    --http-addr "127.0.0.1:$((http_port + i - 1))" --etcd "$etcd_url" ${QDB_NODE_FLAGS:-}
}

wait_port() { # host:port, seconds
  local hp=$1 secs=$2 t=0
  while ! (exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null; do
    t=$((t + 1)); [ $t -le $((secs * 10)) ] || return 1; sleep 0.1
  done
}

start_etcd() {
  running etcd && return 0
  mkdir -p "$dir/etcd"
  "$bin" etcd --name etcd1 --data-dir "$dir/etcd" \
    --client-url "$etcd_url" --peer-url "http://127.0.0.1:$etcd_peer_port" \
    >>"$dir/etcd.log" 2>&1 &
  echo $! >"$(pidfile etcd)"
  wait_port "127.0.0.1:$etcd_port" 30 || die "etcd did not start; see $dir/etcd.log"
  echo "etcd       $etcd_url (pid $(cat "$(pidfile etcd)"))"
}

start_node() {
  local i=$1
  running "n$i" && { echo "node $i already running"; return 0; }
  mkdir -p "$dir/n$i"
  local log="$dir/n$i.log" before=0 t=0
  [ -f "$log" ] && before=$(wc -l <"$log")
  # shellcheck disable=SC2046
  "$bin" start $(node_args "$i") >>"$log" 2>&1 &
  echo $! >"$(pidfile "n$i")"
  # The node prints "… ready: …" once it serves SQL; a node that exits
  # (port in use, locked data directory) fails at once with its log.
  until tail -n +$((before + 1)) "$log" | grep -q ' ready: '; do
    if ! running "n$i"; then tail -n 5 "$log" >&2; die "node $i exited; see $log"; fi
    t=$((t + 1)); [ $t -le 600 ] || die "node $i not ready after 60 s; see $log"
    sleep 0.1
  done
  echo "node $i     mysql -h 127.0.0.1 -P $((sql_port + i - 1)) -u root   http://127.0.0.1:$((http_port + i - 1)) (pid $(cat "$(pidfile "n$i")"))"
}

signal_node() {
  local sig=$1 i=$2
  running "n$i" || die "node $i is not running"
  kill "-$sig" "$(cat "$(pidfile "n$i")")"
}

cmd=${1:-}
case "$cmd" in
  start)
    n=${2:-3}
    [ -x "$bin" ] || die "no binary at $bin (run make build)"
    mkdir -p "$dir"
    start_etcd
    for i in $(seq 1 "$n"); do start_node "$i"; done
    echo "$n" >"$dir/size"
    ;;
  stop)
    for f in "$dir"/n*.pid "$dir"/etcd.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      kill -CONT "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$dir"/n*.pid "$dir"/etcd.pid; do
      [ -f "$f" ] || continue
      pid=$(cat "$f")
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$f"
    done
    echo "stopped"
    ;;
  kill) signal_node KILL "${2:?node number}"; rm -f "$(pidfile "n$2")"; echo "node $2 killed" ;;
  pause) signal_node STOP "${2:?node number}"; echo "node $2 paused" ;;
  resume) signal_node CONT "${2:?node number}"; echo "node $2 resumed" ;;
  restart)
    i=${2:?node number}
    if running "n$i"; then
      kill -TERM "$(cat "$(pidfile "n$i")")"
      for _ in $(seq 1 100); do running "n$i" || break; sleep 0.1; done
    fi
    start_node "$i"
    ;;
  status)
    running etcd && echo "etcd   up   pid $(cat "$(pidfile etcd)")" || echo "etcd   down"
    for f in "$dir"/n*.pid; do
      [ -f "$f" ] || continue
      name=$(basename "$f" .pid)
      if running "$name"; then
        state=$(ps -o state= -p "$(cat "$f")" 2>/dev/null | tr -d ' ')
        [ "$state" = T ] && echo "$name     paused pid $(cat "$f")" || echo "$name     up     pid $(cat "$f")"
      else
        echo "$name     down"
      fi
    done
    if running etcd; then
      "$bin" node ls --etcd "$etcd_url" 2>/dev/null || true
      "$bin" ranges --etcd "$etcd_url" 2>/dev/null || true
    fi
    ;;
  logs)
    i=${2:?node number or etcd}
    if [ "$i" = etcd ]; then exec tail -n 100 -f "$dir/etcd.log"; fi
    exec tail -n 100 -f "$dir/n$i.log"
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
