package kv

import (
	"fmt"
	"math"
)

// The transactional commands. Each one first checks every key and collects
// its writes in a writeSet; only when no key fails does Evaluate apply the
// set, so a typed error leaves the batch untouched.

// pendingWrite is one write a command will make if it succeeds.
type pendingWrite struct {
	key, value []byte
	del        bool
}

// writeSet collects a command's writes until every check has passed.
type writeSet struct {
	ops []pendingWrite
}

func (ws *writeSet) set(key, value []byte) {
	ws.ops = append(ws.ops, pendingWrite{key: key, value: value})
}

func (ws *writeSet) del(key []byte) {
	ws.ops = append(ws.ops, pendingWrite{key: key, del: true})
}

func (ws *writeSet) apply(w Writer) error {
	for _, op := range ws.ops {
		var err error
		if op.del {
			err = w.Delete(op.key, nil)
		} else {
			err = w.Set(op.key, op.value, nil)
		}
		if err != nil {
			return fmt.Errorf("kv: write %x: %w", op.key, err)
		}
	}
	return nil
}

func prewrite(m *mvccReader, ws *writeSet, req *PrewriteRequest) error {
	for _, mu := range req.Mutations {
		l, err := m.getLock(mu.Key)
		if err != nil {
			return err
		}
		if l != nil {
			if l.startTS == req.StartTS {
				continue // already prewritten: idempotent
			}
			return lockedError(mu.Key, l)
		}
		h, err := m.history(mu.Key, req.StartTS)
		if err != nil {
			return err
		}
		switch {
		case h.committedAt != 0:
			continue // a late duplicate after the commit
		case h.rolledBack:
			return &TxnAbortedError{Key: mu.Key, StartTS: req.StartTS, Reason: "rolled back before prewrite"}
		case h.conflict != nil:
			return &WriteConflictError{Key: mu.Key, StartTS: req.StartTS,
				ConflictStartTS: h.conflict.startTS, ConflictCommitTS: h.conflictTS}
		}
		l = &mvccLock{primary: req.Primary, startTS: req.StartTS, ttl: req.LockTTL, kind: mu.Op, minCommitTS: req.StartTS + 1}
		ws.set(familyPrefixKey(lockFamily, mu.Key), l.encode())
		if mu.Op == OpPut {
			ws.set(versionedKey(dataFamily, mu.Key, req.StartTS), mu.Value)
		}
	}
	return nil
}

// commitLocked turns the lock l of userKey into a write record at commitTS.
func commitLocked(m *mvccReader, ws *writeSet, userKey []byte, l *mvccLock, commitTS Timestamp) error {
	if commitTS < l.minCommitTS {
		return &InvalidRequestError{Reason: fmt.Sprintf("commit_ts %d of key %q below the lock's min_commit_ts %d", commitTS, userKey, l.minCommitTS)}
	}
	rec := writeRecord{startTS: l.startTS, kind: writeKind(l.kind)}
	existing, err := m.getRecord(userKey, commitTS)
	if err != nil {
		return err
	}
	if existing != nil {
		if existing.isCommit() {
			// Two commits at one timestamp on one key cannot pass the
			// conflict checks; refuse rather than overwrite one of them.
			return &WriteConflictError{Key: userKey, StartTS: l.startTS, ConflictStartTS: existing.startTS, ConflictCommitTS: commitTS}
		}
		// The rollback marker of the transaction whose start_ts is commitTS:
		// keep its meaning in the flag.
		rec.overlappedRollback = true
	}
	ws.set(versionedKey(writeFamily, userKey, commitTS), rec.encode())
	ws.del(familyPrefixKey(lockFamily, userKey))
	return nil
}

// rollbackKey removes the transaction's lock own (nil: none) and data on
// userKey and leaves its rollback marker at startTS.
func rollbackKey(m *mvccReader, ws *writeSet, userKey []byte, startTS Timestamp, own *mvccLock) error {
	if own != nil {
		ws.del(familyPrefixKey(lockFamily, userKey))
		if own.kind == OpPut {
			ws.del(versionedKey(dataFamily, userKey, startTS))
		}
	}
	existing, err := m.getRecord(userKey, startTS)
	if err != nil {
		return err
	}
	switch {
	case existing == nil:
		ws.set(versionedKey(writeFamily, userKey, startTS), writeRecord{startTS: startTS, kind: writeRollback}.encode())
	case existing.isCommit() && !existing.overlappedRollback:
		// Another transaction committed at exactly our start_ts: keep its
		// record and flag that ours is rolled back here too.
		rec := *existing
		rec.overlappedRollback = true
		ws.set(versionedKey(writeFamily, userKey, startTS), rec.encode())
	}
	return nil
}

func commit(m *mvccReader, ws *writeSet, req *CommitRequest) error {
	for _, key := range req.Keys {
		l, err := m.getLock(key)
		if err != nil {
			return err
		}
		if l != nil && l.startTS == req.StartTS {
			if err := commitLocked(m, ws, key, l, req.CommitTS); err != nil {
				return err
			}
			continue
		}
		h, err := m.history(key, req.StartTS)
		if err != nil {
			return err
		}
		if h.committedAt != 0 {
			continue // already committed: idempotent
		}
		reason := "lock not found"
		if h.rolledBack {
			reason = "rolled back"
		}
		return &TxnAbortedError{Key: key, StartTS: req.StartTS, Reason: reason}
	}
	return nil
}

func rollback(m *mvccReader, ws *writeSet, req *RollbackRequest) error {
	for _, key := range req.Keys {
		l, err := m.getLock(key)
		if err != nil {
			return err
		}
		if l == nil || l.startTS != req.StartTS {
			l = nil
			h, err := m.history(key, req.StartTS)
			if err != nil {
				return err
			}
			if h.committedAt != 0 {
				return &TxnCommittedError{Key: key, StartTS: req.StartTS, CommitTS: h.committedAt}
			}
		}
		if err := rollbackKey(m, ws, key, req.StartTS, l); err != nil {
			return err
		}
	}
	return nil
}

// lockExpired: the lock's TTL runs from the physical time of its start_ts. A
// TTL too large to add never expires (no wrap-around).
func lockExpired(l *mvccLock, now Timestamp) bool {
	start := PhysicalMillis(l.startTS)
	if l.ttl > math.MaxUint64-start {
		return false
	}
	return start+l.ttl < PhysicalMillis(now)
}

func checkTxnStatus(m *mvccReader, ws *writeSet, req *CheckTxnStatusRequest) (*CheckTxnStatusResponse, error) {
	l, err := m.getLock(req.PrimaryKey)
	if err != nil {
		return nil, err
	}
	if l != nil && l.startTS == req.StartTS {
		if req.RollbackIfExpired && lockExpired(l, req.CurrentTS) {
			if err := rollbackKey(m, ws, req.PrimaryKey, req.StartTS, l); err != nil {
				return nil, err
			}
			return &CheckTxnStatusResponse{Status: TxnRolledBack}, nil
		}
		return &CheckTxnStatusResponse{Status: TxnPending, LockTTL: l.ttl}, nil
	}
	h, err := m.history(req.PrimaryKey, req.StartTS)
	if err != nil {
		return nil, err
	}
	switch {
	case h.committedAt != 0:
		return &CheckTxnStatusResponse{Status: TxnCommitted, CommitTS: h.committedAt}, nil
	case h.rolledBack:
		return &CheckTxnStatusResponse{Status: TxnRolledBack}, nil
	}
	// Neither lock nor record: the prewrite of the primary has not arrived
	// (or never will). The marker makes sure it can never succeed later.
	if err := rollbackKey(m, ws, req.PrimaryKey, req.StartTS, nil); err != nil {
		return nil, err
	}
	return &CheckTxnStatusResponse{Status: TxnRolledBack}, nil
}

func resolveLock(m *mvccReader, ws *writeSet, req *ResolveLockRequest) error {
	for _, key := range req.Keys {
		l, err := m.getLock(key)
		if err != nil {
			return err
		}
		if l == nil || l.startTS != req.StartTS {
			continue
		}
		if req.CommitTS != 0 {
			err = commitLocked(m, ws, key, l, req.CommitTS)
		} else {
			err = rollbackKey(m, ws, key, req.StartTS, l)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func txnHeartbeat(m *mvccReader, ws *writeSet, req *TxnHeartbeatRequest) (*TxnHeartbeatResponse, error) {
	l, err := m.getLock(req.PrimaryKey)
	if err != nil {
		return nil, err
	}
	if l != nil && l.startTS == req.StartTS {
		if req.NewTTL > l.ttl {
			l.ttl = req.NewTTL
			ws.set(familyPrefixKey(lockFamily, req.PrimaryKey), l.encode())
		}
		return &TxnHeartbeatResponse{LockTTL: l.ttl}, nil
	}
	h, err := m.history(req.PrimaryKey, req.StartTS)
	if err != nil {
		return nil, err
	}
	if h.committedAt != 0 {
		return nil, &TxnCommittedError{Key: req.PrimaryKey, StartTS: req.StartTS, CommitTS: h.committedAt}
	}
	reason := "lock not found"
	if h.rolledBack {
		reason = "rolled back"
	}
	return nil, &TxnAbortedError{Key: req.PrimaryKey, StartTS: req.StartTS, Reason: reason}
}

func onePhaseCommit(m *mvccReader, ws *writeSet, req *OnePhaseCommitRequest) (*OnePhaseCommitResponse, error) {
	type keyPlan struct {
		skip       bool // already committed by this transaction: a replay
		overlapped bool // a rollback marker occupies commit_ts
	}
	plans := make([]keyPlan, len(req.Mutations))
	for i, mu := range req.Mutations {
		h, err := m.history(mu.Key, req.StartTS)
		if err != nil {
			return nil, err
		}
		if h.committedAt != 0 {
			// A replay: an earlier attempt of this 1PC applied (its answer
			// was lost and the router sent it again, maybe to a new leader
			// that fixed a later commit_ts). A 1PC writes all its records in
			// one batch, so the transaction is committed at that attempt's
			// timestamp. Validating again over the new, wider window could
			// report a conflict with a write that came after the real
			// commit and turn a committed transaction into a 1213.
			return &OnePhaseCommitResponse{CommitTS: h.committedAt}, nil
		}
		l, err := m.getLock(mu.Key)
		if err != nil {
			return nil, err
		}
		if l != nil {
			return nil, lockedError(mu.Key, l)
		}
		switch {
		case h.rolledBack:
			return nil, &TxnAbortedError{Key: mu.Key, StartTS: req.StartTS, Reason: "rolled back before commit"}
		case h.conflict != nil:
			return nil, &WriteConflictError{Key: mu.Key, StartTS: req.StartTS,
				ConflictStartTS: h.conflict.startTS, ConflictCommitTS: h.conflictTS}
		}
		// Any commit record at commit_ts > start_ts was a conflict above, so
		// what can sit there is a rollback marker only.
		existing, err := m.getRecord(mu.Key, req.CommitTS)
		if err != nil {
			return nil, err
		}
		plans[i].overlapped = existing != nil
	}
	bad, err := m.firstReadConflict(req.ReadSpans, req.StartTS, req.StartTS, req.CommitTS)
	if err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, &SerializationError{Key: bad, StartTS: req.StartTS}
	}
	for i, mu := range req.Mutations {
		if plans[i].skip {
			continue
		}
		if mu.Op == OpPut {
			ws.set(versionedKey(dataFamily, mu.Key, req.StartTS), mu.Value)
		}
		rec := writeRecord{startTS: req.StartTS, kind: writeKind(mu.Op), overlappedRollback: plans[i].overlapped}
		ws.set(versionedKey(writeFamily, mu.Key, req.CommitTS), rec.encode())
	}
	return &OnePhaseCommitResponse{CommitTS: req.CommitTS}, nil
}

// gc drops, per key of [start, end), every write record at or below the
// safepoint except the newest put, and the data versions of the dropped
// puts. Rollback markers and lock records at or below the safepoint go too;
// a delete that is the newest version at or below it goes with everything
// older. Locks and records above the safepoint stay.
func gc(r Reader, ws *writeSet, req *GCRequest) (*GCResponse, error) {
	resp := &GCResponse{}
	if len(req.End) == 0 || string(req.Start) >= string(req.End) {
		return resp, nil
	}
	w, err := newKeyWalker(r, req.Start, req.End, false, false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.close() }()
	for {
		ok, err := w.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		prefix := w.curWritePrefix
		decided := false // the newest put or delete at or below the safepoint has been seen
		it := w.writeIt
		seek := versionedKey(writeFamily, w.curKey, req.SafePoint)
		for valid := it.SeekGE(seek); valid; valid = it.Next() {
			if _, isVersion := versionTS(it.Key(), prefix); !isVersion {
				break
			}
			rec, err := decodeWriteRecord(it.Value())
			if err != nil {
				return nil, err
			}
			keep := !decided && rec.kind == writePut
			if !decided && (rec.kind == writePut || rec.kind == writeDelete) {
				decided = true
			}
			if keep {
				continue
			}
			ws.del(append([]byte(nil), it.Key()...))
			if rec.kind == writePut {
				ws.del(versionedKey(dataFamily, w.curKey, rec.startTS))
			}
			resp.VersionsRemoved++
		}
		if err := it.Error(); err != nil {
			return nil, fmt.Errorf("kv: gc %q: %w", w.curKey, err)
		}
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	return resp, nil
}
