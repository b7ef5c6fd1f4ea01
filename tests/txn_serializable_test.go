package tests

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

var txnSeed = flag.Uint64("txn.seed", 1, "seed of the randomized transaction tests")

// TestTxnRandomHistoryIsSerializable runs many concurrent random
// transactions (point reads, scans, writes of unique values) over several
// ranges through three coordinators, records every committed transaction,
// and checks the history's dependency graph for cycles.
func TestTxnRandomHistoryIsSerializable(t *testing.T) {
	s := newLocalKV(t, "k03", "k06", "k09")
	dbs := s.coordinators(t, 3, txn.DBConfig{ValidationWait: 50 * time.Millisecond})
	runRandomHistory(t, dbs, "")
}

// runRandomHistory is the body of the random-history test over coordinators
// dbs, on keys prefix+"k00" … prefix+"k11" (absent at the start).
func runRandomHistory(t *testing.T, dbs []*txn.DB, prefix string) {
	const (
		workers      = 8
		txnsPerWork  = 60
		keys         = 12
		maxOpsPerTxn = 6
	)
	key := func(i int) string { return fmt.Sprintf("%sk%02d", prefix, i) }
	var (
		mu        sync.Mutex
		history   []TxnRecord
		aborted   atomic.Int64
		committed atomic.Int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	auditor := startSnapshotAuditor(ctx, func(i int) *txn.DB { return dbs[i%len(dbs)] }, prefix, *txnSeed)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(*txnSeed, uint64(w)))
			db := dbs[w%len(dbs)]
			for n := 0; n < txnsPerWork; n++ {
				out := randomTxn(ctx, db, rng, fmt.Sprintf("w%d-t%d", w, n), key, keys, maxOpsPerTxn)
				switch {
				case out.err == nil:
					committed.Add(1)
					mu.Lock()
					history = append(history, out.rec)
					mu.Unlock()
				case txn.IsRetryable(out.err):
					aborted.Add(1)
				default:
					t.Errorf("%s: %v", out.rec.Name, out.err)
					return
				}
			}
		}()
	}
	wg.Wait()
	snaps, failed := auditor.stop()
	if t.Failed() {
		return
	}
	t.Logf("seed %d: %d committed, %d aborted; %d AS OF snapshots audited (%d reads failed)", *txnSeed, committed.Load(), aborted.Load(), len(snaps), failed)
	if failed > 0 {
		t.Errorf("%d AS OF snapshot reads failed without faults", failed)
	}
	if err := CheckSnapshots(history, snaps); err != nil {
		t.Fatal(err)
	}
	if committed.Load() < workers*txnsPerWork/4 {
		t.Fatalf("only %d of %d transactions committed", committed.Load(), workers*txnsPerWork)
	}
	if err := CheckSerializable(history); err != nil {
		t.Fatal(err)
	}
}

// snapshotAuditor reads the whole key space under a prefix AS OF recent
// timestamps (up to 1.5 s old: some served by the nearest replica at a
// closed timestamp, some by the leader), through every DB in turn, until
// stopped; CheckSnapshots compares them with the committed history. dbAt
// returns the i-th reader's DB (nil: none right now).
type snapshotAuditor struct {
	cancel context.CancelFunc
	done   chan struct{}
	snaps  []SnapshotRecord
	failed int
}

func startSnapshotAuditor(ctx context.Context, dbAt func(i int) *txn.DB, prefix string, seed uint64) *snapshotAuditor {
	ctx, cancel := context.WithCancel(ctx)
	a := &snapshotAuditor{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		rng := rand.New(rand.NewPCG(seed, 99))
		for i := 0; ctx.Err() == nil; i++ {
			db := dbAt(i)
			if db == nil {
				continue
			}
			now, err := db.Clock().GetTimestamp(ctx)
			if err != nil {
				continue
			}
			asOf := now - kv.MakeTimestamp(uint64(rng.IntN(1500)), 0)
			rows, err := readSnapshot(ctx, db, prefix, asOf)
			if err != nil {
				if ctx.Err() == nil {
					a.failed++
				}
				continue
			}
			a.snaps = append(a.snaps, SnapshotRecord{AsOf: asOf, Rows: rows})
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(5+rng.IntN(20)) * time.Millisecond):
			}
		}
	}()
	return a
}

// stop ends the auditing and returns what it read.
func (a *snapshotAuditor) stop() ([]SnapshotRecord, int) {
	a.cancel()
	<-a.done
	return a.snaps, a.failed
}

func readSnapshot(ctx context.Context, db *txn.DB, prefix string, asOf kv.Timestamp) (map[string]string, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tx, err := db.Begin(rctx, txn.TxnOptions{AsOf: asOf})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	kvs, err := tx.Scan(rctx, []byte(prefix), []byte(prefix+"\xff"), 0, false)
	if err != nil {
		return nil, err
	}
	rows := make(map[string]string, len(kvs))
	for _, r := range kvs {
		rows[string(r.Key)] = string(r.Value)
	}
	return rows, nil
}

// randomTxnOutcome is what one random transaction did.
type randomTxnOutcome struct {
	rec     TxnRecord // CommitTS set when committed
	startTS kv.Timestamp
	// err is nil when the transaction committed; committing tells whether
	// err came from Commit (the outcome may then be unknown) or before it
	// (nothing was written).
	err        error
	committing bool
}

// randomTxn runs one transaction of 1..maxOps random operations on
// key(0..keys-1): point reads, scans (either direction), writes of values
// unique to this transaction, each key written at most once; one in five
// is read-only.
func randomTxn(ctx context.Context, db *txn.DB, rng *rand.Rand, name string, key func(int) string, keys, maxOps int) randomTxnOutcome {
	readOnly := rng.IntN(5) == 0
	out := randomTxnOutcome{rec: TxnRecord{Name: name, Writes: map[string]string{}}}
	tx, err := db.Begin(ctx, txn.TxnOptions{ReadOnly: readOnly})
	if err != nil {
		out.err = err
		return out
	}
	rec := &out.rec
	var opErr error
	for op, nops := 0, 1+rng.IntN(maxOps); op < nops && opErr == nil; op++ {
		switch r := rng.IntN(10); {
		case r < 4:
			k := key(rng.IntN(keys))
			if _, mine := rec.Writes[k]; mine {
				continue // a read of its own write says nothing about others
			}
			v, found, err := tx.Get(ctx, []byte(k))
			opErr = err
			rec.Reads = append(rec.Reads, ReadRecord{Key: k, Value: string(v), Found: found})
		case r < 6:
			a, b := rng.IntN(keys), rng.IntN(keys)
			if a > b {
				a, b = b, a
			}
			start, end := key(a), key(b+1)
			rows, err := tx.Scan(ctx, []byte(start), []byte(end), 0, rng.IntN(2) == 0)
			opErr = err
			sr := ScanRecord{Start: start, End: end, Rows: map[string]string{}}
			for _, r := range rows {
				sr.Rows[string(r.Key)] = string(r.Value)
			}
			rec.Scans = append(rec.Scans, sr)
		default:
			if readOnly {
				continue
			}
			k := key(rng.IntN(keys))
			if _, mine := rec.Writes[k]; mine {
				continue // one write per key per transaction keeps values final
			}
			v := name + "/" + k
			opErr = tx.Put(ctx, []byte(k), []byte(v))
			rec.Writes[k] = v
		}
	}
	if opErr != nil {
		_ = tx.Rollback(ctx)
		out.err = opErr
		return out
	}
	out.committing = true
	out.err = tx.Commit(ctx)
	out.startTS = tx.StartTS()
	if out.err == nil {
		rec.CommitTS = tx.CommitTS()
	}
	return out
}

// TestTxnBankTransfers moves money among accounts on several ranges from many
// clients through three coordinators. Every snapshot read sees the same
// total, no balance goes negative, and the ledger replays to the balances.
func TestTxnBankTransfers(t *testing.T) {
	s := newLocalKV(t, "acct/03", "acct/06", "ledger/")
	var retries atomic.Int64
	// Retries are generous: the test is about invariants, not abort rates
	// (which it logs), and it also runs under the race detector.
	dbs := s.coordinators(t, 3, txn.DBConfig{ValidationWait: 50 * time.Millisecond, MaxRetries: 100,
		Knobs: &txn.TestingKnobs{OnRetry: func(int, error) { retries.Add(1) }}})
	runBank(t, dbs, "", &retries, nil)
}

// runBank is the body of the bank test over coordinators dbs, on keys
// prefix+"acct/…" and prefix+"ledger/…"; retries counts Run's retries if the
// coordinators report them there; onTransfer (optional) is called with the
// number of transfers done after each one.
func runBank(t *testing.T, dbs []*txn.DB, prefix string, retries *atomic.Int64, onTransfer func(done int64)) {
	const (
		accounts  = 9
		initial   = 100
		clients   = 8
		transfers = 25
	)
	acct := func(i int) string { return fmt.Sprintf("%sacct/%02d", prefix, i) }
	acctStart, acctEnd := []byte(prefix+"acct/"), []byte(prefix+"acct0")
	ledgerStart, ledgerEnd := []byte(prefix+"ledger/"), []byte(prefix+"ledger0")
	var setup []string
	for i := 0; i < accounts; i++ {
		setup = append(setup, acct(i), strconv.Itoa(initial))
	}
	putAll(t, dbs[0], setup...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stopAudit := make(chan struct{})
	auditDone := make(chan error, 1)
	go func() {
		audits := 0
		for {
			select {
			case <-stopAudit:
				if audits == 0 {
					auditDone <- fmt.Errorf("no audit ran")
					return
				}
				auditDone <- nil
				return
			default:
			}
			tx, _ := dbs[audits%len(dbs)].Begin(ctx, txn.TxnOptions{ReadOnly: true})
			rows, err := tx.Scan(ctx, acctStart, acctEnd, 0, false)
			if err != nil {
				auditDone <- err
				return
			}
			sum := 0
			for _, r := range rows {
				v, _ := strconv.Atoi(string(r.Value))
				if v < 0 {
					auditDone <- fmt.Errorf("negative balance %s=%d", r.Key, v)
					return
				}
				sum += v
			}
			if sum != accounts*initial || len(rows) != accounts {
				auditDone <- fmt.Errorf("snapshot total %d over %d accounts, want %d", sum, len(rows), accounts*initial)
				return
			}
			audits++
		}
	}()

	var wg sync.WaitGroup
	var done atomic.Int64
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(*txnSeed, uint64(100+c)))
			db := dbs[c%len(dbs)]
			for n := 0; n < transfers; n++ {
				from, to := rng.IntN(accounts), rng.IntN(accounts-1)
				if to >= from {
					to++
				}
				amount := 1 + rng.IntN(60)
				err := db.Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
					a, err := getInt(ctx, tx, acct(from))
					if err != nil {
						return err
					}
					b, err := getInt(ctx, tx, acct(to))
					if err != nil {
						return err
					}
					if a < amount {
						return nil // declined: nothing written
					}
					if err := tx.Put(ctx, []byte(acct(from)), []byte(strconv.Itoa(a-amount))); err != nil {
						return err
					}
					if err := tx.Put(ctx, []byte(acct(to)), []byte(strconv.Itoa(b+amount))); err != nil {
						return err
					}
					return tx.Put(ctx, []byte(fmt.Sprintf("%sledger/%02d-%03d", prefix, c, n)), []byte(fmt.Sprintf("%d,%d,%d", from, to, amount)))
				})
				if err != nil {
					t.Errorf("transfer: %v", err)
					return
				}
				if d := done.Add(1); onTransfer != nil {
					onTransfer(d)
				}
			}
		}()
	}
	wg.Wait()
	close(stopAudit)
	if err := <-auditDone; err != nil {
		t.Fatal(err)
	}
	// Replay the ledger.
	tx, _ := dbs[0].Begin(ctx, txn.TxnOptions{ReadOnly: true})
	ledger, err := tx.Scan(ctx, ledgerStart, ledgerEnd, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	bal := make([]int, accounts)
	for i := range bal {
		bal[i] = initial
	}
	for _, e := range ledger {
		var from, to, amount int
		if _, err := fmt.Sscanf(string(e.Value), "%d,%d,%d", &from, &to, &amount); err != nil {
			t.Fatalf("ledger entry %s: %v", e.Key, err)
		}
		bal[from] -= amount
		bal[to] += amount
	}
	rows, err := tx.Scan(ctx, acctStart, acctEnd, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(rows, func(i, j int) bool { return string(rows[i].Key) < string(rows[j].Key) })
	for i, r := range rows {
		v, _ := strconv.Atoi(string(r.Value))
		if v != bal[i] {
			t.Fatalf("%s = %d, ledger replays to %d", r.Key, v, bal[i])
		}
	}
	t.Logf("%d transfers (%d applied per ledger), %d retries", done.Load(), len(ledger), retries.Load())
}
