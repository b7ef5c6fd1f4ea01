// Package workload holds the SQL workloads the demo runs live and the tests
// reuse: the bank (transfers among accounts through every node, with an
// invariant that the total never changes) and the seed article's example of
// two concurrent 10 EUR withdrawals from a 15 EUR account.
//
// Workloads speak only SQL over the MySQL protocol (go-sql-driver/mysql), the
// way an application would.
package workload

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Open returns a database handle for a node's SQL address.
func Open(addr, database string) (*sql.DB, error) {
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/%s?timeout=5s&readTimeout=30s&writeTimeout=30s", addr, database))
	if err != nil {
		return nil, fmt.Errorf("workload: open %s: %w", addr, err)
	}
	return db, nil
}

// IsRetryable reports whether err is a serialization failure (1213) or lock
// wait timeout (1205): the transaction did not commit and may be retried.
func IsRetryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// Bank is a set of accounts whose balances always sum to the same total.
type Bank struct {
	// DBs are handles to different nodes; transfers rotate over them.
	DBs      []*sql.DB
	Accounts int
	Initial  int

	Transfers atomic.Int64 // committed
	Retries   atomic.Int64 // aborted by a serialization failure, retried
	Failures  atomic.Int64 // other errors (node down, timeout)

	lastFailure atomic.Value // string
}

// LastFailure describes the most recent failed transfer ("" if none).
func (b *Bank) LastFailure() string {
	s, _ := b.lastFailure.Load().(string)
	return s
}

// Setup creates bank.accounts with Accounts rows of Initial each (dropping
// any earlier table).
func (b *Bank) Setup(ctx context.Context) error {
	db := b.DBs[0]
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS bank",
		"DROP TABLE IF EXISTS bank.accounts",
		"CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL, CHECK (balance >= 0))",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("workload: bank setup %q: %w", q, err)
		}
	}
	var rows []string
	for i := 1; i <= b.Accounts; i++ {
		rows = append(rows, fmt.Sprintf("(%d, %d)", i, b.Initial))
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO bank.accounts VALUES "+strings.Join(rows, ",")); err != nil {
		return fmt.Errorf("workload: bank setup insert: %w", err)
	}
	return nil
}

// Total reads every balance in one transaction and returns their sum and
// the number of accounts.
func (b *Bank) Total(ctx context.Context, db *sql.DB) (total int64, accounts int, err error) {
	err = db.QueryRowContext(ctx, "SELECT COALESCE(SUM(balance), 0), COUNT(*) FROM bank.accounts").Scan(&total, &accounts)
	if err != nil {
		return 0, 0, fmt.Errorf("workload: bank total: %w", err)
	}
	return total, accounts, nil
}

// Transfer moves a random amount between two random accounts in one
// explicit transaction (read both balances, write both), retrying on
// serialization failures. It refuses to overdraw.
func (b *Bank) Transfer(ctx context.Context, db *sql.DB, rng *rand.Rand) error {
	from := 1 + rng.IntN(b.Accounts)
	to := 1 + rng.IntN(b.Accounts-1)
	if to >= from {
		to++
	}
	amount := int64(1 + rng.IntN(b.Initial/2+1))
	for attempt := 0; ; attempt++ {
		err := b.transferOnce(ctx, db, from, to, amount)
		if err == nil {
			b.Transfers.Add(1)
			return nil
		}
		if !IsRetryable(err) || attempt >= 20 || ctx.Err() != nil {
			if ctx.Err() == nil {
				b.Failures.Add(1)
				b.lastFailure.Store(err.Error())
			}
			return err
		}
		b.Retries.Add(1)
		time.Sleep(time.Duration(1+rng.IntN(5<<attempt%50)) * time.Millisecond)
	}
}

func (b *Bank) transferOnce(ctx context.Context, db *sql.DB, from, to int, amount int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var fromBal, toBal int64
	if err := tx.QueryRowContext(ctx, "SELECT balance FROM bank.accounts WHERE id = ?", from).Scan(&fromBal); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, "SELECT balance FROM bank.accounts WHERE id = ?", to).Scan(&toBal); err != nil {
		return err
	}
	if fromBal < amount {
		return tx.Commit() // nothing to move; a read-only transaction
	}
	if _, err := tx.ExecContext(ctx, "UPDATE bank.accounts SET balance = ? WHERE id = ?", fromBal-amount, from); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE bank.accounts SET balance = ? WHERE id = ?", toBal+amount, to); err != nil {
		return err
	}
	return tx.Commit()
}

// Run runs workers transfer loops (spread over the DBs) until ctx ends and
// returns the first error that was not a retryable conflict or the end of ctx.
func (b *Bank) Run(ctx context.Context, workers int, seed uint64) error {
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			db := b.DBs[w%len(b.DBs)]
			for ctx.Err() == nil {
				if err := b.Transfer(ctx, db, rng); err != nil && ctx.Err() == nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

// WithdrawalResult is the outcome of the seed article's example.
type WithdrawalResult struct {
	Succeeded    int   // withdrawals that committed
	Refused      int   // withdrawals that saw too little money and gave up
	FinalBalance int64 // the account's balance afterwards
}

// TwoWithdrawals puts 15 EUR on an account, then withdraws 10 EUR twice at
// the same moment, each through its own node (a and b), each as a
// read-check-write transaction retried on serialization failures. On a
// correct database exactly one succeeds and 5 EUR remain.
func TwoWithdrawals(ctx context.Context, a, b *sql.DB) (WithdrawalResult, error) {
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS bank",
		"CREATE TABLE IF NOT EXISTS bank.wallet (owner VARCHAR(32) PRIMARY KEY, eur BIGINT NOT NULL)",
		"REPLACE INTO bank.wallet VALUES ('customer', 15)",
	} {
		if _, err := a.ExecContext(ctx, q); err != nil {
			return WithdrawalResult{}, fmt.Errorf("workload: withdrawal setup %q: %w", q, err)
		}
	}
	withdraw := func(db *sql.DB, start <-chan struct{}) (bool, error) {
		<-start
		for attempt := 0; attempt < 50; attempt++ {
			ok, err := withdrawOnce(ctx, db, 10)
			if err == nil {
				return ok, nil
			}
			if !IsRetryable(err) {
				return false, err
			}
			time.Sleep(time.Duration(attempt+1) * time.Millisecond)
		}
		return false, errors.New("workload: withdrawal kept conflicting")
	}
	start := make(chan struct{})
	type out struct {
		ok  bool
		err error
	}
	results := make(chan out, 2)
	for _, db := range []*sql.DB{a, b} {
		go func() {
			ok, err := withdraw(db, start)
			results <- out{ok, err}
		}()
	}
	close(start)
	var res WithdrawalResult
	for i := 0; i < 2; i++ {
		o := <-results
		if o.err != nil {
			return res, o.err
		}
		if o.ok {
			res.Succeeded++
		} else {
			res.Refused++
		}
	}
	if err := a.QueryRowContext(ctx, "SELECT eur FROM bank.wallet WHERE owner = 'customer'").Scan(&res.FinalBalance); err != nil {
		return res, fmt.Errorf("workload: read final balance: %w", err)
	}
	return res, nil
}

func withdrawOnce(ctx context.Context, db *sql.DB, amount int64) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	var bal int64
	if err := tx.QueryRowContext(ctx, "SELECT eur FROM bank.wallet WHERE owner = 'customer'").Scan(&bal); err != nil {
		return false, err
	}
	if bal < amount {
		return false, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, "UPDATE bank.wallet SET eur = ? WHERE owner = 'customer'", bal-amount); err != nil {
		return false, err
	}
	return true, tx.Commit()
}
