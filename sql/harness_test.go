package qsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// memStore is the interim single-process store these tests run on until
// raftgroup's single-node Store is wired in: a real in-memory pebble
// kv.Engine split into ranges, every request evaluated by kv.Evaluate under
// one mutex (atomic like a Raft apply). Like a range leader it raises a
// one-phase commit's timestamp above every read the range served.
type memStore struct {
	mu        sync.Mutex
	eng       *kv.Engine
	ranges    map[uint64]*kv.RangeDescriptor
	maxReadTS map[uint64]kv.Timestamp
}

func newMemStore(t testing.TB, splitKeys ...string) *memStore {
	t.Helper()
	eng, err := kv.Open("", kv.EngineOptions{InMemory: true, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	s := &memStore{eng: eng, ranges: map[uint64]*kv.RangeDescriptor{}, maxReadTS: map[uint64]kv.Timestamp{}}
	bounds := [][]byte{kv.KeyMin}
	for _, k := range splitKeys {
		bounds = append(bounds, []byte(k))
	}
	bounds = append(bounds, kv.KeyMax)
	for i := 0; i+1 < len(bounds); i++ {
		id := uint64(i + 1)
		s.ranges[id] = &kv.RangeDescriptor{
			RangeID: id, StartKey: bounds[i], EndKey: bounds[i+1], Generation: 1,
			Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}},
		}
	}
	return s
}

func (s *memStore) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	desc, ok := s.ranges[rangeID]
	if !ok {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	if kv.IsReadOnly(req) {
		var ts kv.Timestamp
		switch {
		case req.Get != nil:
			ts = req.Get.ReadTS
		case req.Scan != nil:
			ts = req.Scan.ReadTS
		case req.ValidateReads != nil:
			ts = req.ValidateReads.To
		}
		resp, err := kv.EvaluateReadOnly(s.eng.DB(), desc, req)
		if err == nil || kv.IsRequestError(err) {
			var outside *kv.KeyOutOfRangeError
			if !errors.As(err, &outside) {
				s.maxReadTS[rangeID] = max(s.maxReadTS[rangeID], ts)
			}
		}
		return resp, err
	}
	if req.OnePhaseCommit != nil {
		c := *req.OnePhaseCommit
		c.CommitTS = max(c.CommitTS, s.maxReadTS[rangeID]+1)
		req = &kv.Request{OnePhaseCommit: &c}
	}
	b := s.eng.NewBatch()
	defer func() { _ = b.Close() }()
	resp, err := kv.Evaluate(b, desc, req)
	if err != nil {
		return nil, err
	}
	if err := s.eng.Commit(b, false); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *memStore) LookupRange(_ context.Context, key []byte) (*kv.RangeDescriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.ranges {
		if d.ContainsKey(key) {
			return d.Clone(), nil
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
// sharing its clock so timestamps stay unique.
func newDBOn(t testing.TB, st *memStore, clock txn.TimestampSource, mutate ...func(*txn.DBConfig)) *txn.DB {
	if clock == nil {
		clock = txn.NewLocalClock(0)
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
