package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quorumdb/quorumdb/tests/chaos/checker"
)

// Workload is a client load run through SQL against several nodes at once,
// whose history a checker judges.
type Workload interface {
	Name() string
	// Setup creates the workload's tables (through one node).
	Setup(ctx context.Context, db *sql.DB) error
	// Worker runs one client process until ctx ends, sending to the node
	// clients[process % len(clients)] (and, for withdrawals, the next one).
	Worker(ctx context.Context, rec *Recorder, process int, clients []Client, rng *rand.Rand)
	// Final reads the end state through every node (after all faults are
	// healed) and records it.
	Final(ctx context.Context, rec *Recorder, clients []Client)
	// Check judges the history.
	Check(ops []checker.Op) []checker.Result
	// CommitFs are the op kinds that count as commits for availability.
	CommitFs() []string
	// Visible says whether an unknown write op's effect is in the final
	// state (nil when the workload cannot tell).
	Visible(ops []checker.Op) func(checker.Op) bool
}

// Client is a SQL handle to one node.
type Client struct {
	Node string
	DB   *sql.DB
}

// Recorder collects a history; safe for concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []checker.Op
}

// NewRecorder starts the clock of a history.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is nanoseconds since the start.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add appends a completed op.
func (r *Recorder) Add(op checker.Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops is a copy of the history.
func (r *Recorder) Ops() []checker.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]checker.Op(nil), r.ops...)
}

// opTimeout bounds one operation; past it the outcome is unknown.
const opTimeout = 5 * time.Second

// definiteFailure reports whether err certainly means the transaction did
// not commit: a serialization failure or lock wait timeout (MySQL 1213,
// 1205), or a connection that was never established.
func definiteFailure(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	return false
}

// outcomeOf classifies the error of a commit (or an autocommit write).
// Before the commit is sent, any error is a failure (writes are buffered
// until COMMIT); pass beforeCommit for those.
func outcomeOf(err error, beforeCommit bool) checker.Outcome {
	switch {
	case err == nil:
		return checker.OK
	case beforeCommit || definiteFailure(err):
		return checker.Fail
	default:
		return checker.Unknown
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// stepErr renders a transaction's error, saying whether COMMIT returned it.
func stepErr(err error, atCommit bool) string {
	if err != nil && atCommit {
		return "at COMMIT: " + errString(err)
	}
	return errString(err)
}

// txnStep runs fn in a transaction and commits; it returns the error and
// whether it came from the COMMIT itself.
func txnStep(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) (err error, atCommit bool) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err, false
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err, false
	}
	return tx.Commit(), true
}

// waitBackoff pauses a worker after an error so a down node is not hammered.
func waitBackoff(ctx context.Context, rng *rand.Rand) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(20+rng.IntN(80)) * time.Millisecond):
	}
}

// readAll retries a final read until it succeeds or d passes, so a node
// still catching up after the last heal gets its chance.
func readAll(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	return waitFor(ctx, d, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		return fn(cctx)
	})
}

// finalRounds reads the end state through every node until all the reads
// agree or d passes, and records the last round. Reads may differ for a
// moment: a write whose client gave up when the run ended (recorded
// unknown) can still commit between two of them.
func finalRounds(ctx context.Context, rec *Recorder, clients []Client, d time.Duration,
	read func(ctx context.Context, cl Client) checker.Op, render func(checker.Op) string) {
	deadline := time.Now().Add(d)
	for {
		round := make([]checker.Op, 0, len(clients))
		agree := true
		for _, cl := range clients {
			op := read(ctx, cl)
			op.Final = true
			round = append(round, op)
			if op.Outcome != checker.OK || render(op) != render(round[0]) {
				agree = false
			}
		}
		if agree || time.Now().After(deadline) || ctx.Err() != nil {
			for _, op := range round {
				rec.Add(op)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readOp runs one final read with retries and records its outcome.
func readOp(ctx context.Context, rec *Recorder, op checker.Op, fn func(ctx context.Context, op *checker.Op) error) checker.Op {
	op.Invoke = rec.Now()
	err := readAll(ctx, 20*time.Second, func(ctx context.Context) error { return fn(ctx, &op) })
	op.Complete, op.Outcome, op.Err = rec.Now(), outcomeOf(err, true), errString(err)
	return op
}

func renderSorted(op checker.Op) string {
	xs := append([]int64(nil), op.Elements...)
	sort.Slice(xs, func(a, b int) bool { return xs[a] < xs[b] })
	return fmt.Sprint(xs)
}

// ---------------------------------------------------------------- bank

// Bank transfers between accounts; each transfer writes a ledger row in
// its own transaction.
type Bank struct {
	Accounts int
	Initial  int64
	mu       sync.Mutex
	nextID   int64
}

func (w *Bank) Name() string { return "bank" }

func (w *Bank) Setup(ctx context.Context, db *sql.DB) error {
	rows := make([]string, w.Accounts)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, %d)", i+1, w.Initial)
	}
	return execAll(ctx, db,
		"CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)",
		"CREATE TABLE ledger (id BIGINT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, amount BIGINT NOT NULL)",
		"INSERT INTO accounts VALUES "+strings.Join(rows, ","))
}

func (w *Bank) id() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextID++
	return w.nextID
}

func (w *Bank) Worker(ctx context.Context, rec *Recorder, process int, clients []Client, rng *rand.Rand) {
	node, db := clients[process%len(clients)].Node, clients[process%len(clients)].DB
	for ctx.Err() == nil {
		if rng.IntN(4) == 0 {
			// Half the reads are stale (AS OF two seconds ago), served by
			// the node's own replica once that time is closed there: their
			// totals must hold like any snapshot's.
			op := checker.Op{Process: process, Node: node, F: "read", Invoke: rec.Now()}
			octx, cancel := context.WithTimeout(ctx, opTimeout)
			bal, err := w.read(octx, db, rng.IntN(2) == 0)
			cancel()
			op.Complete, op.Balances, op.Err = rec.Now(), bal, errString(err)
			op.Outcome = outcomeOf(err, true)
			if ctx.Err() != nil && err != nil {
				return
			}
			rec.Add(op)
			if err != nil {
				waitBackoff(ctx, rng)
			}
			continue
		}
		from := 1 + rng.IntN(w.Accounts)
		to := 1 + rng.IntN(w.Accounts-1)
		if to >= from {
			to++
		}
		op := checker.Op{Process: process, Node: node, F: "transfer", ID: w.id(), From: from, To: to, Amount: int64(1 + rng.IntN(int(w.Initial/2)))}
		op.Invoke = rec.Now()
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		err, atCommit := txnStep(octx, db, func(tx *sql.Tx) error {
			var fb, tb int64
			if err := tx.QueryRowContext(octx, "SELECT balance FROM accounts WHERE id = ?", from).Scan(&fb); err != nil {
				return err
			}
			if err := tx.QueryRowContext(octx, "SELECT balance FROM accounts WHERE id = ?", to).Scan(&tb); err != nil {
				return err
			}
			if fb < op.Amount {
				return nil
			}
			op.Applied = true
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"UPDATE accounts SET balance = ? WHERE id = ?", []any{fb - op.Amount, from}},
				{"UPDATE accounts SET balance = ? WHERE id = ?", []any{tb + op.Amount, to}},
				{"INSERT INTO ledger VALUES (?, ?, ?, ?)", []any{op.ID, from, to, op.Amount}},
			} {
				if _, err := tx.ExecContext(octx, q.sql, q.args...); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		op.Complete, op.Err = rec.Now(), stepErr(err, atCommit)
		op.Outcome = outcomeOf(err, !atCommit)
		rec.Add(op)
		if err != nil {
			waitBackoff(ctx, rng)
		}
	}
}

// read returns every balance, now or, when stale, AS OF two seconds ago.
func (w *Bank) read(ctx context.Context, db *sql.DB, stale bool) (map[int]int64, error) {
	q := "SELECT id, balance FROM accounts"
	if stale {
		q += " AS OF NOW(3) - INTERVAL 2 SECOND"
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var id int
		var b int64
		if err := rows.Scan(&id, &b); err != nil {
			return nil, err
		}
		out[id] = b
	}
	return out, rows.Err()
}

func (w *Bank) Final(ctx context.Context, rec *Recorder, clients []Client) {
	finalRounds(ctx, rec, clients, 20*time.Second, func(ctx context.Context, cl Client) checker.Op {
		return readOp(ctx, rec, checker.Op{Node: cl.Node, F: "read"}, func(ctx context.Context, op *checker.Op) error {
			var err error
			op.Balances, err = w.read(ctx, cl.DB, false)
			return err
		})
	}, func(op checker.Op) string { return fmt.Sprint(op.Balances) })
	op := readOp(ctx, rec, checker.Op{Node: clients[0].Node, F: "ledger", Final: true}, func(ctx context.Context, op *checker.Op) error {
		var err error
		op.Elements, err = queryInts(ctx, clients[0].DB, "SELECT id FROM ledger")
		return err
	})
	rec.Add(op)
}

func (w *Bank) Check(ops []checker.Op) []checker.Result {
	res := []checker.Result{checker.Bank(checker.BankModel{Accounts: w.Accounts, Initial: w.Initial}, ops)}
	return append(res, convergence("bank", ops, func(op checker.Op) string { return fmt.Sprint(op.Balances) }))
}

func (w *Bank) CommitFs() []string { return []string{"transfer"} }

func (w *Bank) Visible(ops []checker.Op) func(checker.Op) bool {
	in := map[int64]bool{}
	for _, op := range ops {
		if op.F == "ledger" {
			for _, id := range op.Elements {
				in[id] = true
			}
		}
	}
	return func(op checker.Op) bool { return in[op.ID] }
}

// convergence compares the final reads taken through every node.
func convergence(name string, ops []checker.Op, render func(checker.Op) string) checker.Result {
	r := checker.Result{Checker: name + "-convergence", Valid: true}
	var ref *checker.Op
	for i := range ops {
		op := &ops[i]
		if !op.Final || op.Outcome != checker.OK || op.F != "read" {
			continue
		}
		if ref == nil {
			ref = op
			continue
		}
		if render(*op) != render(*ref) {
			r.Valid = false
			r.Anomalies = append(r.Anomalies, checker.Anomaly{Kind: "divergent-replicas",
				Detail: fmt.Sprintf("final read via %s differs from the one via %s", op.Node, ref.Node)})
		}
	}
	return r
}

// ---------------------------------------------------------------- register

// Register reads, writes and compare-and-sets single-row registers.
type Register struct {
	Keys int
}

func (w *Register) Name() string { return "register" }

func (w *Register) Setup(ctx context.Context, db *sql.DB) error {
	rows := make([]string, w.Keys)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, 0)", i)
	}
	return execAll(ctx, db, "CREATE TABLE registers (k INT PRIMARY KEY, v BIGINT NOT NULL)",
		"INSERT INTO registers VALUES "+strings.Join(rows, ","))
}

func (w *Register) Worker(ctx context.Context, rec *Recorder, process int, clients []Client, rng *rand.Rand) {
	node, db := clients[process%len(clients)].Node, clients[process%len(clients)].DB
	counter := int64(0)
	last := map[int]int64{}
	for ctx.Err() == nil {
		key := rng.IntN(w.Keys)
		op := checker.Op{Process: process, Node: node, Key: key, Invoke: rec.Now()}
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		var err error
		switch x := rng.IntN(4); {
		case x < 2:
			op.F = "read"
			var v int64
			err = db.QueryRowContext(octx, "SELECT v FROM registers WHERE k = ?", key).Scan(&v)
			if errors.Is(err, sql.ErrNoRows) {
				v, err = -1, nil
			}
			op.Value = v
			if err == nil {
				last[key] = v
			}
			op.Outcome = outcomeOf(err, true)
		case x == 2:
			counter++
			op.F, op.Value = "write", int64(process+1)*1_000_000+counter
			_, err = db.ExecContext(octx, "UPDATE registers SET v = ? WHERE k = ?", op.Value, key)
			op.Outcome = outcomeOf(err, false)
		default:
			counter++
			op.F, op.Expect, op.Value = "cas", last[key], int64(process+1)*1_000_000+counter
			var res sql.Result
			res, err = db.ExecContext(octx, "UPDATE registers SET v = ? WHERE k = ? AND v = ?", op.Value, key, op.Expect)
			if err == nil {
				n, rerr := res.RowsAffected()
				op.Applied, err = n == 1, rerr
			}
			op.Outcome = outcomeOf(err, false)
		}
		cancel()
		op.Complete, op.Err = rec.Now(), errString(err)
		if ctx.Err() != nil && err != nil && op.F == "read" {
			return
		}
		rec.Add(op)
		if err != nil {
			waitBackoff(ctx, rng)
		}
	}
}

func (w *Register) Final(ctx context.Context, rec *Recorder, clients []Client) {
	finalRounds(ctx, rec, clients, 20*time.Second, func(ctx context.Context, cl Client) checker.Op {
		return readOp(ctx, rec, checker.Op{Node: cl.Node, F: "read"}, func(ctx context.Context, op *checker.Op) error {
			var err error
			op.Elements, err = queryInts(ctx, cl.DB, "SELECT v FROM registers ORDER BY k")
			return err
		})
	}, func(op checker.Op) string { return fmt.Sprint(op.Elements) })
}

func (w *Register) Check(ops []checker.Op) []checker.Result {
	return []checker.Result{
		checker.Register(0, ops, 60*time.Second),
		convergence("register", ops, func(op checker.Op) string { return fmt.Sprint(op.Elements) }),
	}
}

func (w *Register) CommitFs() []string { return []string{"write", "cas"} }

func (w *Register) Visible([]checker.Op) func(checker.Op) bool { return nil }

// ---------------------------------------------------------------- set

// Set inserts unique elements into a keyless table (so a doubly applied
// insert shows as a duplicate row).
type Set struct {
	mu   sync.Mutex
	next int64
}

func (w *Set) Name() string { return "set" }

func (w *Set) Setup(ctx context.Context, db *sql.DB) error {
	return execAll(ctx, db, "CREATE TABLE elems (v BIGINT NOT NULL)")
}

func (w *Set) Worker(ctx context.Context, rec *Recorder, process int, clients []Client, rng *rand.Rand) {
	node, db := clients[process%len(clients)].Node, clients[process%len(clients)].DB
	for ctx.Err() == nil {
		w.mu.Lock()
		w.next++
		v := w.next
		w.mu.Unlock()
		op := checker.Op{Process: process, Node: node, F: "add", Value: v, Invoke: rec.Now()}
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := db.ExecContext(octx, "INSERT INTO elems (v) VALUES (?)", v)
		cancel()
		op.Complete, op.Outcome, op.Err = rec.Now(), outcomeOf(err, false), errString(err)
		rec.Add(op)
		if err != nil {
			waitBackoff(ctx, rng)
		}
	}
}

func (w *Set) Final(ctx context.Context, rec *Recorder, clients []Client) {
	finalRounds(ctx, rec, clients, 20*time.Second, func(ctx context.Context, cl Client) checker.Op {
		return readOp(ctx, rec, checker.Op{Node: cl.Node, F: "read"}, func(ctx context.Context, op *checker.Op) error {
			var err error
			op.Elements, err = queryInts(ctx, cl.DB, "SELECT v FROM elems")
			return err
		})
	}, renderSorted)
}

func (w *Set) Check(ops []checker.Op) []checker.Result { return []checker.Result{checker.Set(ops)} }

func (w *Set) CommitFs() []string { return []string{"add"} }

func (w *Set) Visible(ops []checker.Op) func(checker.Op) bool {
	in := map[int64]bool{}
	for _, op := range ops {
		if op.F == "read" && op.Final {
			for _, e := range op.Elements {
				in[e] = true
			}
		}
	}
	return func(op checker.Op) bool { return in[op.Value] }
}

// ---------------------------------------------------------------- list-append

// ListAppend runs transactions of reads and appends over a few keys; each
// key is a row whose text column is a comma-separated list.
type ListAppend struct {
	Keys int
	mu   sync.Mutex
	next int64
}

func (w *ListAppend) Name() string { return "list-append" }

func (w *ListAppend) Setup(ctx context.Context, db *sql.DB) error {
	rows := make([]string, w.Keys)
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, '')", i)
	}
	return execAll(ctx, db, "CREATE TABLE lists (k INT PRIMARY KEY, v TEXT NOT NULL)",
		"INSERT INTO lists VALUES "+strings.Join(rows, ","))
}

func parseList(s string) ([]int64, error) {
	var out []int64
	for _, p := range strings.Split(s, ",") {
		if p == "" {
			continue
		}
		var v int64
		if _, err := fmt.Sscan(p, &v); err != nil {
			return nil, fmt.Errorf("chaos: list element %q: %w", p, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func readList(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, key int) ([]int64, error) {
	var s string
	if err := q.QueryRowContext(ctx, "SELECT v FROM lists WHERE k = ?", key).Scan(&s); err != nil {
		return nil, err
	}
	return parseList(s)
}

func (w *ListAppend) Worker(ctx context.Context, rec *Recorder, process int, clients []Client, rng *rand.Rand) {
	node, db := clients[process%len(clients)].Node, clients[process%len(clients)].DB
	for ctx.Err() == nil {
		n := 1 + rng.IntN(4)
		mops := make([]checker.Mop, n)
		for i := range mops {
			mops[i].Key = rng.IntN(w.Keys)
			if rng.IntN(2) == 0 {
				mops[i].F = "r"
			} else {
				w.mu.Lock()
				w.next++
				mops[i].F, mops[i].Value = "append", w.next
				w.mu.Unlock()
			}
		}
		op := checker.Op{Process: process, Node: node, F: "txn", Invoke: rec.Now()}
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		err, atCommit := txnStep(octx, db, func(tx *sql.Tx) error {
			for i := range mops {
				m := &mops[i]
				if m.F == "r" {
					l, err := readList(octx, tx, m.Key)
					if err != nil {
						return err
					}
					m.List = l
					continue
				}
				if _, err := tx.ExecContext(octx, "UPDATE lists SET v = CONCAT(v, ',', ?) WHERE k = ?", fmt.Sprint(m.Value), m.Key); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		op.Mops = mops
		op.Complete, op.Outcome, op.Err = rec.Now(), outcomeOf(err, !atCommit), stepErr(err, atCommit)
		rec.Add(op)
		if err != nil {
			waitBackoff(ctx, rng)
		}
	}
}

func (w *ListAppend) Final(ctx context.Context, rec *Recorder, clients []Client) {
	finalRounds(ctx, rec, clients, 20*time.Second, func(ctx context.Context, cl Client) checker.Op {
		return readOp(ctx, rec, checker.Op{Node: cl.Node, F: "txn"}, func(ctx context.Context, op *checker.Op) error {
			op.Mops = nil
			err, _ := txnStep(ctx, cl.DB, func(tx *sql.Tx) error {
				for k := 0; k < w.Keys; k++ {
					l, err := readList(ctx, tx, k)
					if err != nil {
						return err
					}
					op.Mops = append(op.Mops, checker.Mop{F: "r", Key: k, List: l})
				}
				return nil
			})
			return err
		})
	}, func(op checker.Op) string { return fmt.Sprint(op.Mops) })
}

func (w *ListAppend) Check(ops []checker.Op) []checker.Result {
	res := []checker.Result{checker.ListAppend(ops)}
	// Convergence: the final transactions through every node agree.
	var finals []checker.Op
	for _, op := range ops {
		if op.Final && op.Outcome == checker.OK {
			o := op
			o.F = "read"
			finals = append(finals, o)
		}
	}
	return append(res, convergence("list-append", finals, func(op checker.Op) string { return fmt.Sprint(op.Mops) }))
}

func (w *ListAppend) CommitFs() []string { return []string{"txn"} }

func (w *ListAppend) Visible(ops []checker.Op) func(checker.Op) bool {
	in := map[int64]bool{}
	for _, op := range ops {
		if op.Final {
			for _, m := range op.Mops {
				for _, v := range m.List {
					in[v] = true
				}
			}
		}
	}
	return func(op checker.Op) bool {
		for _, m := range op.Mops {
			if m.F == "append" && in[m.Value] {
				return true
			}
		}
		return false
	}
}

// ---------------------------------------------------------------- withdrawals

// Withdrawals runs rounds of the seed's example: 15 EUR on an account, two
// concurrent 10 EUR withdrawals through two different nodes.
type Withdrawals struct {
	mu    sync.Mutex
	round int64
	nodes []string
}

func (w *Withdrawals) Name() string { return "withdrawals" }

func (w *Withdrawals) Setup(ctx context.Context, db *sql.DB) error {
	return execAll(ctx, db, "CREATE TABLE wallet (id BIGINT PRIMARY KEY, eur BIGINT NOT NULL)")
}

// Worker runs rounds until ctx ends: the round's account is created through
// this process's node, the two withdrawals go through it and the next node.
func (w *Withdrawals) Worker(ctx context.Context, rec *Recorder, process int, clients []Client, rng *rand.Rand) {
	ca, cb := clients[process%len(clients)], clients[(process+1)%len(clients)]
	nodeA, nodeB, a, b := ca.Node, cb.Node, ca.DB, cb.DB
	for ctx.Err() == nil {
		w.mu.Lock()
		w.round++
		id := w.round
		w.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := a.ExecContext(sctx, "INSERT INTO wallet VALUES (?, 15)", id)
		cancel()
		if err != nil {
			// Unknown whether the account exists: skip the round (its ID is
			// never withdrawn from, so nothing is checked).
			waitBackoff(ctx, rng)
			continue
		}
		var wg sync.WaitGroup
		for i, side := range []struct {
			node string
			db   *sql.DB
		}{{nodeA, a}, {nodeB, b}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				op := checker.Op{Process: process*2 + i, Node: side.node, F: "withdraw", ID: id, Amount: 10, Invoke: rec.Now()}
				wctx, cancel := context.WithTimeout(ctx, opTimeout)
				defer cancel()
				for attempt := 0; ; attempt++ {
					op.Applied = false
					err, atCommit := txnStep(wctx, side.db, func(tx *sql.Tx) error {
						var bal int64
						if err := tx.QueryRowContext(wctx, "SELECT eur FROM wallet WHERE id = ?", id).Scan(&bal); err != nil {
							return err
						}
						if bal < 10 {
							return nil
						}
						op.Applied = true
						_, err := tx.ExecContext(wctx, "UPDATE wallet SET eur = ? WHERE id = ?", bal-10, id)
						return err
					})
					op.Outcome, op.Err = outcomeOf(err, !atCommit), stepErr(err, atCommit)
					if op.Outcome == checker.Fail && definiteFailure(err) && wctx.Err() == nil && attempt < 20 {
						continue // a serialization failure: try again, as an application would
					}
					break
				}
				op.Complete = rec.Now()
				rec.Add(op)
			}()
		}
		wg.Wait()
		op := checker.Op{Process: process * 2, Node: nodeA, F: "balance", ID: id, Invoke: rec.Now()}
		err = readAll(ctx, 15*time.Second, func(ctx context.Context) error {
			return a.QueryRowContext(ctx, "SELECT eur FROM wallet WHERE id = ?", id).Scan(&op.Value)
		})
		op.Complete, op.Outcome, op.Err = rec.Now(), outcomeOf(err, true), errString(err)
		rec.Add(op)
	}
}

func (w *Withdrawals) Final(context.Context, *Recorder, []Client) {}

func (w *Withdrawals) Check(ops []checker.Op) []checker.Result {
	return []checker.Result{checker.Withdrawals(15, 10, ops)}
}

func (w *Withdrawals) CommitFs() []string { return []string{"withdraw"} }

func (w *Withdrawals) Visible([]checker.Op) func(checker.Op) bool { return nil }

// ---------------------------------------------------------------- helpers

func execAll(ctx context.Context, db *sql.DB, stmts ...string) error {
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("chaos: %q: %w", q, err)
		}
	}
	return nil
}

func queryInts(ctx context.Context, db *sql.DB, q string) ([]int64, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
