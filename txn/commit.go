package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// cleanupTimeout bounds the rollback and commit-point work a coordinator
// does after its caller's context may have ended.
const cleanupTimeout = 10 * time.Second

// Commit commits the transaction. A transaction that wrote nothing commits
// without any request (its reads were a consistent snapshot). One whose writes
// and reads all lie in one range commits in one OnePhaseCommit request;
// otherwise by two-phase commit with read validation. On a retryable conflict
// it returns *SerializationError and nothing of the transaction is visible.
func (t *Txn) Commit(ctx context.Context) error {
	t.mu.Lock()
	if err := t.checkOpenLocked(); err != nil {
		t.mu.Unlock()
		return err
	}
	t.state = txnCommitting
	var muts []kv.Mutation
	if t.buf != nil {
		muts = t.buf.mutations()
	}
	reads := append([]kv.Span(nil), t.reads...)
	t.mu.Unlock()
	defer t.db.unregister(t)

	if len(muts) == 0 {
		t.mu.Lock()
		t.state = txnCommitted
		t.commitTS = t.startTS
		t.mu.Unlock()
		t.db.stats.readOnlyCommits.Add(1)
		return nil
	}
	err := t.commitWrites(ctx, muts, reads)
	switch {
	case err == nil:
		t.db.stats.commits.Add(1)
	case IsRetryable(err):
		t.db.stats.aborts.Add(1)
	default:
		t.db.stats.failures.Add(1)
	}
	return err
}

// commitWrites commits a transaction that has buffered writes.
func (t *Txn) commitWrites(ctx context.Context, muts []kv.Mutation, reads []kv.Span) error {
	startTS, err := t.ensureStartTS(ctx)
	if err != nil {
		t.setState(txnFailed)
		return err
	}
	commitTS, err := t.commit(ctx, startTS, muts, normalizeSpans(reads))
	if err != nil {
		t.setState(txnFailed)
		return err
	}
	t.mu.Lock()
	t.state = txnCommitted
	t.commitTS = commitTS
	t.mu.Unlock()
	return nil
}

// Rollback abandons the transaction. Nothing was written before Commit, so
// there is nothing to undo; a failed commit already cleaned up.
func (t *Txn) Rollback(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case txnOpen:
		t.db.stats.rollbacks.Add(1)
		t.state = txnRolledBack
		t.buf = nil
		defer t.db.unregister(t)
		return nil
	case txnRolledBack, txnFailed:
		return nil
	default:
		return &TxnClosedError{StartTS: t.startTS, State: t.state.String()}
	}
}

func (t *Txn) setState(s txnState) {
	t.mu.Lock()
	t.state = s
	t.mu.Unlock()
}

func (t *Txn) commit(ctx context.Context, startTS kv.Timestamp, muts []kv.Mutation, reads []kv.Span) (kv.Timestamp, error) {
	if !t.db.knobs.Disable1PC {
		desc, ok, err := t.singleRange(ctx, muts, reads)
		if err != nil {
			return 0, err
		}
		if ok {
			commitTS, done, err := t.commit1PC(ctx, desc, startTS, muts, reads)
			if done || err != nil {
				return commitTS, err
			}
			// The range split under us: fall back to two-phase commit.
		}
	}
	return t.commit2PC(ctx, startTS, muts, reads)
}

// singleRange returns the range holding every write and every read span, if
// there is one.
func (t *Txn) singleRange(ctx context.Context, muts []kv.Mutation, reads []kv.Span) (*kv.RangeDescriptor, bool, error) {
	desc, err := t.db.sender.RangeForKey(ctx, muts[0].Key)
	if err != nil {
		return nil, false, err
	}
	for _, m := range muts {
		if !desc.ContainsKey(m.Key) {
			return nil, false, nil
		}
	}
	for _, sp := range reads {
		if !desc.ContainsSpan(sp.Key, sp.EndKey) {
			return nil, false, nil
		}
	}
	return desc, true, nil
}

// commit1PC sends the one-phase commit. done is false when the range no
// longer holds everything (stale descriptor) and two-phase commit must run.
func (t *Txn) commit1PC(ctx context.Context, desc *kv.RangeDescriptor, startTS kv.Timestamp, muts []kv.Mutation, reads []kv.Span) (commitTS kv.Timestamp, done bool, err error) {
	db := t.db
	var w lockWait
	for {
		// The leader raises the proposal above every read it served (TXN.md,
		// "The 1PC hazard"); the proposal keeps commit_ts after start_ts and
		// after every timestamp handed out before the commit began.
		proposal, err := db.now(ctx)
		if err != nil {
			return 0, true, err
		}
		resp, err := db.sender.SendToRange(ctx, desc, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
			Mutations: muts, ReadSpans: reads, StartTS: startTS, CommitTS: proposal,
		}})
		if err == nil {
			if resp.OnePhaseCommit == nil {
				return 0, true, fmt.Errorf("txn %d: one-phase commit in r%d: empty response", startTS, desc.RangeID)
			}
			ts := resp.OnePhaseCommit.CommitTS
			if ts == 0 {
				ts = proposal
			}
			return ts, true, nil
		}
		if isStaleRouting(err) {
			return 0, false, nil
		}
		if lock, ok := asLocked(err); ok {
			if err := db.handleWriteLock(ctx, lock, startTS, &w); err != nil {
				return 0, true, err
			}
			continue
		}
		var (
			conflict *kv.WriteConflictError
			serial   *kv.SerializationError
			aborted  *kv.TxnAbortedError
		)
		switch {
		case errors.As(err, &conflict):
			if conflict.ConflictStartTS == startTS {
				// Our own earlier attempt applied (its answer was lost and the
				// router sent it again): the transaction is committed.
				return conflict.ConflictCommitTS, true, nil
			}
			return 0, true, &SerializationError{StartTS: startTS, Key: conflict.Key,
				Reason: fmt.Sprintf("write conflict: committed by txn %d at %d", conflict.ConflictStartTS, conflict.ConflictCommitTS)}
		case errors.As(err, &serial):
			return 0, true, &SerializationError{StartTS: startTS, Key: serial.Key, Reason: "a read changed before commit"}
		case errors.As(err, &aborted):
			return 0, true, &SerializationError{StartTS: startTS, Key: aborted.Key, Reason: "rolled back by another transaction: " + aborted.Reason}
		}
		var invalid *kv.InvalidRequestError
		if errors.As(err, &invalid) {
			return 0, true, fmt.Errorf("txn %d: one-phase commit in r%d: %w", startTS, desc.RangeID, err)
		}
		return 0, true, &AmbiguousCommitError{StartTS: startTS, Err: fmt.Errorf("one-phase commit in r%d: %w", desc.RangeID, err)}
	}
}

// commit2PC: prewrite everything (in parallel per range), take commit_ts,
// validate the reads, commit the primary (the commit point), then commit the
// secondaries in the background.
func (t *Txn) commit2PC(ctx context.Context, startTS kv.Timestamp, muts []kv.Mutation, reads []kv.Span) (kv.Timestamp, error) {
	db := t.db
	primary := muts[0].Key
	keys := make([][]byte, len(muts))
	for i, m := range muts {
		keys[i] = m.Key
	}
	hb := t.startHeartbeat(primary, startTS)
	defer hb.stop()

	if err := t.prewrite(ctx, startTS, primary, muts); err != nil {
		t.rollbackKeys(ctx, startTS, keys)
		return 0, err
	}
	if db.knobs.AfterPrewrite != nil {
		if err := db.knobs.AfterPrewrite(t); err != nil {
			return 0, err // simulated crash: leave the locks
		}
	}
	commitTS, err := db.now(ctx)
	if err != nil {
		t.rollbackKeys(ctx, startTS, keys)
		return 0, err
	}
	if db.knobs.BeforeValidation != nil {
		db.knobs.BeforeValidation(t)
	}
	if len(reads) > 0 {
		if err := t.validate(ctx, startTS, commitTS, reads); err != nil {
			t.rollbackKeys(ctx, startTS, keys)
			return 0, err
		}
	}
	if err := t.commitPrimary(ctx, primary, startTS, commitTS); err != nil {
		var serr *SerializationError
		if errors.As(err, &serr) {
			t.rollbackKeys(ctx, startTS, keys)
		}
		return 0, err
	}
	hb.stop()
	if db.knobs.AfterPrimaryCommit != nil {
		if err := db.knobs.AfterPrimaryCommit(t); err != nil {
			return commitTS, nil // simulated crash after the commit point
		}
	}
	secondaries := keys[1:]
	if db.knobs.FilterSecondaries != nil {
		secondaries = db.knobs.FilterSecondaries(t, secondaries)
	}
	if len(secondaries) > 0 {
		db.goBackground(func(ctx context.Context) {
			if err := db.resolveKeys(ctx, secondaries, startTS, commitTS); err != nil {
				db.logger.Debug("commit of secondaries failed; readers will roll them forward",
					"start_ts", startTS, "commit_ts", commitTS, "err", err)
			}
		})
	}
	return commitTS, nil
}

// lockTTL is the TTL of the transaction's locks in ms from its start
// timestamp's physical time: the time already spent plus LockTTL.
func (t *Txn) lockTTL() uint64 {
	t.mu.Lock()
	started := t.startWall
	t.mu.Unlock()
	return uint64((time.Since(started) + t.db.cfg.LockTTL).Milliseconds())
}

// prewrite locks every key: first the primary, then the other keys per
// range in parallel. The primary goes first so that whoever meets a
// secondary lock finds the primary locked too: otherwise CheckTxnStatus,
// seeing no primary yet, would write a rollback marker there and abort a
// healthy transaction (one round trip buys far fewer aborts under
// contention).
func (t *Txn) prewrite(ctx context.Context, startTS kv.Timestamp, primary []byte, muts []kv.Mutation) error {
	ttl := t.lockTTL()
	// The primary goes with the other keys of its range in one request.
	first, rest := muts[:1], muts[1:]
	if desc, err := t.db.sender.RangeForKey(ctx, primary); err == nil {
		first, rest = nil, nil
		for _, m := range muts {
			if desc.ContainsKey(m.Key) {
				first = append(first, m)
			} else {
				rest = append(rest, m)
			}
		}
	}
	if err := t.prewriteKeys(ctx, startTS, primary, ttl, first); err != nil {
		return err
	}
	if len(rest) == 0 {
		return nil
	}
	return t.prewriteKeys(ctx, startTS, primary, ttl, rest)
}

// prewriteKeys prewrites muts, per range in parallel.
func (t *Txn) prewriteKeys(ctx context.Context, startTS kv.Timestamp, primary []byte, ttl uint64, muts []kv.Mutation) error {
	db := t.db
	return forEachRange(ctx, db.sender, muts, func(m kv.Mutation) []byte { return m.Key },
		func(ctx context.Context, desc *kv.RangeDescriptor, group []kv.Mutation) error {
			var w lockWait
			for {
				_, err := db.sender.SendToRange(ctx, desc, &kv.Request{Prewrite: &kv.PrewriteRequest{
					Mutations: group, Primary: primary, StartTS: startTS, LockTTL: ttl,
				}})
				if err == nil || isStaleRouting(err) {
					return err
				}
				if lock, ok := asLocked(err); ok {
					if err := db.handleWriteLock(ctx, lock, startTS, &w); err != nil {
						return err
					}
					continue
				}
				var (
					conflict *kv.WriteConflictError
					aborted  *kv.TxnAbortedError
				)
				switch {
				case errors.As(err, &conflict):
					return &SerializationError{StartTS: startTS, Key: conflict.Key,
						Reason: fmt.Sprintf("write conflict: committed by txn %d at %d", conflict.ConflictStartTS, conflict.ConflictCommitTS)}
				case errors.As(err, &aborted):
					return &SerializationError{StartTS: startTS, Key: aborted.Key,
						Reason: "rolled back by another transaction: " + aborted.Reason}
				}
				return fmt.Errorf("txn %d: prewrite %d keys in r%d: %w", startTS, len(group), desc.RangeID, err)
			}
		})
}

// validate checks that nothing another transaction did could have changed
// what this one read: no write committed in (startTS, commitTS] and no
// foreign lock in any read span. A lock whose transaction is decided is
// resolved and the check repeated; a pending lock of a younger transaction
// is waited for at most ValidationWait (older waits for younger, so waits
// never cycle); anything else aborts.
func (t *Txn) validate(ctx context.Context, startTS, commitTS kv.Timestamp, reads []kv.Span) error {
	db := t.db
	var w lockWait
	for {
		key, conflict, err := t.validateOnce(ctx, startTS, commitTS, reads)
		if err != nil || !conflict {
			return err
		}
		serr := &SerializationError{StartTS: startTS, Key: key, Reason: "a read changed before commit"}
		// Was it a lock (which may still be resolved) or a committed write?
		_, err = sendToKey(ctx, db.sender, key, &kv.Request{Get: &kv.GetRequest{Key: key, ReadTS: commitTS}})
		lock, isLock := asLocked(err)
		if err != nil && !isLock {
			return fmt.Errorf("txn %d: inspect read conflict on %q: %w", startTS, key, err)
		}
		if !isLock || lock.StartTS == startTS {
			return serr
		}
		decision, st, err := db.resolveLock(ctx, lock)
		if err != nil {
			return err
		}
		if decision == lockResolved {
			if st.Status == kv.TxnCommitted && st.CommitTS > startTS && st.CommitTS <= commitTS {
				return serr
			}
			continue
		}
		if lock.StartTS < startTS {
			return serr // an older transaction's pending lock: no-wait
		}
		if err := w.sleep(ctx, db.cfg.ValidationWait, lock); err != nil {
			var lw *LockWaitTimeoutError
			if errors.As(err, &lw) {
				return serr
			}
			return err
		}
	}
}

// validateOnce asks every range holding read spans for conflicts; it
// returns the first conflicting key found.
func (t *Txn) validateOnce(ctx context.Context, startTS, commitTS kv.Timestamp, reads []kv.Span) ([]byte, bool, error) {
	db := t.db
	var mu sync.Mutex
	var found []byte
	err := forEachRangeOfSpans(ctx, db.sender, reads, func(ctx context.Context, desc *kv.RangeDescriptor, spans []kv.Span) error {
		resp, err := db.sender.SendToRange(ctx, desc, &kv.Request{ValidateReads: &kv.ValidateReadsRequest{
			Spans: spans, TxnStartTS: startTS, From: startTS, To: commitTS,
		}})
		if err != nil {
			if isStaleRouting(err) {
				return err
			}
			return fmt.Errorf("txn %d: validate reads in r%d: %w", startTS, desc.RangeID, err)
		}
		if resp.ValidateReads != nil && resp.ValidateReads.Conflict {
			mu.Lock()
			if found == nil || bytes.Compare(resp.ValidateReads.ConflictKey, found) < 0 {
				found = resp.ValidateReads.ConflictKey
			}
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return found, found != nil, nil
}

// commitPrimary commits the primary key: the commit point. It keeps going
// after the caller's context ends (the outcome must be known), and on an
// unclear failure asks the primary for the outcome.
func (t *Txn) commitPrimary(ctx context.Context, primary []byte, startTS, commitTS kv.Timestamp) error {
	db := t.db
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, err := sendToKey(cctx, db.sender, primary, &kv.Request{Commit: &kv.CommitRequest{
		Keys: [][]byte{primary}, StartTS: startTS, CommitTS: commitTS,
	}})
	if err == nil {
		return nil
	}
	var aborted *kv.TxnAbortedError
	if errors.As(err, &aborted) {
		return &SerializationError{StartTS: startTS, Key: primary,
			Reason: "rolled back by another transaction before the commit point: " + aborted.Reason}
	}
	st, serr := db.checkTxnStatus(cctx, primary, startTS)
	if serr != nil {
		return &AmbiguousCommitError{StartTS: startTS, Err: fmt.Errorf("commit primary %q: %w (status check: %v)", primary, err, serr)}
	}
	switch st.Status {
	case kv.TxnCommitted:
		return nil
	case kv.TxnRolledBack:
		return &SerializationError{StartTS: startTS, Key: primary, Reason: "rolled back by another transaction before the commit point"}
	}
	return &AmbiguousCommitError{StartTS: startTS, Err: fmt.Errorf("commit primary %q: %w", primary, err)}
}

// rollbackKeys removes the transaction's locks, leaving rollback markers so
// a late prewrite of it fails. Best effort: a lock left behind is rolled back
// by the first reader that finds its primary rolled back or expired.
func (t *Txn) rollbackKeys(ctx context.Context, startTS kv.Timestamp, keys [][]byte) {
	db := t.db
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := forEachRange(cctx, db.sender, keys, func(k []byte) []byte { return k },
		func(ctx context.Context, desc *kv.RangeDescriptor, keys [][]byte) error {
			_, err := db.sender.SendToRange(ctx, desc, &kv.Request{Rollback: &kv.RollbackRequest{Keys: keys, StartTS: startTS}})
			return err
		})
	if err != nil {
		db.logger.Debug("rollback failed; locks expire with their TTL", "start_ts", startTS, "err", err)
	}
}

// normalizeSpans sorts spans and merges overlapping ones, so validation
// sends each key range once. Point spans stay points unless covered.
func normalizeSpans(spans []kv.Span) []kv.Span {
	if len(spans) == 0 {
		return nil
	}
	type iv struct {
		lo, hi []byte
		point  bool
	}
	ivs := make([]iv, len(spans))
	for i, s := range spans {
		if len(s.EndKey) == 0 {
			ivs[i] = iv{lo: s.Key, hi: append(append(make([]byte, 0, len(s.Key)+1), s.Key...), 0), point: true}
		} else {
			ivs[i] = iv{lo: s.Key, hi: s.EndKey}
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return bytes.Compare(ivs[i].lo, ivs[j].lo) < 0 })
	out := make([]kv.Span, 0, len(ivs))
	cur := ivs[0]
	flush := func() {
		if cur.point {
			out = append(out, kv.Span{Key: cur.lo})
		} else {
			out = append(out, kv.Span{Key: cur.lo, EndKey: cur.hi})
		}
	}
	for _, x := range ivs[1:] {
		if bytes.Compare(x.lo, cur.hi) <= 0 {
			if bytes.Compare(x.hi, cur.hi) > 0 {
				cur.hi = x.hi
			}
			if !(cur.point && x.point && bytes.Equal(cur.lo, x.lo)) {
				cur.point = false
			}
			continue
		}
		flush()
		cur = x
	}
	flush()
	return out
}
