package qsql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// settableSafePoint is a GC safepoint source a test moves by hand.
type settableSafePoint struct{ ts atomic.Uint64 }

func (s *settableSafePoint) GCSafePoint(context.Context) (kv.Timestamp, error) {
	return s.ts.Load(), nil
}

// asOfCluster is a server whose coordinator consults sp for AS OF reads.
func asOfCluster(t *testing.T) (*txn.DB, *Server, *settableSafePoint) {
	t.Helper()
	st := newMemStore(t, "t")
	sp := &settableSafePoint{}
	db := newDBOn(t, st, nil, func(c *txn.DBConfig) { c.SafePoints = sp })
	return db, startServer(t, db), sp
}

func now(t *testing.T, db *txn.DB) kv.Timestamp {
	t.Helper()
	ts, err := db.Clock().GetTimestamp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// waitPastMillis waits (bounded) until the clock's physical time is past ms,
// so every later commit has a larger physical timestamp.
func waitPastMillis(t *testing.T, db *txn.DB, ms uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for kv.PhysicalMillis(now(t, db)) <= ms {
		if time.Now().After(deadline) {
			t.Fatalf("clock did not pass %d ms", ms)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// waitMinActive waits (bounded) until cond holds for the DB's oldest open
// transaction start timestamp (0: none open).
func waitMinActive(t *testing.T, db *txn.DB, what string, cond func(kv.Timestamp) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(db.MinActiveStartTS()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: MinActiveStartTS stays %d", what, db.MinActiveStartTS())
		}
		time.Sleep(time.Millisecond)
	}
}

func expectRows(t *testing.T, db interface {
	Query(string, ...any) (*sql.Rows, error)
}, q, want string, args ...any) {
	t.Helper()
	if got := fmt.Sprint(queryStrings(t, db, q, args...)); got != want {
		t.Fatalf("%s:\n got %s\nwant %s", q, got, want)
	}
}

func expectCode(t *testing.T, db interface {
	Query(string, ...any) (*sql.Rows, error)
}, q string, code uint16, msgPart string) {
	t.Helper()
	rows, err := db.Query(q)
	if err == nil {
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
	}
	if mysqlCode(err) != code || !strings.Contains(fmt.Sprint(err), msgPart) {
		t.Fatalf("%s: want error %d containing %q, got %v", q, code, msgPart, err)
	}
}

// TestAsOfReadsThePast: a table read AS OF a past point returns the rows and
// the definition of that point, by hybrid timestamp, by datetime in the
// session time zone and by NOW(); plain reads see the present; every AS OF
// transaction ends with its statement.
func TestAsOfReadsThePast(t *testing.T) {
	db, srv, _ := asOfCluster(t)
	c := connect(t, srv, "")
	mustExec(t, c,
		"CREATE DATABASE hist",
		"USE hist",
		"CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10), KEY v_idx (v))",
		"INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
	)
	before := now(t, db)
	// point is a millisecond strictly after every commit so far and before
	// every later one.
	point := kv.PhysicalMillis(before) + 1
	waitPastMillis(t, db, point)
	mustExec(t, c,
		"UPDATE t SET v = 'z' WHERE id = 1",
		"DELETE FROM t WHERE id = 2",
		"INSERT INTO t VALUES (4, 'd')",
		"ALTER TABLE t ADD COLUMN w INT",
		"CREATE TABLE later (id INT PRIMARY KEY)",
	)
	waitMinActive(t, db, "before the AS OF reads", func(ts kv.Timestamp) bool { return ts == 0 })

	old := "[[1 a] [2 b] [3 c]]"
	expectRows(t, c, fmt.Sprintf("SELECT * FROM t AS OF %d ORDER BY id", before), old)
	expectRows(t, c, "SELECT * FROM t ORDER BY id", "[[1 z NULL] [3 c NULL] [4 d NULL]]")
	expectRows(t, c, fmt.Sprintf("SELECT COUNT(*) FROM t AS OF '%d'", before), "[[3]]")
	expectRows(t, c, fmt.Sprintf("SELECT id FROM t AS OF %d WHERE v = 'b'", before), "[[2]]")
	expectRows(t, c, fmt.Sprintf("SELECT id FROM t AS OF %d WHERE id = 1 AND v = 'a'", before), "[[1]]")

	// A datetime is read in the session time zone.
	at := time.UnixMilli(int64(point))
	mustExec(t, c, "SET time_zone = '+00:00'")
	expectRows(t, c, fmt.Sprintf("SELECT * FROM t AS OF '%s' ORDER BY id", at.UTC().Format("2006-01-02 15:04:05.000")), old)
	mustExec(t, c, "SET time_zone = '+05:30'")
	local := at.In(time.FixedZone("", 5*3600+1800)).Format("2006-01-02 15:04:05.000")
	expectRows(t, c, fmt.Sprintf("SELECT * FROM t AS OF '%s' ORDER BY id", local), old)
	expectRows(t, c, fmt.Sprintf("SELECT * FROM t AS OF TIMESTAMP('%s') ORDER BY id", local), old)
	// NOW() is the session zone's wall clock: an hour ago the table did
	// not exist yet, an hour ahead is in the future (both would flip if
	// the zone were ignored: +05:30 read as UTC lies in the future).
	expectCode(t, c, "SELECT * FROM t AS OF DATE_SUB(NOW(), INTERVAL 1 HOUR)", 1146, "table not found")
	expectCode(t, c, "SELECT * FROM t AS OF NOW() - INTERVAL 1 HOUR", 1146, "table not found")
	mustExec(t, c, "SET time_zone = '-08:00'")
	expectCode(t, c, "SELECT * FROM t AS OF DATE_ADD(NOW(), INTERVAL 1 HOUR)", 1525, "in the future")
	expectCode(t, c, "SELECT * FROM t AS OF (NOW() + INTERVAL 1 HOUR)", 1525, "in the future")
	mustExec(t, c, "SET time_zone = 'SYSTEM'")
	waitPastMillis(t, db, kv.PhysicalMillis(now(t, db))+1)
	expectRows(t, c, "SELECT id, v FROM t AS OF NOW(3) ORDER BY id", "[[1 z] [3 c] [4 d]]")
	// Date arithmetic (which go-mysql-server's planner alone would refuse;
	// it computes it at whole seconds, so wait for the next one).
	waitPastMillis(t, db, (kv.PhysicalMillis(now(t, db))/1000+1)*1000)
	expectRows(t, c, "SELECT id, v FROM t AS OF NOW() - INTERVAL 0 SECOND ORDER BY id", "[[1 z] [3 c] [4 d]]")

	// Integers: literal, computed, or in a user variable.
	mustExec(t, c, fmt.Sprintf("SET @before = %d", before))
	expectRows(t, c, "SELECT * FROM t AS OF @before ORDER BY id", old)
	expectRows(t, c, fmt.Sprintf("SELECT * FROM t AS OF %d + 0 ORDER BY id", before), old)

	// The definition is the one of that time: no column w, no table later.
	expectCode(t, c, fmt.Sprintf("SELECT w FROM t AS OF %d", before), 1054, "")
	expectCode(t, c, fmt.Sprintf("SELECT * FROM later AS OF %d", before), 1146, "later")
	expectRows(t, c, "SELECT COUNT(*) FROM later", "[[0]]")
	got := queryStrings(t, c, fmt.Sprintf("SHOW CREATE TABLE t AS OF %d", before))
	if len(got) != 1 || strings.Contains(got[0][1], "`w`") || !strings.Contains(got[0][1], "`v`") {
		t.Fatalf("SHOW CREATE TABLE AS OF: %v", got)
	}

	// AS OF tables join current ones (and themselves at another point).
	expectRows(t, c, fmt.Sprintf(
		"SELECT o.id, o.v, n.v FROM t AS OF %d o JOIN t n ON o.id = n.id ORDER BY o.id", before),
		"[[1 a z] [3 c c]]")
	expectRows(t, c, fmt.Sprintf(
		"SELECT n.id, o.v FROM t n LEFT JOIN t AS OF %d o ON o.id = n.id ORDER BY n.id", before),
		"[[1 a] [3 c] [4 NULL]]")
	expectRows(t, c, fmt.Sprintf(
		"SELECT id FROM t WHERE id NOT IN (SELECT id FROM t AS OF %d) ORDER BY id", before),
		"[[4]]")
	// Reading the past into the present is a plain write.
	mustExec(t, c, fmt.Sprintf("INSERT INTO later SELECT id FROM t AS OF %d", before))
	expectRows(t, c, "SELECT id FROM later ORDER BY id", "[[1] [2] [3]]")
	mustExec(t, c, fmt.Sprintf("UPDATE t JOIN later AS OF %d l ON t.id = l.id SET t.w = t.id * 10", now(t, db)))
	expectRows(t, c, "SELECT id, w FROM t ORDER BY id", "[[1 10] [3 30] [4 NULL]]")
	// A view's definition is the current one; its tables are read AS OF.
	mustExec(t, c, "CREATE VIEW vw AS SELECT id, v FROM t")
	expectRows(t, c, fmt.Sprintf("SELECT * FROM vw AS OF %d ORDER BY id", before), old)

	// Server-side prepared statements resolve AS OF at every execution.
	expectRows(t, c, fmt.Sprintf("SELECT v FROM t AS OF %d WHERE id = ?", before), "[[b]]", 2)

	waitMinActive(t, db, "after autocommit AS OF reads", func(ts kv.Timestamp) bool { return ts == 0 })

	// Inside an explicit transaction the snapshot ends with its statement,
	// not with the transaction.
	tx, err := c.Begin()
	if err != nil {
		t.Fatal(err)
	}
	expectRows(t, tx, "SELECT COUNT(*) FROM t", "[[3]]")
	expectRows(t, tx, fmt.Sprintf("SELECT COUNT(*) FROM t AS OF %d", before), "[[3]]")
	waitMinActive(t, db, "AS OF statement in a transaction", func(ts kv.Timestamp) bool { return ts > before })
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	waitMinActive(t, db, "after commit", func(ts kv.Timestamp) bool { return ts == 0 })
}

// TestAsOfRefusals: values that cannot be read at fail with clear MySQL
// errors, and tables read AS OF cannot be written.
func TestAsOfRefusals(t *testing.T) {
	db, srv, sp := asOfCluster(t)
	c := connect(t, srv, "")
	mustExec(t, c,
		"CREATE DATABASE hist",
		"USE hist",
		"CREATE TABLE t (id INT PRIMARY KEY, v INT)",
		"INSERT INTO t VALUES (1, 10)",
	)
	past := now(t, db)
	mustExec(t, c, "UPDATE t SET v = 11")

	future := kv.MakeTimestamp(kv.PhysicalMillis(now(t, db))+3_600_000, 0)
	expectCode(t, c, fmt.Sprintf("SELECT * FROM t AS OF %d", future), 1525, "in the future")
	expectCode(t, c, "SELECT * FROM t AS OF '2999-01-01 00:00:00'", 1525, "in the future")
	expectCode(t, c, "SELECT * FROM t AS OF 'yesterday'", 1525, "Incorrect AS OF value")
	expectCode(t, c, "SELECT * FROM t AS OF '1969-12-31 00:00:00'", 1525, "before 1970")
	expectCode(t, c, "SELECT * FROM t AS OF 0", 1525, "hybrid timestamp")
	expectCode(t, c, "SELECT * FROM t AS OF 99999999999999999999", 1525, "hybrid timestamp")

	// Below (or at) the GC safepoint the versions may be gone.
	sp.ts.Store(past + 1)
	expectCode(t, c, fmt.Sprintf("SELECT * FROM t AS OF %d", past), 1105, "too old")
	sp.ts.Store(0)
	expectRows(t, c, fmt.Sprintf("SELECT v FROM t AS OF %d", past), "[[10]]")

	// Writes through an AS OF table are refused (the parser accepts AS OF
	// in UPDATE only); nothing changes.
	expectCode(t, c, fmt.Sprintf("UPDATE t AS OF %d SET v = 12", past), 1036, "read only")
	expectCode(t, c, fmt.Sprintf("DELETE FROM t AS OF %d WHERE id = 1", past), 1064, "syntax")
	expectCode(t, c, fmt.Sprintf("INSERT INTO t AS OF %d VALUES (2, 2)", past), 1064, "syntax")
	expectRows(t, c, "SELECT v FROM t", "[[11]]")

	// A placeholder cannot be evaluated when the statement is prepared: a
	// clear error, and the connection stays usable.
	if _, err := c.Query("SELECT * FROM t AS OF ?", fmt.Sprint(past)); mysqlCode(err) != 1105 {
		t.Fatalf("AS OF ? in a prepared statement: want 1105, got %v", err)
	}
	expectRows(t, c, fmt.Sprintf("SELECT v FROM t AS OF '%d'", past), "[[10]]")

	// A dropped table is still there in the past.
	mustExec(t, c, "DROP TABLE t")
	expectCode(t, c, "SELECT v FROM t", 1146, "")
	expectRows(t, c, fmt.Sprintf("SELECT v FROM t AS OF %d", past), "[[10]]")
	waitMinActive(t, db, "after refused statements", func(ts kv.Timestamp) bool { return ts == 0 })
}

func TestAsOfHelpers(t *testing.T) {
	for in, want := range map[string]int{"+00:00": 0, "+05:30": 19800, "-08:00": -28800, "-1:00": -3600} {
		if got, ok := parseMySQLOffset(in); !ok || got != want {
			t.Errorf("parseMySQLOffset(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "UTC", "05:30", "+5", "+05:3", "+15:00", "+05:60"} {
		if _, ok := parseMySQLOffset(in); ok {
			t.Errorf("parseMySQLOffset(%q) accepted", in)
		}
	}
	for in, want := range map[string]bool{
		"SELECT * FROM t AS OF 5": true, "select * from t as\nof 5": true, "of": true,
		"SELECT offset FROM proof": false, "SELECT 1": false, "SELECT * FROM t_of": false,
	} {
		if got := hasWordOf(in); got != want {
			t.Errorf("hasWordOf(%q) = %v", in, got)
		}
	}
}
