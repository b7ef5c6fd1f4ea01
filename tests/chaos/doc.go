// Package chaos is QuorumDB's fault-tolerance suite: Jepsen-style workloads
// run through SQL against a cluster of real quorumdb processes while a
// nemesis injects faults, and checkers (package checker) judge the recorded
// histories.
//
// What it owns:
//
//   - the harness (StartCluster): one `quorumdb etcd` process plus 3 or 5
//     `quorumdb start` processes, each on its own address with its own data
//     directory and log under the run's results directory, readiness by
//     polling /ready with deadlines. As root with `ip netns`, every process
//     lives in its own network namespace (veth pairs on a bridge) and a
//     partition is a policy-routing blackhole rule in the receiving
//     namespace: a silent packet drop. Otherwise nodes listen on
//     127.0.0.x and partition nemeses are skipped (the report says so);
//   - the nemeses (kill -9 a node, kill the busiest range's leader,
//     SIGSTOP/SIGCONT, partition a minority, isolate a leader, bridge, kill
//     the TSO leader, kill and restart etcd, rolling restart) and the seeded
//     fault/heal schedule of a run (Run);
//   - the workloads (bank with ledger, register, set, list-append, the
//     seed's two 10 EUR withdrawals from 15 EUR), each recording every
//     operation with invoke/complete times and ok/fail/unknown outcome;
//   - the per-run report (report.json, history.json, summary.txt under
//     tests/chaos/results/<time>-<workload>-<nemesis>/).
//
// Running: `go test ./tests/chaos/` runs the short subset (TestChaosShort,
// CHAOS_TIME per run, default 15 s); `go test ./tests/chaos/ -run
// TestChaosMatrix -chaos.full -timeout 3h` runs every workload × nemesis
// pair for CHAOS_TIME (default 30 s) each and fails on any anomaly. QDB_BIN
// names a prebuilt binary; otherwise the tests build ./cmd/quorumdb once.
//
// It must not import the database's packages to drive it (SQL and the
// nodes' HTTP endpoints only, as an operator would; etcd is read only to
// find the TSO leader), and it must leave nothing behind: Close stops every
// process and removes namespaces and rules; namespaces of a run that died
// are removed by the next run (their names carry the dead run's PID).
//
// Invariants: an operation whose outcome the client cannot know (timeout,
// connection lost after sending, an error at COMMIT other than 1213/1205)
// is recorded "unknown", never "fail"; before COMMIT every error is a
// definite failure because writes are buffered until then.
package chaos
