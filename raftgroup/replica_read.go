package raftgroup

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/quorumdb/quorumdb/kv"
)

// readRequest waits for a ReadIndex: the commit index the leader confirmed
// with a quorum after the read arrived. Reads queued in the same round share
// one ReadIndex.
type readRequest struct {
	term  uint64 // leadership term the read was admitted in
	index uint64 // set before done is closed, when err is nil
	err   error
	once  sync.Once
	done  chan struct{}
}

func (rr *readRequest) finish(err error) {
	rr.once.Do(func() {
		rr.err = err
		close(rr.done)
	})
}

func (r *Replica) executeRead(ctx context.Context, req *kv.Request) (*kv.Response, error) {
	// Any replica, leader or not, serves a read at a closed timestamp from
	// its own state; everything else is the leader's, after a ReadIndex.
	now := time.Now()
	if resp, served, err := r.serveClosedRead(req, now); served {
		return resp, err
	}
	if err := r.store.checkReadTimestamp(req, now); err != nil {
		return nil, err
	}
	if err := r.waitLeadership(ctx); err != nil {
		return nil, err
	}
	if err := r.checkSpans(req); err != nil {
		return nil, err
	}
	spans := requestSpans(req)
	rr := &readRequest{done: make(chan struct{})}
	// Register the read timestamp, then wait out the latches of 1PC
	// commands proposed before it: those may commit at or below it.
	// Commands proposed after the registration commit above it.
	for {
		r.mu.Lock()
		if !r.isLeader {
			err := r.notLeaderErrorLocked()
			r.mu.Unlock()
			return nil, err
		}
		rr.term = r.term
		r.maxReadTS = max(r.maxReadTS, readTimestamp(req))
		ch, latched := r.latchedLocked(spans)
		r.mu.Unlock()
		if !latched {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, r.unavailable(ctx, "waiting for a latched write to apply")
		}
	}
	if err := r.submit(func(b *inbox) { b.reads = append(b.reads, rr) }); err != nil {
		return nil, &kv.RangeNotFoundError{RangeID: r.rangeID}
	}
	select {
	case <-rr.done:
		if rr.err != nil {
			return nil, rr.err
		}
	case <-ctx.Done():
		return nil, r.unavailable(ctx, "waiting for read index")
	}
	if err := r.waitApplied(ctx, rr.index); err != nil {
		return nil, err
	}
	// The descriptor may have changed (split) while waiting: evaluate
	// against the one in force at the read index.
	if err := r.checkSpans(req); err != nil {
		return nil, err
	}
	desc := r.descriptor()
	snap := r.store.engine.NewSnapshot()
	defer snap.Close()
	resp, err := kv.EvaluateReadOnly(snap, desc, req)
	if err != nil {
		return nil, err
	}
	r.store.metrics.reads.Add(1)
	return resp, nil
}

// maxReadTimestampLead bounds how far ahead of this node's wall clock a
// read's timestamp may be. The leader's max_read_ts takes every served
// read's timestamp, and later 1PCs commit above it and wait for the oracle
// to pass it: one read at an absurd timestamp would stall every write of
// the range until then. Oracle timestamps are wall-clock milliseconds, so
// only a broken client or a wildly skewed clock comes near this.
const maxReadTimestampLead = 10 * time.Second

func (s *Store) checkReadTimestamp(req *kv.Request, now time.Time) error {
	ts := readTimestamp(req)
	if ts == 0 {
		return nil
	}
	if lead := int64(kv.PhysicalMillis(ts)) - now.UnixMilli(); lead > maxReadTimestampLead.Milliseconds() {
		return &kv.InvalidRequestError{Reason: fmt.Sprintf("read timestamp %d is %d ms ahead of node %d's clock (at most %v allowed)", ts, lead, s.cfg.NodeID, maxReadTimestampLead)}
	}
	return nil
}

// latchedLocked reports whether any of spans holds a latch, and the channel
// closed at the next latch release.
func (r *Replica) latchedLocked(spans []kv.Span) (chan struct{}, bool) {
	if len(r.latches) == 0 {
		return nil, false
	}
	for k := range r.latches {
		for _, sp := range spans {
			if spanOverlapsKey(sp, []byte(k)) {
				return r.latchCh, true
			}
		}
	}
	return nil, false
}

// waitApplied blocks until the replica applied index reaches index.
func (r *Replica) waitApplied(ctx context.Context, index uint64) error {
	for {
		r.mu.Lock()
		if r.applied >= index {
			r.mu.Unlock()
			return nil
		}
		if r.destroyed != nil {
			r.mu.Unlock()
			return &kv.RangeNotFoundError{RangeID: r.rangeID}
		}
		ch := r.appliedCh
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return r.unavailable(ctx, "waiting for apply to reach the read index")
		}
	}
}

// startReads issues one ReadIndex for the reads queued this round (worker).
func (r *Replica) startReads(reads []*readRequest) {
	if len(reads) == 0 {
		return
	}
	st := r.raw.BasicStatus()
	var keep []*readRequest
	for _, rr := range reads {
		if st.RaftState != raft.StateLeader || st.GetTerm() != rr.term {
			r.mu.Lock()
			err := r.notLeaderErrorLocked()
			r.mu.Unlock()
			rr.finish(err)
			continue
		}
		keep = append(keep, rr)
	}
	if len(keep) == 0 {
		return
	}
	r.readSeq++
	ctx := binary.BigEndian.AppendUint64(nil, r.readSeq)
	r.readBatches[r.readSeq] = keep
	r.raw.ReadIndex(ctx)
}

// finishReads hands read indexes to their waiters (worker). A read state
// only comes out of raft on the leader of the term the read was admitted
// in, after a quorum confirmed that leadership.
func (r *Replica) finishReads(seqCtx []byte, index uint64) {
	if len(seqCtx) != 8 {
		return
	}
	seq := binary.BigEndian.Uint64(seqCtx)
	batch := r.readBatches[seq]
	delete(r.readBatches, seq)
	for _, rr := range batch {
		rr.index = index
		rr.finish(nil)
	}
}

// failReads fails every read waiting for a read index (leadership lost).
func (r *Replica) failReads(err error) {
	for seq, batch := range r.readBatches {
		for _, rr := range batch {
			rr.finish(err)
		}
		delete(r.readBatches, seq)
	}
}
