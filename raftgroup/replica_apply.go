package raftgroup

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// applyOutcome is what applying one range's committed entries of a round
// produced; finishApply publishes it once the apply batch is committed.
type applyOutcome struct {
	r        *Replica
	applied  appliedState
	desc     *kv.RangeDescriptor // descriptor after the entries (nil: unchanged)
	results  []applyResult
	deferred []applyResult         // answered by afterApply (splits)
	splits   []*kv.RangeDescriptor // right-hand descriptors created by splits
	removed  bool                  // a conf change removed this replica
	commits  int
	leftDesc *kv.RangeDescriptor // left descriptor at the time of the last split
	// closedTS is the highest closed timestamp after the entries (0: no
	// close entry among them).
	closedTS kv.Timestamp
}

type applyResult struct {
	p    *proposal
	resp *kv.Response
	err  error
	// afterSplit: a split's answer waits for afterApply, which creates the
	// right range here (SplitRange returns both descriptors).
	afterSplit bool
}

// applyEntries evaluates committed entries into b, deterministically: the
// same entries on the same state write the same keys on every replica. The
// applied state is written into b too (worker).
func (r *Replica) applyEntries(b *pebble.Batch, ents []*raftpb.Entry) (*applyOutcome, error) {
	o := &applyOutcome{r: r, applied: r.storage.appliedState()}
	desc := r.descriptor()
	descChanged := false
	for _, e := range ents {
		if e.GetIndex() <= o.applied.Index {
			continue // already applied (a snapshot covered it)
		}
		o.applied.Index, o.applied.Term = e.GetIndex(), e.GetTerm()
		o.commits++
		var (
			id   uint64
			resp *kv.Response
			err  error
		)
		switch e.GetType() {
		case raftpb.EntryNormal:
			if len(e.GetData()) == 0 {
				continue // a new leader's empty entry
			}
			kind, pid, payload, derr := decodeEnvelope(e.GetData())
			if derr != nil {
				r.log.Error("skipping undecodable entry", "index", e.GetIndex(), "err", derr)
				continue
			}
			id = pid
			switch kind {
			case kindKV:
				resp, err = r.applyKV(b, desc, payload)
				if err != nil && !kv.IsRequestError(err) && !isRoutingAnswer(err) {
					return nil, fmt.Errorf("raftgroup: r%d: apply entry %d: %w", r.rangeID, e.GetIndex(), err)
				}
			case kindSplit:
				// A split may delete the right half's data here (when that
				// range already moved away): closed reads pause until the new
				// descriptor is published with the committed batch.
				r.blockClosedReads()
				var left, right *kv.RangeDescriptor
				left, right, err = r.applySplit(b, desc, o.applied.ConfState, payload, max(r.ClosedTimestamp(), o.closedTS))
				if err == nil {
					desc, descChanged = left, true
					o.splits = append(o.splits, right)
					o.leftDesc = left
				} else if !isChangeAnswer(err) {
					return nil, err
				}
			case kindCloseTimestamp:
				var ts kv.Timestamp
				if ts, err = decodeCloseTimestamp(payload); err == nil {
					o.closedTS = max(o.closedTS, ts)
					resp = &kv.Response{}
				}
			default:
				err = &InvalidChangeError{RangeID: r.rangeID, Reason: fmt.Sprintf("%s command in a normal entry", kind)}
			}
		case raftpb.EntryConfChangeV2, raftpb.EntryConfChange:
			var cc raftpb.ConfChangeI
			if e.GetType() == raftpb.EntryConfChangeV2 {
				v2 := &raftpb.ConfChangeV2{}
				if uerr := proto.Unmarshal(e.GetData(), v2); uerr != nil {
					return nil, fmt.Errorf("raftgroup: r%d: decode conf change at %d: %w", r.rangeID, e.GetIndex(), uerr)
				}
				cc = v2
				if kind, pid, payload, derr := decodeEnvelope(v2.GetContext()); derr == nil {
					id = pid
					cmd, cerr := decodeChangeReplicasPayload(kind, payload)
					if cerr != nil {
						r.log.Error("conf change with an undecodable command; applying its raft changes only", "index", e.GetIndex(), "err", cerr)
					}
					if desc != nil {
						if cmd.BaseGeneration != desc.Generation && cerr == nil {
							r.log.Info("membership change computed from an older descriptor; applied to the current one",
								"index", e.GetIndex(), "base_generation", cmd.BaseGeneration, "generation", desc.Generation)
						}
						desc, descChanged = deriveChangedDescriptor(desc, v2, cmd), true
					}
				}
			} else {
				v1 := &raftpb.ConfChange{}
				if uerr := proto.Unmarshal(e.GetData(), v1); uerr != nil {
					return nil, fmt.Errorf("raftgroup: r%d: decode conf change at %d: %w", r.rangeID, e.GetIndex(), uerr)
				}
				cc = v1
			}
			o.applied.ConfState = r.raw.ApplyConfChange(cc)
			if !confStateHas(o.applied.ConfState, r.replicaID) {
				o.removed = true
			}
			if desc != nil {
				resp = &kv.Response{}
			}
		}
		if id != 0 {
			r.mu.Lock()
			p := r.proposals[id]
			if p != nil && p.index == e.GetIndex() {
				delete(r.proposals, id)
				isSplit := e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 && commandKind(e.GetData()[0]) == kindSplit
				o.results = append(o.results, applyResult{p: p, resp: resp, err: err, afterSplit: isSplit && err == nil})
			}
			r.mu.Unlock()
		}
	}
	if descChanged && desc != nil {
		if err := b.Set(kv.RangeDescriptorKey(r.rangeID), desc.Marshal(), nil); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: write descriptor: %w", r.rangeID, err)
		}
		o.desc = desc
	}
	if o.closedTS != 0 && o.closedTS > r.ClosedTimestamp() {
		if err := b.Set(kv.RangeClosedTimestampKey(r.rangeID), encodeUint64(o.closedTS), nil); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: write closed timestamp: %w", r.rangeID, err)
		}
	}
	if err := b.Set(kv.RaftAppliedStateKey(r.rangeID), encodeAppliedState(o.applied), nil); err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: write applied state: %w", r.rangeID, err)
	}
	return o, nil
}

// applyKV evaluates one kv command. Keys outside the descriptor in force at
// apply (a split applied after the proposal) are refused identically on
// every replica, with nothing written.
func (r *Replica) applyKV(b *pebble.Batch, desc *kv.RangeDescriptor, payload []byte) (*kv.Response, error) {
	req, err := kv.UnmarshalRequest(payload)
	if err != nil {
		return nil, &kv.InvalidRequestError{Reason: err.Error()}
	}
	if desc == nil {
		return nil, &kv.RangeUnavailableError{RangeID: r.rangeID, Reason: "applied a command without a descriptor"}
	}
	if key, outside := firstKeyOutside(desc, requestSpans(req)); outside {
		return nil, &kv.KeyOutOfRangeError{Key: key, RangeID: desc.RangeID, StartKey: desc.StartKey, EndKey: desc.EndKey}
	}
	return kv.Evaluate(b, desc, req)
}

// isRoutingAnswer: errors applyKV itself produces without touching storage.
func isRoutingAnswer(err error) bool {
	_, ok := err.(*kv.RangeUnavailableError)
	return ok
}

func confStateHas(cs *raftpb.ConfState, id uint64) bool {
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()} {
		for _, v := range set {
			if v == id {
				return true
			}
		}
	}
	return false
}

// finishApply publishes an apply whose batch is committed: the in-memory
// applied state, the descriptor, the waiters' results (worker).
func (r *Replica) finishApply(o *applyOutcome) {
	r.storage.setApplied(o.applied)
	r.store.metrics.commits.Add(uint64(o.commits))
	r.store.metrics.applies.Add(uint64(len(o.results)))
	var lost []*proposal
	r.mu.Lock()
	r.applied = o.applied.Index
	if o.desc != nil {
		r.desc = o.desc
	}
	r.closedReadsBlocked = false
	// Published only now that the batch is committed: a read served at the
	// closed timestamp takes its engine snapshot after this, so it sees
	// every entry before the close.
	r.closedTS = max(r.closedTS, o.closedTS)
	close(r.appliedCh)
	r.appliedCh = make(chan struct{})
	for _, res := range o.results {
		r.releaseLatchesLocked(res.p)
	}
	// A proposal whose index is now applied without it was overwritten by
	// another leader's entry: it can never apply.
	for id, p := range r.proposals {
		if p.index != 0 && p.index <= o.applied.Index {
			delete(r.proposals, id)
			r.releaseLatchesLocked(p)
			lost = append(lost, p)
		}
	}
	r.mu.Unlock()
	for _, res := range o.results {
		if res.afterSplit {
			o.deferred = append(o.deferred, res)
			continue
		}
		res.p.finish(res.resp, res.err)
	}
	for _, p := range lost {
		p.finish(nil, errDropped(r.rangeID))
	}
}

// afterApply runs what must follow Advance: creating split ranges and
// destroying a removed replica (worker).
func (r *Replica) afterApply(o *applyOutcome) {
	for _, right := range o.splits {
		if h := r.store.cfg.Knobs.BeforeSplitRangeCreated; h != nil {
			h(r.rangeID, right.RangeID)
		}
		r.store.afterSplit(r, right)
	}
	for _, res := range o.deferred {
		res.p.finish(res.resp, res.err)
	}
	if o.removed {
		r.store.removeReplica(r, o.desc)
	}
}

func errDropped(rangeID uint64) error { return &kv.ProposalDroppedError{RangeID: rangeID} }

func errReplicaGone(rangeID uint64) error { return &kv.RangeNotFoundError{RangeID: rangeID} }
