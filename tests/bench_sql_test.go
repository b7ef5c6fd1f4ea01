package tests

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/node/workload"
)

// The SQL benchmarks drive an in-process 3-node cluster (embedded etcd, real
// pebble on disk, real gRPC on 127.0.0.1, every range replicated 3 ways by
// the placement driver) through the MySQL wire protocol with
// go-sql-driver/mysql, as an application would. Statements with arguments
// go through server-side prepared statements (COM_STMT_EXECUTE), like
// sysbench's. Each reports ns/op and ops/s for one client; the */clients=8
// variants report the throughput of 8 concurrent clients on the machine's
// cores. Profile one path with, e.g.:
//
//	go test ./tests/ -run '^$' -bench 'SQLPointSelect/rows=1000$' -benchtime 3000x -cpuprofile cpu.out
//
// See docs/benchmarks.md for the numbers and what the profiles show.

// benchTable is sysbench's table shape: an auto-increment primary key, a
// secondary index on k and two fixed-width strings.
const benchTable = `CREATE TABLE bench.sbtest (
	id INT NOT NULL AUTO_INCREMENT,
	k INT NOT NULL DEFAULT 0,
	c CHAR(120) NOT NULL DEFAULT '',
	pad CHAR(60) NOT NULL DEFAULT '',
	PRIMARY KEY (id),
	KEY k_1 (k))`

// benchStartCluster starts a 3-node cluster with default (production)
// timings and waits until every range has 3 voters. (startCluster takes a
// *testing.T, so benchmarks cannot share it.)
func benchStartCluster(b *testing.B) *node.LocalCluster {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lc, err := node.StartLocalCluster(ctx, node.LocalClusterConfig{
		Nodes:   3,
		DataDir: b.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Template: node.Config{
			Placement: node.PlacementConfig{Interval: 100 * time.Millisecond},
		},
	})
	if err != nil {
		b.Fatalf("start cluster: %v", err)
	}
	b.Cleanup(func() { _ = lc.Stop(context.Background()) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		live := map[uint64]bool{}
		for _, n := range lc.Nodes() {
			live[n.ID()] = true
		}
		rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
		ranges, err := lc.Node(1).ClusterRanges(rctx)
		rcancel()
		if err == nil && allRangesOn(ranges, live, 3) {
			return lc
		}
		if time.Now().After(deadline) {
			b.Fatalf("ranges not replicated 3 ways within 60 s: %+v (%v)", ranges, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchSetup starts a cluster, creates bench.sbtest with rows rows and
// returns a handle to node 1 with up to conns open connections.
func benchSetup(b *testing.B, rows, conns int) *sql.DB {
	b.Helper()
	lc := benchStartCluster(b)
	db, err := workload.Open(lc.Node(1).SQLAddr(), "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	benchExec(b, db, "CREATE DATABASE bench")
	benchExec(b, db, benchTable)
	const batch = 100
	for first := 1; first <= rows; first += batch {
		var sb strings.Builder
		sb.WriteString("INSERT INTO bench.sbtest (id, k, c, pad) VALUES ")
		for id := first; id < first+batch && id <= rows; id++ {
			if id > first {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "(%d, %d, '%s', '%s')", id, id*7%rows, strings.Repeat("c", 119), strings.Repeat("p", 59))
		}
		benchExec(b, db, sb.String())
	}
	return db
}

func benchExec(b *testing.B, db *sql.DB, q string, args ...any) {
	b.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		b.Fatalf("%.80s: %v", q, err)
	}
}

// benchPrepare prepares q on db (a server-side statement per connection).
func benchPrepare(b *testing.B, db *sql.DB, q string) *sql.Stmt {
	b.Helper()
	st, err := db.Prepare(q)
	if err != nil {
		b.Fatalf("prepare %s: %v", q, err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// benchCPUTime is the CPU time (user and system) this process has used: the
// cluster runs in-process, so it covers client, SQL layer, KV, Raft and etcd.
func benchCPUTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchLoop runs op b.N times from clients goroutines (ids 0..b.N-1 handed
// out in order) and reports ops/s and the process's CPU time per op
// (cpu-us/op, which, unlike ns/op, hardly moves when other processes compete
// for the cores).
func benchLoop(b *testing.B, clients int, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	errs := make(chan error, clients)
	cpu0 := benchCPUTime(b)
	b.ResetTimer()
	for c := 0; c < clients; c++ {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					errs <- nil
					return
				}
				if err := op(int(i)); err != nil {
					errs <- fmt.Errorf("op %d: %w", i, err)
					return
				}
			}
		}()
	}
	var first error
	for c := 0; c < clients; c++ {
		if err := <-errs; err != nil && first == nil {
			first = err
			next.Store(int64(b.N)) // stop the other clients
		}
	}
	b.StopTimer()
	cpu := benchCPUTime(b) - cpu0
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/op")
}

// BenchmarkSQLPointSelect is sysbench's point select (SELECT c … WHERE id = ?)
// on tables of 100 and 1000 rows: the difference between the two is the
// per-statement cost that grows with the table.
func BenchmarkSQLPointSelect(b *testing.B) {
	for _, bc := range []struct{ rows, clients int }{{100, 1}, {1000, 1}, {1000, 8}} {
		b.Run(fmt.Sprintf("rows=%d/clients=%d", bc.rows, bc.clients), func(b *testing.B) {
			db := benchSetup(b, bc.rows, bc.clients)
			st := benchPrepare(b, db, "SELECT c FROM bench.sbtest WHERE id = ?")
			benchLoop(b, bc.clients, func(i int) error {
				var c string
				return st.QueryRow(i%bc.rows + 1).Scan(&c)
			})
		})
	}
}

// BenchmarkSQLInsert is an autocommit single-row INSERT with an
// AUTO_INCREMENT key into a 1000-row table (a one-range, one-phase commit of
// the row and its index entry).
func BenchmarkSQLInsert(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			db := benchSetup(b, 1000, clients)
			st := benchPrepare(b, db, "INSERT INTO bench.sbtest (k, c, pad) VALUES (?, ?, ?)")
			c, pad := strings.Repeat("c", 119), strings.Repeat("p", 59)
			benchLoop(b, clients, func(i int) error {
				_, err := st.Exec(i, c, pad)
				return err
			})
		})
	}
}

// BenchmarkSQLUpdatePK is an autocommit UPDATE of a non-indexed column by
// primary key (read, then write of one row).
func BenchmarkSQLUpdatePK(b *testing.B) {
	const rows = 1000
	db := benchSetup(b, rows, 1)
	st := benchPrepare(b, db, "UPDATE bench.sbtest SET c = ? WHERE id = ?")
	benchLoop(b, 1, func(i int) error {
		_, err := st.Exec(fmt.Sprintf("v%d", i), i%rows+1)
		return err
	})
}

// BenchmarkSQLTxn2Stmt is an explicit transaction of two statements, BEGIN,
// two UPDATEs by primary key of rows far apart, COMMIT: the shape of a
// transfer.
func BenchmarkSQLTxn2Stmt(b *testing.B) {
	const rows = 1000
	db := benchSetup(b, rows, 1)
	st := benchPrepare(b, db, "UPDATE bench.sbtest SET k = k + ? WHERE id = ?")
	benchLoop(b, 1, func(i int) error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ts := tx.Stmt(st)
		if _, err := ts.Exec(-1, i%rows+1); err != nil {
			return err
		}
		if _, err := ts.Exec(1, (i+rows/2)%rows+1); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// BenchmarkSQLRangeScan100 reads 100 consecutive rows by primary key range
// (sysbench's simple_ranges) from a 1000-row table.
func BenchmarkSQLRangeScan100(b *testing.B) {
	const rows = 1000
	db := benchSetup(b, rows, 1)
	st := benchPrepare(b, db, "SELECT c FROM bench.sbtest WHERE id BETWEEN ? AND ?")
	benchLoop(b, 1, func(i int) error {
		lo := i%(rows-100) + 1
		r, err := st.Query(lo, lo+99)
		if err != nil {
			return err
		}
		defer r.Close()
		n := 0
		for r.Next() {
			var c string
			if err := r.Scan(&c); err != nil {
				return err
			}
			n++
		}
		if err := r.Err(); err != nil {
			return err
		}
		if n != 100 {
			return fmt.Errorf("range [%d,%d] returned %d rows, want 100", lo, lo+99, n)
		}
		return nil
	})
}

// BenchmarkSQLReadOnlyTxnFollowerReads is a point select in a READ ONLY
// transaction (START TRANSACTION READ ONLY, SELECT, COMMIT on one
// connection), with quorumdb_follower_reads off (a current snapshot: one
// ReadIndex round per KV read, most of them on another node's leader) and on
// (a snapshot ~2 s old, served by the node's own replicas).
func BenchmarkSQLReadOnlyTxnFollowerReads(b *testing.B) {
	benchFollowerReads(b, func(ctx context.Context, conn *sql.Conn) func(i int) error {
		return func(i int) error {
			if _, err := conn.ExecContext(ctx, "START TRANSACTION READ ONLY"); err != nil {
				return err
			}
			var c string
			if err := conn.QueryRowContext(ctx, "SELECT c FROM bench.sbtest WHERE id = ?", i%benchFollowerRows+1).Scan(&c); err != nil {
				return err
			}
			_, err := conn.ExecContext(ctx, "COMMIT")
			return err
		}
	})
}

// BenchmarkSQLPointSelectFollowerReads is the autocommit point select
// (sysbench's) with quorumdb_follower_reads off and on.
func BenchmarkSQLPointSelectFollowerReads(b *testing.B) {
	benchFollowerReads(b, func(ctx context.Context, conn *sql.Conn) func(i int) error {
		st, err := conn.PrepareContext(ctx, "SELECT c FROM bench.sbtest WHERE id = ?")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return func(i int) error {
			var c string
			return st.QueryRowContext(ctx, i%benchFollowerRows+1).Scan(&c)
		}
	})
}

const benchFollowerRows = 1000

// benchFollowerReads runs the operation newOp builds on one connection of a
// fresh cluster, with quorumdb_follower_reads off and on.
func benchFollowerReads(b *testing.B, newOp func(ctx context.Context, conn *sql.Conn) func(i int) error) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("follower_reads=%v", on), func(b *testing.B) {
			db := benchSetup(b, benchFollowerRows, 1)
			ctx := context.Background()
			conn, err := db.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET quorumdb_follower_reads = %v", on)); err != nil {
				b.Fatal(err)
			}
			op := newOp(ctx, conn)
			// Follower reads start once the table is older than the
			// staleness and its ranges close timestamps (the first reads go
			// to the leaders): warm up past that. A stale snapshot may not
			// hold the table yet, so errors are expected here; benchLoop
			// fails on any later one.
			for warm := time.Now(); time.Since(warm) < 4*time.Second; {
				if err := op(0); err != nil && !on {
					b.Fatal(err)
				}
			}
			benchLoop(b, 1, op)
		})
	}
}
