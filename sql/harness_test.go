package qsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/raftgroup"
	"github.com/quorumdb/quorumdb/raftgroup/raftgrouptest"
	"github.com/quorumdb/quorumdb/txn"
)

// memStore is the store these tests run on: a real single-node
// raftgroup.Store on an in-memory pebble kv.Engine, its key space in
// single-voter ranges (writes proposed and applied through Raft, reads
// served by the leader after a ReadIndex, the leader's max_read_ts and
// latches for one-phase commits), as tests/ does for the transaction suites.
// Starting and stopping one is cheap (one engine, a few goroutines, short
// ticks), so every test and every go-mysql-server engine gets its own.
type memStore struct {
	store *raftgroup.Store
	// clock is the store's clock (a new leader's max_read_ts starts from
	// it) and the default clock of the coordinators over it.
	clock *txn.LocalClock
}

// newMemStore starts a store whose ranges are split at splitKeys (in
// ascending order); it stops when t ends.
func newMemStore(t testing.TB, splitKeys ...string) *memStore {
	t.Helper()
	clock := txn.NewLocalClock(0)
	st := raftgrouptest.StartStore(t, raftgrouptest.Clock(clock), func(c *raftgroup.Config) {
		// Single voters never wait for an election or a heartbeat; short
		// ticks only make idle ranges quiesce soon.
		c.Workers = 2
		c.Logger = quietLogger()
	})
	// All ranges are created at once (one write; each campaigns at once)
	// rather than by splits, which would cost a Raft round per split.
	bounds := [][]byte{kv.KeyMin}
	for _, k := range splitKeys {
		bounds = append(bounds, []byte(k))
	}
	bounds = append(bounds, kv.KeyMax)
	descs := make([]*kv.RangeDescriptor, 0, len(bounds)-1)
	for i := 0; i+1 < len(bounds); i++ {
		descs = append(descs, &kv.RangeDescriptor{
			RangeID: uint64(i + 1), StartKey: bounds[i], EndKey: bounds[i+1], Generation: 1,
			Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}}, NextReplicaID: 2,
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.BootstrapRanges(ctx, descs); err != nil {
		t.Fatalf("bootstrap ranges: %v", err)
	}
	return &memStore{store: st, clock: clock}
}

// Execute implements txn.LocalStore.
func (s *memStore) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	return s.store.Execute(ctx, rangeID, req)
}

// LookupRange implements txn.RangeDirectory from the store's replicas.
func (s *memStore) LookupRange(_ context.Context, key []byte) (*kv.RangeDescriptor, error) {
	for _, info := range s.store.RangeInfo() {
		if info.Descriptor != nil && info.Descriptor.ContainsKey(key) {
			return info.Descriptor, nil
		}
	}
	return nil, fmt.Errorf("no range holds %q", key)
}

// testCluster is one SQL server over a real transaction coordinator on a
// memStore with the catalog and the table data in different ranges.
type testCluster struct {
	t     testing.TB
	db    *txn.DB
	srv   *Server
	store *memStore
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestDB(t testing.TB) (*txn.DB, *memStore) {
	st := newMemStore(t, "t")
	return newDBOn(t, st, nil), st
}

// newDBOn returns another coordinator (another "node") over the same store,
// on clock (nil: the store's own clock, so timestamps stay unique).
func newDBOn(t testing.TB, st *memStore, clock txn.TimestampSource, mutate ...func(*txn.DBConfig)) *txn.DB {
	if clock == nil {
		clock = st.clock
	}
	cfg := txn.DBConfig{
		Sender:          txn.NewLocalStoreSender(txn.LocalStoreSenderConfig{Store: st, Directory: st, Logger: quietLogger()}),
		Clock:           clock,
		Logger:          quietLogger(),
		LockWaitTimeout: 2 * time.Second,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	db := txn.NewDB(cfg)
	t.Cleanup(db.Close)
	return db
}

func newTestCluster(t testing.TB, mutate ...func(*Config)) *testCluster {
	t.Helper()
	db, st := newTestDB(t)
	return &testCluster{t: t, db: db, store: st, srv: startServer(t, db, mutate...)}
}

// startServer starts a Server over db on 127.0.0.1:0.
func startServer(t testing.TB, db *txn.DB, mutate ...func(*Config)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg := Config{Listener: ln, DB: db, Logger: quietLogger(), NodeID: 1}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := NewServer(context.Background(), cfg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("server did not stop")
		}
	})
	return srv
}

// connect opens a database/sql pool to the server (one connection, so a
// session's state is stable across statements).
func connect(t testing.TB, srv *Server, dbName string) *sql.DB {
	t.Helper()
	return connectAs(t, srv, "root", "", dbName)
}

// connectAs opens a pool as user with password.
func connectAs(t testing.TB, srv *Server, user, password, dbName string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = srv.Addr().String()
	cfg.DBName = dbName
	cfg.Timeout = 10 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("connector: %v", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// mustExec runs statements, failing the test on error.
func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// mysqlCode returns the MySQL error number of err (0 if none).
func mysqlCode(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// queryStrings returns the rows of a query as strings (NULL as "NULL").
func queryStrings(t testing.TB, db interface {
	Query(string, ...any) (*sql.Rows, error)
}, q string, args ...any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = v.String
			} else {
				row[i] = "NULL"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}
