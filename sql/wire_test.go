package qsql

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
)

// setupShop creates the customers/orders schema used by several tests.
func setupShop(t *testing.T, db *sql.DB) {
	t.Helper()
	mustExec(t, db,
		"CREATE DATABASE shop",
		"USE shop",
		"CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100), UNIQUE KEY email_uq (email))",
		`CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT,
			amount DECIMAL(10,2) NOT NULL DEFAULT 0, note VARCHAR(5),
			CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers(id),
			CONSTRAINT amount_positive CHECK (amount >= 0))`,
		"INSERT INTO customers VALUES (1, 'ann', 'ann@x'), (2, 'bob', NULL)",
	)
}

// TestErrorCodes checks each MySQL error code a client relies on, through
// a real driver connection.
func TestErrorCodes(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	setupShop(t, db)
	mustExec(t, db, "INSERT INTO orders (customer_id, amount) VALUES (1, 10)")
	cases := []struct {
		stmt string
		code uint16
	}{
		{"SELECT nosuchcol FROM customers", 1054},
		{"SELEC 1", 1064},
		{"SELECT * FROM nosuchtable", 1146},
		{"INSERT INTO customers VALUES (1, 'dup', NULL)", 1062},
		{"INSERT INTO customers VALUES (9, 'dupmail', 'ann@x')", 1062},
		{"INSERT INTO orders (customer_id, amount) VALUES (42, 1)", 1452},
		{"DELETE FROM customers WHERE id = 1", 1451},
		{"INSERT INTO orders (customer_id, amount) VALUES (1, -5)", 3819},
		{"INSERT INTO customers VALUES (5, NULL, NULL)", 1048},
		{"INSERT INTO customers (id) VALUES (6)", 1364},
		{"INSERT INTO orders (customer_id, amount, note) VALUES (1, 1, 'toolongvalue')", 1406},
		{"USE nosuchdb", 1049},
		{"CREATE TABLE customers (x INT)", 1050},
		{"DROP TABLE customers", 1451},
		{"INSERT INTO customers VALUES (100000000000, 'big', NULL)", 1264},
	}
	for _, tc := range cases {
		_, err := db.Exec(tc.stmt)
		if got := mysqlCode(err); got != tc.code {
			t.Errorf("%s: got error %v (code %d), want code %d", tc.stmt, err, got, tc.code)
		}
	}
}

func TestForeignKeyActions(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db,
		"CREATE DATABASE f", "USE f",
		"CREATE TABLE p (id INT PRIMARY KEY)",
		"CREATE TABLE cc (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p(id) ON DELETE CASCADE ON UPDATE CASCADE)",
		"CREATE TABLE cn (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p(id) ON DELETE SET NULL ON UPDATE CASCADE)",
		"INSERT INTO p VALUES (1), (2)",
		"INSERT INTO cc VALUES (10, 1), (11, 2)",
		"INSERT INTO cn VALUES (20, 1), (21, 2)",
		"DELETE FROM p WHERE id = 1",
		"UPDATE p SET id = 3 WHERE id = 2",
	)
	if got := fmt.Sprint(queryStrings(t, db, "SELECT id, pid FROM cc ORDER BY id")); got != "[[11 3]]" {
		t.Errorf("cascade: got %s", got)
	}
	if got := fmt.Sprint(queryStrings(t, db, "SELECT id, pid FROM cn ORDER BY id")); got != "[[20 NULL] [21 3]]" {
		t.Errorf("set null: got %s", got)
	}
	// RESTRICT (the default) refuses to orphan a child.
	mustExec(t, db, "CREATE TABLE cr (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES p(id))", "INSERT INTO cr VALUES (30, 3)")
	if _, err := db.Exec("UPDATE p SET id = 4 WHERE id = 3"); mysqlCode(err) != 1451 {
		t.Errorf("restrict update: want 1451, got %v", err)
	}
	if _, err := db.Exec("INSERT INTO cr VALUES (31, 99)"); mysqlCode(err) != 1452 {
		t.Errorf("missing parent: want 1452, got %v", err)
	}
}

func TestTransactionsAndSavepoints(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db, "CREATE DATABASE x")
	db = connect(t, c.srv, "x")
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cx := conn2exec{ctx, conn}
	mustExec(t, conn2exec{ctx, conn},
		"BEGIN",
		"INSERT INTO t VALUES (1, 1)",
		"SAVEPOINT a",
		"INSERT INTO t VALUES (2, 2)",
		"ROLLBACK TO SAVEPOINT a",
		"INSERT INTO t VALUES (3, 3)",
		"COMMIT",
		"BEGIN",
		"INSERT INTO t VALUES (4, 4)",
		"ROLLBACK",
	)
	if got := fmt.Sprint(queryStrings(t, cx, "SELECT id FROM t ORDER BY id")); got != "[[1] [3]]" {
		t.Fatalf("got %s", got)
	}
	// Statement atomicity inside a transaction: the failing multi-row
	// insert leaves nothing, the transaction goes on.
	mustExec(t, conn2exec{ctx, conn}, "BEGIN")
	if _, err := conn.ExecContext(ctx, "INSERT INTO t VALUES (5, 5), (1, 9)"); mysqlCode(err) != 1062 {
		t.Fatalf("want 1062, got %v", err)
	}
	mustExec(t, conn2exec{ctx, conn}, "INSERT INTO t VALUES (6, 6)", "COMMIT")
	if got := fmt.Sprint(queryStrings(t, cx, "SELECT id FROM t ORDER BY id")); got != "[[1] [3] [6]]" {
		t.Fatalf("statement atomicity: got %s", got)
	}
}

type conn2exec struct {
	ctx  context.Context
	conn *sql.Conn
}

func (c conn2exec) Exec(q string, args ...any) (sql.Result, error) {
	return c.conn.ExecContext(c.ctx, q, args...)
}

func (c conn2exec) Query(q string, args ...any) (*sql.Rows, error) {
	return c.conn.QueryContext(c.ctx, q, args...)
}

func TestAutoIncrementAndPrepared(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	setupShop(t, db)
	stmt, err := db.Prepare("INSERT INTO orders (customer_id, amount) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	var ids []int64
	for i := 0; i < 3; i++ {
		res, err := stmt.Exec(1, 5+i)
		if err != nil {
			t.Fatal(err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("auto increment ids %v", ids)
	}
	mustExec(t, db, "INSERT INTO orders (id, customer_id, amount) VALUES (50, 2, 1)", "INSERT INTO orders (customer_id, amount) VALUES (2, 2)")
	q, err := db.Prepare("SELECT id, amount FROM orders WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var id int
	var amount string
	if err := q.QueryRow(51).Scan(&id, &amount); err != nil {
		t.Fatalf("auto increment after explicit 50: %v", err)
	}
	if amount != "2.00" {
		t.Fatalf("amount %s", amount)
	}
}

func TestAlterTableAndViews(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db,
		"CREATE DATABASE a", "USE a",
		"CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))",
		"INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'y')",
		"ALTER TABLE t ADD COLUMN score INT NOT NULL DEFAULT 7",
		"ALTER TABLE t ADD INDEX name_idx (name)",
		"ALTER TABLE t MODIFY COLUMN score BIGINT",
		"CREATE VIEW v AS SELECT id, score FROM t WHERE name = 'y'",
	)
	if got := fmt.Sprint(queryStrings(t, db, "SELECT * FROM v ORDER BY id")); got != "[[2 7] [3 7]]" {
		t.Fatalf("view: got %s", got)
	}
	if _, err := db.Exec("ALTER TABLE t ADD UNIQUE INDEX name_uq (name)"); mysqlCode(err) != 1062 {
		t.Fatalf("unique backfill over duplicates: want 1062, got %v", err)
	}
	mustExec(t, db, "ALTER TABLE t DROP INDEX name_idx", "ALTER TABLE t DROP COLUMN name")
	if got := fmt.Sprint(queryStrings(t, db, "SELECT id, score FROM t ORDER BY id DESC")); got != "[[3 7] [2 7] [1 7]]" {
		t.Fatalf("after drop: got %s", got)
	}
	mustExec(t, db, "RENAME TABLE t TO t2", "DROP VIEW v", "TRUNCATE TABLE t2")
	if got := fmt.Sprint(queryStrings(t, db, "SELECT COUNT(*) FROM t2")); got != "[[0]]" {
		t.Fatalf("truncate: got %s", got)
	}
}

func TestIndexRangesAndKeyless(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db,
		"CREATE DATABASE r", "USE r",
		"CREATE TABLE t (a INT, b VARCHAR(10), c INT, PRIMARY KEY (a, b), KEY c_idx (c))",
		"INSERT INTO t VALUES (1,'a',10),(1,'b',NULL),(2,'a',20),(3,'c',30),(4,'d',NULL)",
		"CREATE TABLE k (x INT, y INT)",
		"INSERT INTO k VALUES (1,1),(1,1),(2,2)",
		"DELETE FROM k WHERE x = 1 LIMIT 1",
		"UPDATE k SET y = 5 WHERE x = 2",
	)
	cases := []struct{ q, want string }{
		{"SELECT a, b FROM t WHERE a = 1 ORDER BY b", "[[1 a] [1 b]]"},
		{"SELECT a, b FROM t WHERE a > 1 AND a <= 3 ORDER BY a", "[[2 a] [3 c]]"},
		{"SELECT a FROM t WHERE c IS NULL ORDER BY a", "[[1] [4]]"},
		{"SELECT a FROM t WHERE c >= 20 ORDER BY c DESC", "[[3] [2]]"},
		{"SELECT a FROM t WHERE c < 20 ORDER BY a", "[[1]]"},
		{"SELECT a, b FROM t WHERE a = 1 AND b = 'b'", "[[1 b]]"},
		{"SELECT a FROM t WHERE a IN (2, 4) ORDER BY a", "[[2] [4]]"},
		{"SELECT x, y FROM k ORDER BY x", "[[1 1] [2 5]]"},
		{"SELECT b FROM t WHERE b LIKE '%c' ORDER BY b", "[[c]]"},
	}
	for _, tc := range cases {
		if got := fmt.Sprint(queryStrings(t, db, tc.q)); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.q, got, tc.want)
		}
	}
}
