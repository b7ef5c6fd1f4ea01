package txn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// Lock resolution. A reader or writer that meets another transaction's lock
// asks the lock's primary for the transaction's status (CheckTxnStatus, which
// also rolls back a primary whose TTL has run out) and then:
//   - committed: commits the met key at the transaction's commit_ts;
//   - rolled back: removes the met key's lock and data;
//   - pending: waits with backoff (bounded by LockWaitTimeout), or — for a
//     writer meeting an older transaction's lock, and for validation — gives
//     up at once (wait-die: only older transactions wait for younger ones, so
//     waits never form a cycle).

// lockWait tracks one operation's waiting across the locks it meets.
type lockWait struct {
	start   time.Time
	backoff time.Duration
}

func (w *lockWait) waited() time.Duration {
	if w.start.IsZero() {
		return 0
	}
	return time.Since(w.start)
}

// sleep waits the next backoff step, or fails with *LockWaitTimeoutError
// when the total wait would pass limit.
func (w *lockWait) sleep(ctx context.Context, limit time.Duration, lock *kv.LockedError) error {
	if w.start.IsZero() {
		w.start = time.Now()
		w.backoff = time.Millisecond
	}
	waited := time.Since(w.start)
	if waited >= limit {
		return &LockWaitTimeoutError{Key: lock.Key, LockStartTS: lock.StartTS, Waited: waited}
	}
	d := min(jitter(w.backoff), limit-waited)
	w.backoff = min(w.backoff*2, 50*time.Millisecond)
	if err := sleepCtx(ctx, d); err != nil {
		return fmt.Errorf("txn: waiting for lock on %q: %w", lock.Key, err)
	}
	return nil
}

// checkTxnStatus asks the primary of the transaction startTS for its status,
// rolling it back if its lock expired.
func (db *DB) checkTxnStatus(ctx context.Context, primary []byte, startTS kv.Timestamp) (*kv.CheckTxnStatusResponse, error) {
	now, err := db.now(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := sendToKey(ctx, db.sender, primary, &kv.Request{CheckTxnStatus: &kv.CheckTxnStatusRequest{
		PrimaryKey:        primary,
		StartTS:           startTS,
		CurrentTS:         now,
		RollbackIfExpired: true,
	}})
	if err != nil {
		return nil, fmt.Errorf("txn: check status of txn %d at primary %q: %w", startTS, primary, err)
	}
	if resp.CheckTxnStatus == nil {
		return nil, fmt.Errorf("txn: check status of txn %d: empty response", startTS)
	}
	return resp.CheckTxnStatus, nil
}

// resolveKeys finishes the transaction startTS on keys: commits them at
// commitTS, or rolls them back when commitTS is 0.
func (db *DB) resolveKeys(ctx context.Context, keys [][]byte, startTS, commitTS kv.Timestamp) error {
	return forEachRange(ctx, db.sender, keys, func(k []byte) []byte { return k },
		func(ctx context.Context, desc *kv.RangeDescriptor, keys [][]byte) error {
			_, err := db.sender.SendToRange(ctx, desc, &kv.Request{ResolveLock: &kv.ResolveLockRequest{
				Keys: keys, StartTS: startTS, CommitTS: commitTS,
			}})
			if err != nil && !isStaleRouting(err) {
				return fmt.Errorf("txn: resolve %d keys of txn %d in r%d: %w", len(keys), startTS, desc.RangeID, err)
			}
			return err
		})
}

// lockDecision is what resolveLock found out about a met lock.
type lockDecision uint8

const (
	lockResolved lockDecision = iota + 1 // the lock is gone: retry the operation
	lockPending                          // its transaction is still running
)

// resolveLock finds the status of lock's transaction and, if it is decided
// (or expired, which rolls it back), resolves the met key.
func (db *DB) resolveLock(ctx context.Context, lock *kv.LockedError) (lockDecision, *kv.CheckTxnStatusResponse, error) {
	st, err := db.checkTxnStatus(ctx, lock.Primary, lock.StartTS)
	if err != nil {
		return 0, nil, err
	}
	switch st.Status {
	case kv.TxnCommitted:
		if err := db.resolveKeys(ctx, [][]byte{lock.Key}, lock.StartTS, st.CommitTS); err != nil {
			return 0, nil, err
		}
		return lockResolved, st, nil
	case kv.TxnRolledBack:
		if err := db.resolveKeys(ctx, [][]byte{lock.Key}, lock.StartTS, 0); err != nil {
			return 0, nil, err
		}
		return lockResolved, st, nil
	case kv.TxnPending:
		return lockPending, st, nil
	default:
		return 0, nil, fmt.Errorf("txn: unknown status %d of txn %d", st.Status, lock.StartTS)
	}
}

// handleReadLock deals with a lock met by a read: resolve it, or wait for it
// within LockWaitTimeout. A nil error means "read again".
func (db *DB) handleReadLock(ctx context.Context, lock *kv.LockedError, w *lockWait) error {
	decision, _, err := db.resolveLock(ctx, lock)
	if err != nil || decision == lockResolved {
		return err
	}
	return w.sleep(ctx, db.cfg.LockWaitTimeout, lock)
}

// handleWriteLock deals with a lock met by a prewrite (or a 1PC) of the
// transaction myStartTS. Wait-die: an older transaction waits for a younger
// one's lock (bounded by LockWaitTimeout); a younger one aborts with a
// retryable error. A nil error means "prewrite again".
func (db *DB) handleWriteLock(ctx context.Context, lock *kv.LockedError, myStartTS kv.Timestamp, w *lockWait) error {
	decision, _, err := db.resolveLock(ctx, lock)
	if err != nil || decision == lockResolved {
		return err
	}
	if lock.StartTS < myStartTS {
		return &SerializationError{StartTS: myStartTS, Key: lock.Key,
			Reason: fmt.Sprintf("write conflict with older transaction %d still committing", lock.StartTS)}
	}
	return w.sleep(ctx, db.cfg.LockWaitTimeout, lock)
}

// asLocked returns the LockedError in err's chain.
func asLocked(err error) (*kv.LockedError, bool) {
	var le *kv.LockedError
	if errors.As(err, &le) {
		return le, true
	}
	return nil, false
}
