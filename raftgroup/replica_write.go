package raftgroup

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// proposal is one command proposed by this node, from Propose until its
// entry applied here or is known to be lost.
type proposal struct {
	id   uint64
	data []byte               // envelope of a normal entry
	cc   *raftpb.ConfChangeV2 // set for a membership change (data unused)
	// latchKeys are held from proposal to apply (1PC commands).
	latchKeys []string
	// index and term of the entry, known after the Ready that appended it
	// (worker-owned).
	index, term uint64

	once sync.Once
	done chan proposalResult
}

type proposalResult struct {
	resp *kv.Response
	err  error
}

func newProposal(id uint64) *proposal {
	return &proposal{id: id, done: make(chan proposalResult, 1)}
}

func (p *proposal) finish(resp *kv.Response, err error) {
	p.once.Do(func() { p.done <- proposalResult{resp: resp, err: err} })
}

// Execute serves one kv request on a range this node holds: writes are
// proposed through raft and answered with their apply result, reads are
// served by the leader after a ReadIndex. It is the entry point of the KV
// RPC service and the transaction layer.
//
// Errors: kv's request errors (the deterministic answer of the command),
// *kv.NotLeaderError with the leader's node when known,
// *kv.RangeNotFoundError, *kv.KeyOutOfRangeError / *kv.EpochMismatchError
// for keys outside the range, *kv.ProposalDroppedError when the entry was
// lost before commit (safe to retry), and *kv.RangeUnavailableError when the
// wait ran out (ctx deadline, or the store's RequestTimeout when ctx has
// none): for a write that outcome is ambiguous, the command may still apply.
func (s *Store) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if !s.enter() {
		return nil, ErrStoreStopped
	}
	defer s.exit()
	if err := checkOneOperation(req); err != nil {
		return nil, err
	}
	r := s.replica(rangeID)
	if r == nil {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if kv.IsReadOnly(req) {
		return r.executeRead(ctx, req)
	}
	return r.executeWrite(ctx, req)
}

// waitLeadership returns nil when this replica is the leader, a NotLeader
// error naming the leader when another replica leads, and waits while no
// leader is known (an election is under way) until ctx is done.
func (r *Replica) waitLeadership(ctx context.Context) error {
	for {
		r.mu.Lock()
		if r.destroyed != nil {
			r.mu.Unlock()
			return &kv.RangeNotFoundError{RangeID: r.rangeID}
		}
		if r.desc == nil {
			r.mu.Unlock()
			return &kv.RangeUnavailableError{RangeID: r.rangeID, Reason: "replica not initialized yet"}
		}
		if r.isLeader {
			r.mu.Unlock()
			return nil
		}
		if r.leaderID != 0 {
			// A client came here, maybe because the leader's node does not
			// answer: a quiesced follower resumes ticking so it notices a
			// dead leader and can take over.
			if r.quiesced {
				r.setQuiescedLocked(false)
				defer r.store.sched.enqueue(r.rangeID)
			}
			err := r.notLeaderErrorLocked()
			r.mu.Unlock()
			return err
		}
		ch := r.leaderCh
		r.setQuiescedLocked(false) // an election needs ticks
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return r.unavailable(ctx, "no leader")
		}
	}
}

func (r *Replica) unavailable(ctx context.Context, what string) error {
	return &kv.RangeUnavailableError{RangeID: r.rangeID, Reason: fmt.Sprintf("%s: %v", what, context.Cause(ctx))}
}

// checkSpans answers a request whose keys are not all in the range.
func (r *Replica) checkSpans(req *kv.Request) error {
	desc := r.descriptor()
	if desc == nil {
		return &kv.RangeUnavailableError{RangeID: r.rangeID, Reason: "replica not initialized yet"}
	}
	if key, outside := firstKeyOutside(desc, requestSpans(req)); outside {
		return r.store.routingError(desc, key)
	}
	return nil
}

func (r *Replica) executeWrite(ctx context.Context, req *kv.Request) (*kv.Response, error) {
	if err := r.waitLeadership(ctx); err != nil {
		return nil, err
	}
	if err := r.checkSpans(req); err != nil {
		return nil, err
	}
	p := newProposal(r.store.nextProposalID())
	if req.OnePhaseCommit == nil {
		p.data = encodeEnvelope(kindKV, p.id, req.Marshal())
		return r.propose(ctx, p)
	}
	requestedCommitTS := req.OnePhaseCommit.CommitTS
	if err := r.proposeOnePhaseCommit(req, p); err != nil {
		return nil, err
	}
	resp, err := r.awaitProposal(ctx, p)
	if err == nil && resp != nil && resp.OnePhaseCommit != nil && resp.OnePhaseCommit.CommitTS > requestedCommitTS {
		if werr := r.commitWait(ctx, resp.OnePhaseCommit.CommitTS); werr != nil {
			return nil, werr
		}
	}
	return resp, err
}

// commitWait returns once the clock (the timestamp oracle) has handed out a
// timestamp at or above commitTS. A 1PC whose commit timestamp the leader
// raised above the one the client took (above max_read_ts) may be ahead of
// the oracle; answering before the oracle passes it would let a read that
// starts after this commit returned take a smaller timestamp and miss the
// write. The oracle's timestamps are far denser than these bumps, so this
// is one clock call in practice. The write is already durable: a clock
// failure makes the outcome ambiguous to the caller, not lost.
func (r *Replica) commitWait(ctx context.Context, commitTS kv.Timestamp) error {
	for {
		now := r.store.cfg.Clock()
		if now >= commitTS {
			return nil
		}
		if now == 0 || ctx.Err() != nil {
			return &kv.RangeUnavailableError{RangeID: r.rangeID,
				Reason: fmt.Sprintf("committed at %d but the clock could not be read past it (outcome known to the range, not to the caller)", commitTS)}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
}

// propose hands p to the owner worker and waits for its outcome.
func (r *Replica) propose(ctx context.Context, p *proposal) (*kv.Response, error) {
	r.store.metrics.proposals.Add(1)
	if err := r.submit(func(b *inbox) { b.proposals = append(b.proposals, p) }); err != nil {
		r.releaseLatches(p)
		return nil, &kv.RangeNotFoundError{RangeID: r.rangeID}
	}
	return r.awaitProposal(ctx, p)
}

// awaitProposal waits for the outcome of a queued proposal.
func (r *Replica) awaitProposal(ctx context.Context, p *proposal) (*kv.Response, error) {
	select {
	case res := <-p.done:
		return res.resp, res.err
	case <-ctx.Done():
		// The entry may still commit and apply; its latches stay until it
		// does or is known lost.
		return nil, r.unavailable(ctx, "waiting for the proposal to apply (outcome unknown)")
	}
}

// proposeOnePhaseCommit fixes the commit timestamp of a 1PC command above
// every read this leader served (and every timestamp it closed), latches its
// keys until it applies, and queues its entry, all in one critical section:
// a read at or above the commit timestamp either waits for the apply or was
// served before and is covered by the bumped timestamp, and a close queued
// after this entry is ordered after it in the log.
func (r *Replica) proposeOnePhaseCommit(req *kv.Request, p *proposal) error {
	// Seed max_read_ts from the clock once per leadership term; the clock
	// may be a network call, so it is read outside the lock.
	r.mu.Lock()
	needSeed := r.maxReadTSTerm != r.term
	r.mu.Unlock()
	var fresh uint64
	if needSeed {
		fresh = r.store.cfg.Clock()
	}
	r.mu.Lock()
	if r.destroyed != nil {
		r.mu.Unlock()
		return &kv.RangeNotFoundError{RangeID: r.rangeID}
	}
	if !r.isLeader {
		err := r.notLeaderErrorLocked()
		r.mu.Unlock()
		return err
	}
	if r.maxReadTSTerm != r.term {
		if fresh == 0 {
			// Leadership changed again between the two locks: retry is
			// cheaper than reasoning about which term fresh belongs to.
			r.mu.Unlock()
			return &kv.ProposalDroppedError{RangeID: r.rangeID}
		}
		r.maxReadTS = max(r.maxReadTS, fresh)
		r.maxReadTSTerm = r.term
	}
	opc := r.latchOnePhaseCommitLocked(req.OnePhaseCommit, p)
	p.data = encodeEnvelope(kindKV, p.id, (&kv.Request{OnePhaseCommit: opc}).Marshal())
	r.queueProposalLocked(p)
	r.mu.Unlock()
	r.store.metrics.proposals.Add(1)
	r.store.sched.enqueue(r.rangeID)
	return nil
}

// latchOnePhaseCommitLocked returns the command with its commit timestamp
// above max_read_ts, raises max_read_ts to it and latches the command's keys
// on p (r.mu held).
func (r *Replica) latchOnePhaseCommitLocked(cmd *kv.OnePhaseCommitRequest, p *proposal) *kv.OnePhaseCommitRequest {
	opc := *cmd
	opc.CommitTS = max(opc.CommitTS, r.maxReadTS+1)
	// The command validates its read spans up to CommitTS when it applies:
	// that is a read at CommitTS, so it must raise max_read_ts like any
	// other read. Otherwise a 1PC proposed after this one could take a
	// lower commit timestamp and write, below CommitTS, a key this one
	// already validated (write skew between two 1PCs of one range).
	r.maxReadTS = max(r.maxReadTS, opc.CommitTS)
	for _, m := range opc.Mutations {
		k := string(m.Key)
		p.latchKeys = append(p.latchKeys, k)
		r.latches[k]++
	}
	return &opc
}

// releaseLatches drops p's latches (once) and wakes waiting reads.
func (r *Replica) releaseLatches(p *proposal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLatchesLocked(p)
}

func (r *Replica) releaseLatchesLocked(p *proposal) {
	if len(p.latchKeys) == 0 {
		return
	}
	for _, k := range p.latchKeys {
		if r.latches[k] <= 1 {
			delete(r.latches, k)
		} else {
			r.latches[k]--
		}
	}
	p.latchKeys = nil
	close(r.latchCh)
	r.latchCh = make(chan struct{})
}

func (r *Replica) releaseAllLatches() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.proposals {
		r.releaseLatchesLocked(p)
	}
}

// checkOneOperation refuses a request that is nil or does not set exactly
// one operation before anything is proposed (apply would refuse it too, at
// the cost of a log entry).
func checkOneOperation(req *kv.Request) error {
	if req == nil {
		return &kv.InvalidRequestError{Reason: "nil request"}
	}
	n := 0
	for _, set := range []bool{req.Get != nil, req.Scan != nil, req.ValidateReads != nil, req.Prewrite != nil,
		req.Commit != nil, req.Rollback != nil, req.CheckTxnStatus != nil, req.ResolveLock != nil,
		req.TxnHeartbeat != nil, req.OnePhaseCommit != nil, req.GC != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return &kv.InvalidRequestError{Reason: fmt.Sprintf("%d operations set, want exactly 1", n)}
	}
	return nil
}
