#!/usr/bin/env bash
# End-to-end SQL benchmark: sysbench OLTP workloads against a 3-node QuorumDB
# (`quorumdb demo`, every range replicated 3 ways, all nodes in one process)
# and, for a reference point, against a local single-node MariaDB on the same
# machine. Prints, per workload and thread count, the median over repetitions
# of transactions/s, queries/s and p95 latency, and QuorumDB / MariaDB ratios.
#
#   scripts/bench.sh            the full default run (~5 minutes)
#   BENCH_TIME=30 BENCH_TABLE_SIZE=10000 scripts/bench.sh
#
# Environment (defaults in brackets):
#   BENCH_TESTS        sysbench workloads [oltp_point_select oltp_read_only
#                      oltp_write_only oltp_read_write]
#   BENCH_THREADS      client thread counts [1 8]
#   BENCH_REPS         repetitions of each run; the median is reported [3]
#   BENCH_TIME         seconds per run [5]
#   BENCH_TABLES       tables [1]
#   BENCH_TABLE_SIZE   rows per table [1000]
#   BENCH_NODES        QuorumDB nodes [3]
#   BENCH_SPREAD       1: sysbench spreads its connections over all nodes;
#                      0: all connections to node 1 [0]
#   BENCH_MARIADB_ARGS extra mariadbd options, e.g.
#                      "--transaction-isolation=SERIALIZABLE" (QuorumDB is
#                      always serializable; MariaDB defaults to REPEATABLE READ) []
#   BENCH_MARIADB      1: also run against a local MariaDB (installed with
#                      apt-get if missing) and print ratios; 0: QuorumDB only [1]
#   BENCH_PROFILE      1: take a CPU profile of the QuorumDB process during the
#                      first repetition of every run with the most threads [0]
#   BENCH_SQL_PORT     SQL port of QuorumDB node 1 (node i: +i-1) [14000]
#   BENCH_HTTP_PORT    HTTP port of QuorumDB node 1 (node i: +i-1) [18080]
#   BENCH_MARIADB_PORT MariaDB's port [13306]
#   BENCH_SYSBENCH_ARGS extra sysbench options for every run, e.g.
#                      "--rand-type=uniform" (sysbench 1.0's default "special"
#                      sends 75% of requests to 1% of the rows: hot rows) []
#   BENCH_QDB_SQL      SQL run on QuorumDB node 1 after prepare, e.g.
#                      "SET GLOBAL quorumdb_follower_reads = ON" (stale
#                      reads served by the nearest replicas; the demo's
#                      nodes share one process, so a global reaches all)
#   BENCH_OUT          directory for logs, raw sysbench output, profiles and
#                      the summary [a new /tmp/quorumdb-bench-* directory, kept]
#   BENCH_SKIP_BUILD   1: use the existing binary [0]
#   QDB_BIN            the binary [bin/quorumdb]
#
# Everything started here (the demo process, mariadbd) is a child of this
# script and is stopped, and its data removed, on exit (trap), also on Ctrl-C.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${QDB_BIN:-$root/bin/quorumdb}
tests=${BENCH_TESTS:-oltp_point_select oltp_read_only oltp_write_only oltp_read_write}
threads_list=${BENCH_THREADS:-1 8}
reps=${BENCH_REPS:-3}
run_time=${BENCH_TIME:-5}
tables=${BENCH_TABLES:-1}
table_size=${BENCH_TABLE_SIZE:-1000}
nodes=${BENCH_NODES:-3}
spread=${BENCH_SPREAD:-0}
with_mariadb=${BENCH_MARIADB:-1}
profile=${BENCH_PROFILE:-0}
sql_port=${BENCH_SQL_PORT:-14000}
http_port=${BENCH_HTTP_PORT:-18080}
maria_port=${BENCH_MARIADB_PORT:-13306}
out=${BENCH_OUT:-$(mktemp -d /tmp/quorumdb-bench-XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/quorumdb-bench-data-XXXXXX)

qdb_pid=""
maria_pid=""
sb_pid=""

log() { printf '%s bench: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

# stop_pid PID SIGNAL: signal one process we started and wait (bounded) for
# it to exit, then SIGKILL it.
stop_pid() {
  local pid=$1 sig=$2 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  log "process $pid did not stop within 20 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  stop_pid "$sb_pid" TERM
  stop_pid "$qdb_pid" INT
  stop_pid "$maria_pid" TERM
  rm -rf "$work"
  log "results in $out"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_pkg() { # need_pkg COMMAND DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 (for $1)"
  command -v apt-get >/dev/null 2>&1 || die "$1 missing and no apt-get: install $2"
  if [ ! -f "$work/.apt-updated" ]; then
    apt-get update -qq >"$out/apt.log" 2>&1 || die "apt-get update failed (see $out/apt.log)"
    touch "$work/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >>"$out/apt.log" 2>&1 ||
    die "apt-get install $2 failed (see $out/apt.log)"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS WHAT COMMAND...: poll COMMAND until it succeeds.
wait_until() {
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
  log "$what"
}

sql_ping() { mysql -h 127.0.0.1 -P "$1" -u root --connect-timeout=2 -e 'SELECT 1'; }

need_pkg sysbench sysbench
need_pkg mysql mariadb-client
need_pkg curl curl

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building $bin"
  (cd "$root" && go build -o "$bin" ./cmd/quorumdb)
fi
[ -x "$bin" ] || die "no binary at $bin"

for ((i = 0; i < nodes; i++)); do
  port_free $((sql_port + i)) || die "port $((sql_port + i)) is in use (set BENCH_SQL_PORT)"
  port_free $((http_port + i)) || die "port $((http_port + i)) is in use (set BENCH_HTTP_PORT)"
done

# --- QuorumDB --------------------------------------------------------------
start_quorumdb() {
  log "starting quorumdb demo: $nodes nodes, SQL $sql_port.., HTTP $http_port.."
  "$bin" demo --nodes "$nodes" --sql-port "$sql_port" --http-port "$http_port" \
    --data-dir "$work/quorumdb" --log-level warn >"$out/quorumdb.log" 2>&1 &
  qdb_pid=$!
  local i
  wait_until 120 "quorumdb: every range replicated" grep -q '^Cluster ready' "$out/quorumdb.log" ||
    die "quorumdb did not become ready in 120 s (see $out/quorumdb.log)"
  for ((i = 0; i < nodes; i++)); do
    wait_until 60 "quorumdb node $((i + 1)): /ready" curl -sf "http://127.0.0.1:$((http_port + i))/ready" ||
      die "node $((i + 1)) not ready (see $out/quorumdb.log)"
    wait_until 30 "quorumdb node $((i + 1)): SQL answers" sql_ping $((sql_port + i)) ||
      die "node $((i + 1)) does not answer SQL"
  done
}

# --- MariaDB ---------------------------------------------------------------
start_mariadb() {
  need_pkg mariadbd mariadb-server
  port_free "$maria_port" || die "port $maria_port is in use (set BENCH_MARIADB_PORT)"
  local dir=$work/mariadb
  mkdir -p "$dir"
  log "initialising MariaDB in $dir"
  mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$out/mariadb-install.log" 2>&1 ||
    die "mariadb-install-db failed (see $out/mariadb-install.log)"
  # Durable like QuorumDB's acknowledged commits: fsync the redo log per commit.
  mariadbd --no-defaults --datadir="$dir/data" --user="$(id -un)" \
    --bind-address=127.0.0.1 --port="$maria_port" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --skip-log-bin --innodb-flush-log-at-trx-commit=1 \
    --innodb-buffer-pool-size=256M --max-connections=200 \
    --log-error="$out/mariadb.err" ${BENCH_MARIADB_ARGS:-} &
  maria_pid=$!
  wait_until 60 "mariadb: SQL answers" sql_ping "$maria_port" ||
    die "mariadbd did not start (see $out/mariadb.err)"
}

# --- sysbench --------------------------------------------------------------
# sb TARGET ARGS...: sysbench against a target (quorumdb or mariadb).
sb() {
  local target=$1 hosts ports
  shift
  if [ "$target" = quorumdb ]; then
    hosts=127.0.0.1 ports=$sql_port
    if [ "$spread" = 1 ]; then
      for ((i = 1; i < nodes; i++)); do
        hosts="$hosts,127.0.0.1" ports="$ports,$((sql_port + i))"
      done
    fi
  else
    hosts=127.0.0.1 ports=$maria_port
  fi
  # shellcheck disable=SC2086 # BENCH_SYSBENCH_ARGS is a list of options
  sysbench --db-driver=mysql --mysql-host="$hosts" --mysql-port="$ports" \
    --mysql-user=root --mysql-db=sbtest --tables="$tables" --table-size="$table_size" \
    ${BENCH_SYSBENCH_ARGS:-} "$@"
}

prepare() {
  local target=$1 port=$sql_port
  [ "$target" = mariadb ] && port=$maria_port
  mysql -h 127.0.0.1 -P "$port" -u root -e 'DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest'
  log "$target: sysbench prepare ($tables x $table_size rows)"
  local t0=$SECONDS
  if ! sb "$target" oltp_read_write prepare >"$out/$target-prepare.txt" 2>&1; then
    cat "$out/$target-prepare.txt" >&2
    die "$target: sysbench prepare failed"
  fi
  log "$target: prepared in $((SECONDS - t0)) s"
}

# field FILE: "tps qps p95 errors/s" from one sysbench run's output.
fields() {
  awk '
    /transactions:/ { gsub(/[()]/, "", $3); tps = $3 }
    /queries:/ && /per sec/ { gsub(/[()]/, "", $3); qps = $3 }
    /ignored errors:/ { gsub(/[()]/, "", $4); err = $4 }
    /95th percentile:/ { p95 = $3 }
    END { if (tps == "") exit 1; printf "%s %s %s %s\n", tps, qps, p95, err }
  ' "$1"
}

# raft_counters: "reads proposals fsyncs fsync_seconds" summed over the
# QuorumDB nodes' /metrics (linearizable reads served after ReadIndex, Raft
# proposals, synced Raft log batches and their total latency).
raft_counters() {
  local i
  for ((i = 0; i < nodes; i++)); do
    curl -sf "http://127.0.0.1:$((http_port + i))/metrics" || true
  done | awk '
    $1 == "quorumdb_raft_linearizable_reads_total" { r += $2 }
    $1 == "quorumdb_raft_proposals_total" { p += $2 }
    $1 == "quorumdb_raft_log_fsync_seconds_count" { c += $2 }
    $1 == "quorumdb_raft_log_fsync_seconds_sum" { s += $2 }
    END { printf "%d %d %d %.6f\n", r, p, c, s }'
}

# per_op BEFORE AFTER FILE: "reads/query proposals/txn fsync-ms" of one run.
per_op() {
  awk -v b="$1" -v a="$2" '
    /transactions:/ { t = $2 }
    /queries:/ && /per sec/ { q = $2 }
    END {
      split(b, x, " "); split(a, y, " ")
      fc = y[3] - x[3]
      printf "%.2f %.2f %.2f\n", q ? (y[1] - x[1]) / q : 0, t ? (y[2] - x[2]) / t : 0, fc ? 1000 * (y[4] - x[4]) / fc : 0
    }' "$3"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

max_threads=$(printf '%s\n' $threads_list | sort -n | tail -1)

# run_all TARGET: every workload x thread count x repetition; appends
# "target test threads rep tps qps p95 err [reads/q props/txn fsync-ms]"
# lines to $out/raw.txt (the last three for QuorumDB only, from /metrics).
run_all() {
  local target=$1 test th rep f line before prof_pid=""
  for test in $tests; do
    for th in $threads_list; do
      for ((rep = 1; rep <= reps; rep++)); do
        f="$out/$target-$test-t$th-r$rep.txt"
        if [ "$target" = quorumdb ] && [ "$profile" = 1 ] && [ "$th" = "$max_threads" ] && [ "$rep" = 1 ]; then
          curl -s -o "$out/$test-t$th.pprof" \
            "http://127.0.0.1:$http_port/debug/pprof/profile?seconds=$((run_time > 2 ? run_time - 1 : 1))" &
          prof_pid=$!
        fi
        [ "$target" = quorumdb ] && before=$(raft_counters)
        # In the background so that a signal to this script runs the trap at
        # once (bash defers traps until a foreground child exits).
        sb "$target" "$test" --threads="$th" --time="$run_time" --report-interval=0 run >"$f" 2>&1 &
        sb_pid=$!
        if wait "$sb_pid" && line=$(fields "$f"); then
          [ "$target" = quorumdb ] && line="$line $(per_op "$before" "$(raft_counters)" "$f")"
          echo "$target $test $th $rep $line" >>"$out/raw.txt"
          log "$target $test threads=$th rep $rep: tps qps p95 err/s = $line"
        else
          echo "$target $test $th $rep FAILED" >>"$out/raw.txt"
          log "$target $test threads=$th rep $rep FAILED:"
          grep -E 'FATAL|ERROR|error' "$f" | head -5 >&2 || tail -5 "$f" >&2
        fi
        if [ -n "$prof_pid" ]; then
          wait "$prof_pid" || true
          prof_pid=""
        fi
      done
    done
  done
}

# summary: medians per (target, test, threads) and QuorumDB/MariaDB ratios.
summary() {
  local test th target m tps qps p95 err mt
  printf '%-18s %3s | %9s %9s %9s %6s %7s %6s %6s | %9s %9s %9s | %7s %7s\n' \
    workload thr "qdb tps" "qdb qps" "qdb p95ms" "err/s" "reads/q" "prop/t" "fsync" "maria tps" "maria qps" "mar p95ms" "tps ÷" "p95 x"
  for test in $tests; do
    for th in $threads_list; do
      declare -A med=()
      for target in quorumdb mariadb; do
        m() { awk -v t="$target" -v w="$test" -v n="$th" -v c="$1" '$1 == t && $2 == w && $3 == n && $5 != "FAILED" && $c != "" { print $c }' "$out/raw.txt" | median; }
        med[$target.tps]=$(m 5) med[$target.qps]=$(m 6) med[$target.p95]=$(m 7) med[$target.err]=$(m 8)
        med[$target.reads]=$(m 9) med[$target.props]=$(m 10) med[$target.fsync]=$(m 11)
      done
      tps=${med[quorumdb.tps]} mt=${med[mariadb.tps]}
      printf '%-18s %3s | %9s %9s %9s %6s %7s %6s %6s | %9s %9s %9s | %7s %7s\n' "$test" "$th" \
        "$tps" "${med[quorumdb.qps]}" "${med[quorumdb.p95]}" "${med[quorumdb.err]}" \
        "${med[quorumdb.reads]}" "${med[quorumdb.props]}" "${med[quorumdb.fsync]}" \
        "$mt" "${med[mariadb.qps]}" "${med[mariadb.p95]}" \
        "$(awk -v a="$tps" -v b="$mt" 'BEGIN { if (a == "-" || b == "-" || a == 0) print "-"; else printf "%.0f", b / a }')" \
        "$(awk -v a="${med[quorumdb.p95]}" -v b="${med[mariadb.p95]}" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.1f", a / b }')"
      unset med
    done
  done
  echo "medians of $reps runs of ${run_time}s; tables=$tables x $table_size rows; quorumdb: $nodes nodes (spread=$spread); sysbench options: ${BENCH_SYSBENCH_ARGS:-none}; mariadbd options: ${BENCH_MARIADB_ARGS:-none}"
  echo "tps ÷ = mariadb tps / quorumdb tps (how many times slower QuorumDB is); p95 x = quorumdb p95 / mariadb p95; err/s = sysbench's ignored (retried) errors;"
  echo "reads/q = ReadIndex reads per query, prop/t = Raft proposals per transaction (all nodes), fsync = mean ms per synced Raft log batch"
}

: >"$out/raw.txt"
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"
  echo "# $(nproc) cores, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/summary.txt"

start_quorumdb
prepare quorumdb
if [ -n "${BENCH_QDB_SQL:-}" ]; then
  log "quorumdb: $BENCH_QDB_SQL"
  mysql -h 127.0.0.1 -P "$sql_port" -u root -e "$BENCH_QDB_SQL"
  echo "# quorumdb session setup: $BENCH_QDB_SQL" >>"$out/summary.txt"
  # Follower reads see the tables once the snapshot staleness has passed.
  wait_until 30 "quorumdb: sbtest1 readable after the setup" \
    mysql -h 127.0.0.1 -P "$sql_port" -u root -e 'SELECT COUNT(*) FROM sbtest.sbtest1' ||
    die "sbtest1 not readable after $BENCH_QDB_SQL"
fi
run_all quorumdb
stop_pid "$qdb_pid" INT
qdb_pid=""

if [ "$with_mariadb" = 1 ]; then
  start_mariadb
  prepare mariadb
  run_all mariadb
fi

echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/summary.txt"
summary >>"$out/summary.txt"
cat "$out/summary.txt"
if grep -q FAILED "$out/raw.txt"; then
  log "some runs failed; their sysbench output is in $out"
  exit 1
fi
