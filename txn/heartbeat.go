package txn

import (
	"context"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// heartbeat keeps a committing transaction's primary lock alive while the
// commit takes long (waiting for locks, slow validation): every LockTTL/3 it
// extends the TTL to "time spent so far + LockTTL". A coordinator that dies
// stops heartbeating and its locks expire one LockTTL later.
type heartbeat struct {
	once sync.Once
	done chan struct{}
}

func (h *heartbeat) stop() {
	h.once.Do(func() { close(h.done) })
}

func (t *Txn) startHeartbeat(primary []byte, startTS kv.Timestamp) *heartbeat {
	db := t.db
	h := &heartbeat{done: make(chan struct{})}
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return h
	}
	db.bgWG.Add(1)
	db.mu.Unlock()
	interval := db.cfg.LockTTL / 3
	go func() {
		defer db.bgWG.Done()
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-db.bg.Done():
				return
			case <-ticker.C:
			}
			ctx, cancel := context.WithTimeout(db.bg, interval)
			_, err := sendToKey(ctx, db.sender, primary, &kv.Request{TxnHeartbeat: &kv.TxnHeartbeatRequest{
				PrimaryKey: primary, StartTS: startTS, NewTTL: t.lockTTL(),
			}})
			cancel()
			if err != nil {
				db.logger.Debug("heartbeat failed", "start_ts", startTS, "err", err)
			}
		}
	}()
	return h
}
