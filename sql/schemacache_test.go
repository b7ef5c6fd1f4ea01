package qsql

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// readCountingStore counts the KV read requests (point reads and scans)
// that reach the store, i.e. what a real cluster serves with a ReadIndex
// round each.
type readCountingStore struct {
	*memStore
	reads atomic.Int64
}

func (s *readCountingStore) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if req.Get != nil || req.Scan != nil {
		s.reads.Add(1)
	}
	return s.memStore.Execute(ctx, rangeID, req)
}

// TestSchemaCacheReadsPerPointSelect: with the node-wide schema cache an
// autocommit point select reads the schema generation and the row, nothing
// else; the first statement after a schema change (here on another table)
// reads the descriptors again.
func TestSchemaCacheReadsPerPointSelect(t *testing.T) {
	st := &readCountingStore{memStore: newMemStore(t, "t")}
	kvdb := txn.NewDB(txn.DBConfig{
		Sender:          txn.NewLocalStoreSender(txn.LocalStoreSenderConfig{Store: st, Directory: st, Logger: quietLogger()}),
		Clock:           txn.NewLocalClock(0),
		Logger:          quietLogger(),
		LockWaitTimeout: 2 * time.Second,
	})
	t.Cleanup(kvdb.Close)
	srv := startServer(t, kvdb)
	db := connect(t, srv, "")
	mustExec(t, db, "CREATE DATABASE sc", "USE sc",
		"CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), KEY v_idx (v))",
		"CREATE TABLE child (id INT PRIMARY KEY, tid INT, FOREIGN KEY (tid) REFERENCES t (id))",
		"INSERT INTO t VALUES (1, 'one'), (2, 'two')")
	stmt, err := db.Prepare("SELECT v FROM t WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	selectReads := func(id int, want string) int64 {
		t.Helper()
		before := st.reads.Load()
		var v string
		if err := stmt.QueryRow(id).Scan(&v); err != nil {
			t.Fatalf("select %d: %v", id, err)
		}
		if v != want {
			t.Fatalf("select %d = %q, want %q", id, v, want)
		}
		return st.reads.Load() - before
	}
	selectReads(1, "one") // warm the node cache
	const n = 20
	var warm int64
	for i := 0; i < n; i++ {
		warm += selectReads(1+i%2, []string{"one", "two"}[i%2])
	}
	// The schema generation and the row.
	if warm != 2*n {
		t.Fatalf("%d KV reads for %d cached point selects, want %d (generation + row)", warm, n, 2*n)
	}
	mustExec(t, db, "CREATE TABLE other (id INT PRIMARY KEY)")
	cold := selectReads(2, "two")
	// Database and table descriptors (name → ID → descriptor), the foreign
	// keys referencing t and the child's descriptor come on top.
	if cold <= 2 {
		t.Fatalf("first select after a schema change read %d keys: the cache was not invalidated", cold)
	}
	if again := selectReads(1, "one"); again != 2 {
		t.Fatalf("second select after the schema change read %d keys, want 2", again)
	}
	t.Logf("KV reads per autocommit point select: %d after a schema change (uncached), 2 cached", cold)
}

// TestSchemaCacheDDLSeenByOtherNode: a schema change on one node is seen by
// the next statement on another node whose cache holds the old schema.
func TestSchemaCacheDDLSeenByOtherNode(t *testing.T) {
	a, b := twoNodes(t)
	da := connect(t, a, "")
	mustExec(t, da, "CREATE DATABASE sn", "USE sn", "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 10)")
	db := connect(t, b, "sn")
	// Warm b's cache with t, the missing table u and the missing view w.
	if got := fmt.Sprint(queryStrings(t, db, "SELECT * FROM t")); got != "[[1 10]]" {
		t.Fatal(got)
	}
	for _, q := range []string{"SELECT * FROM u", "SELECT * FROM w"} {
		if _, err := db.Exec(q); mysqlCode(err) != 1146 {
			t.Fatalf("%s before it exists: %v, want 1146", q, err)
		}
	}

	mustExec(t, da, "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 7",
		"CREATE TABLE u (x INT)", "INSERT INTO u VALUES (3)", "CREATE VIEW w AS SELECT id + 100 AS i FROM t")
	if got := fmt.Sprint(queryStrings(t, db, "SELECT * FROM t")); got != "[[1 10 7]]" {
		t.Fatalf("node b after ADD COLUMN on node a: %s", got)
	}
	if got := fmt.Sprint(queryStrings(t, db, "SELECT x FROM u")); got != "[[3]]" {
		t.Fatalf("node b after CREATE TABLE on node a: %s", got)
	}
	if got := fmt.Sprint(queryStrings(t, db, "SELECT i FROM w")); got != "[[101]]" {
		t.Fatalf("node b after CREATE VIEW on node a: %s", got)
	}

	mustExec(t, da, "DROP VIEW w", "DROP TABLE u")
	for _, q := range []string{"SELECT * FROM u", "SELECT * FROM w"} {
		if _, err := db.Exec(q); mysqlCode(err) != 1146 {
			t.Fatalf("%s on node b after the drop on node a: %v, want 1146", q, err)
		}
	}
	// Node b's own DDL, seen by node a which cached t before.
	mustExec(t, db, "ALTER TABLE t DROP COLUMN v")
	if got := fmt.Sprint(queryStrings(t, da, "SELECT * FROM t")); got != "[[1 7]]" {
		t.Fatalf("node a after DROP COLUMN on node b: %s", got)
	}
}

// TestSchemaCacheStaleTxnCannotCommit: a transaction that resolved the
// schema (from the node cache) before a concurrent schema change cannot
// commit its writes afterwards: 1213, and the session is usable again.
func TestSchemaCacheStaleTxnCannotCommit(t *testing.T) {
	a, b := twoNodes(t)
	da := connect(t, a, "")
	mustExec(t, da, "CREATE DATABASE st", "USE st", "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 10)")
	ctx := context.Background()
	cb, err := connect(t, b, "st").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	xb := conn2exec{ctx, cb}
	// Warm node b's cache, then use it in an explicit transaction.
	if got := fmt.Sprint(queryStrings(t, xb, "SELECT v FROM t WHERE id = 1")); got != "[[10]]" {
		t.Fatal(got)
	}
	mustExec(t, xb, "BEGIN")
	if got := fmt.Sprint(queryStrings(t, xb, "SELECT v FROM t WHERE id = 1")); got != "[[10]]" {
		t.Fatal(got)
	}
	mustExec(t, da, "ALTER TABLE t ADD UNIQUE INDEX v_uq (v)")
	// Written with the old schema: no entry in the new index.
	mustExec(t, xb, "INSERT INTO t VALUES (2, 10)")
	if err := execErr(xb, "COMMIT"); mysqlCode(err) != 1213 {
		t.Fatalf("commit after a concurrent schema change: %v, want 1213", err)
	}
	if got := fmt.Sprint(queryStrings(t, xb, "SELECT id, v FROM t ORDER BY id")); got != "[[1 10]]" {
		t.Fatalf("rows after the failed commit: %s", got)
	}
	// Retried on the new schema, the unique index applies.
	if _, err := cb.ExecContext(ctx, "INSERT INTO t VALUES (2, 10)"); mysqlCode(err) != 1062 {
		t.Fatalf("insert of a duplicate under the new unique index: %v, want 1062", err)
	}
}

// TestNodeSchemaCacheGenerations: entries are served only at the
// generation they were read at, an older generation never replaces a
// newer one, and the size bound empties the cache instead of growing.
func TestNodeSchemaCacheGenerations(t *testing.T) {
	var c nodeSchemaCache
	c.maxEntries = 3
	ti := &tableInfo{name: "t"}
	c.putTable(5, "1/t", ti)
	if got, ok := c.table(5, "1/t"); !ok || got != ti {
		t.Fatalf("table at its generation: %v %v", got, ok)
	}
	if _, ok := c.table(4, "1/t"); ok {
		t.Fatal("served at an older generation")
	}
	if _, ok := c.table(6, "1/t"); ok {
		t.Fatal("served at a newer generation")
	}
	c.putDatabase(4, "d", cachedDB{found: true}) // read by an older transaction
	if _, ok := c.database(5, "d"); ok {
		t.Fatal("an entry of an older generation was stored")
	}
	c.putTable(5, "1/u", nil)
	if got, ok := c.table(5, "1/u"); !ok || got != nil {
		t.Fatalf("negative entry: %v %v", got, ok)
	}
	c.putView(6, "1/v", cachedView{found: true})
	if _, ok := c.table(5, "1/t"); ok {
		t.Fatal("generation 5 entry survived a generation 6 write")
	}
	if v, ok := c.view(6, "1/v"); !ok || !v.found {
		t.Fatalf("view at generation 6: %v %v", v, ok)
	}
	c.putTriggerList(6, 1, nil)
	c.putTable(6, "1/a", ti)
	c.putTable(6, "1/b", ti) // fourth entry: over the bound
	if c.size > c.maxEntries {
		t.Fatalf("size %d over the bound %d", c.size, c.maxEntries)
	}
	if _, ok := c.view(6, "1/v"); ok {
		t.Fatal("the cache was not emptied at its bound")
	}
	if got, ok := c.table(6, "1/b"); !ok || got != ti {
		t.Fatal("the entry that hit the bound was not stored")
	}
}

// TestSchemaCacheConcurrentSessions: sessions of one node share cached
// table schemas while writing and reading concurrently (run with -race),
// and a schema change in the middle is picked up by all of them.
func TestSchemaCacheConcurrentSessions(t *testing.T) {
	c := newTestCluster(t)
	setup := connect(t, c.srv, "")
	mustExec(t, setup, "CREATE DATABASE cs", "USE cs", "CREATE TABLE t (id INT PRIMARY KEY, g INT, v VARCHAR(20), KEY g_idx (g))")
	const workers, rows = 4, 15
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		db := connect(t, c.srv, "cs")
		go func() {
			for i := 0; i < rows; i++ {
				id := w*1000 + i
				if _, err := db.Exec("INSERT INTO t (id, g, v) VALUES (?, ?, ?)", id, w, fmt.Sprint("v", id)); err != nil {
					errs <- fmt.Errorf("worker %d insert %d: %w", w, id, err)
					return
				}
				var v string
				if err := db.QueryRow("SELECT v FROM t WHERE id = ?", id).Scan(&v); err != nil || v != fmt.Sprint("v", id) {
					errs <- fmt.Errorf("worker %d select %d: %q %v", w, id, v, err)
					return
				}
			}
			errs <- nil
		}()
	}
	mustExec(t, setup, "ALTER TABLE t ADD COLUMN extra INT NOT NULL DEFAULT 1")
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(queryStrings(t, setup, "SELECT COUNT(*), SUM(extra) FROM t")); got != fmt.Sprintf("[[%d %d]]", workers*rows, workers*rows) {
		t.Fatalf("after the concurrent ALTER: %s", got)
	}
}
