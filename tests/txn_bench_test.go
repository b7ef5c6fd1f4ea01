package tests

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/txn"
)

// BenchmarkTxnBankAbortRate runs bank transfers (read two accounts, write
// both, append a ledger entry) among 32 accounts on three ranges from 8 and
// 64 concurrent clients through three coordinators, and reports the retries
// per committed transfer next to the time per transfer.
func BenchmarkTxnBankAbortRate(b *testing.B) {
	for _, clients := range []int{8, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s := newLocalKV(b, "acct/10", "acct/20", "ledger/")
			var retries atomic.Int64
			dbs := s.coordinators(b, 3, txn.DBConfig{ValidationWait: 50 * time.Millisecond, MaxRetries: 1000,
				Knobs: &txn.TestingKnobs{OnRetry: func(int, error) { retries.Add(1) }}})
			const accounts = 32
			acct := func(i int) string { return fmt.Sprintf("acct/%02d", i) }
			var setup []string
			for i := 0; i < accounts; i++ {
				setup = append(setup, acct(i), "1000")
			}
			putAll(b, dbs[0], setup...)
			ctx := context.Background()
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(c), 1))
					db := dbs[c%len(dbs)]
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						from, to := rng.IntN(accounts), rng.IntN(accounts-1)
						if to >= from {
							to++
						}
						err := db.Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
							a, err := getInt(ctx, tx, acct(from))
							if err != nil {
								return err
							}
							d, err := getInt(ctx, tx, acct(to))
							if err != nil {
								return err
							}
							if err := tx.Put(ctx, []byte(acct(from)), []byte(strconv.Itoa(a-1))); err != nil {
								return err
							}
							if err := tx.Put(ctx, []byte(acct(to)), []byte(strconv.Itoa(d+1))); err != nil {
								return err
							}
							return tx.Put(ctx, []byte(fmt.Sprintf("ledger/%08d", n)), []byte("1"))
						})
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/transfer")
		})
	}
}
