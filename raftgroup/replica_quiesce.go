package raftgroup

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Quiescence: a leader whose group is idle (nothing pending, every member
// has the whole log and applied it) for QuiesceAfterTicks ticks sends each
// follower a heartbeat marked "quiesce" and stops ticking; a follower that
// receives it with its log caught up stops ticking too. Any proposal or
// message other than heartbeat traffic wakes the group. Because a quiesced
// follower does not notice a dead leader by itself, the node's liveness
// watcher calls ReportUnreachable for dead nodes, which wakes their groups.
const quiesceMarker = "quorumdb:quiesce"

func isQuiesceHeartbeat(m *raftpb.Message) bool {
	return m.GetType() == raftpb.MsgHeartbeat && string(m.GetContext()) == quiesceMarker
}

// wakeLocked ends quiescence for an incoming message (r.mu held).
func (r *Replica) wakeLocked(m *raftpb.Message) {
	switch m.GetType() {
	case raftpb.MsgHeartbeatResp:
		// Answers to the leader's own (possibly quiescing) heartbeats.
	case raftpb.MsgHeartbeat:
		if !isQuiesceHeartbeat(m) {
			r.setQuiescedLocked(false)
		}
	default:
		r.setQuiescedLocked(false)
		r.idleTicks = 0
	}
}

func (r *Replica) noteIdleTick(n int) {
	r.mu.Lock()
	r.idleTicks += n
	r.mu.Unlock()
}

func (r *Replica) noteActivity() {
	r.mu.Lock()
	r.idleTicks = 0
	r.mu.Unlock()
}

// maybeQuiesce quiesces an idle group whose leader this replica is (worker).
func (r *Replica) maybeQuiesce() {
	after := r.store.cfg.QuiesceAfterTicks
	if after < 0 {
		return
	}
	r.mu.Lock()
	idle := r.isLeader && !r.quiesced && r.idleTicks >= after && len(r.proposals) == 0 && r.inbox.empty()
	r.mu.Unlock()
	if !idle || len(r.readBatches) > 0 {
		return
	}
	st := r.raw.Status()
	_, last := r.storage.bounds()
	if st.RaftState != raft.StateLeader || st.Applied != st.GetCommit() || st.GetCommit() != last || st.LeadTransferee != 0 ||
		len(st.Config.Voters[1]) > 0 {
		return
	}
	for _, pr := range st.Progress {
		if pr.Match != last {
			return
		}
	}
	self := r.store.cfg.NodeID
	for id := range st.Progress {
		if id == r.replicaID {
			continue
		}
		r.mu.Lock()
		to := r.nodeOfReplicaLocked(id)
		r.mu.Unlock()
		if to == 0 {
			return
		}
		r.store.cfg.Transport.Send(&RaftMessage{RangeID: r.rangeID, FromNode: self, ToNode: to, Message: &raftpb.Message{
			Type:    raftpb.MsgHeartbeat.Enum(),
			From:    new(r.replicaID),
			To:      new(id),
			Term:    new(st.GetTerm()),
			Commit:  new(last),
			Context: []byte(quiesceMarker),
		}})
	}
	r.mu.Lock()
	r.setQuiescedLocked(true)
	r.mu.Unlock()
	r.storage.dropCache()
}

// stepQuiesceHeartbeat handles a leader's quiesce heartbeat on a follower
// (worker): stepped like any heartbeat when the follower's log holds the
// commit index it names, and the follower quiesces if it is caught up.
func (r *Replica) stepQuiesceHeartbeat(m *raftpb.Message) {
	_, last := r.storage.bounds()
	if m.GetCommit() > last {
		// Behind: ignore; the leader wakes up on our next message.
		return
	}
	// The response echoes the context, and raft reads a heartbeat context
	// as its ReadIndex counter: step the heartbeat without the marker.
	hb := proto.Clone(m).(*raftpb.Message)
	hb.Context = nil
	_ = r.raw.Step(hb)
	st := r.raw.BasicStatus()
	if st.Lead == m.GetFrom() && st.GetTerm() == m.GetTerm() && st.GetCommit() == last && st.Applied == st.GetCommit() {
		r.mu.Lock()
		quiesced := r.inbox.empty()
		if quiesced {
			r.setQuiescedLocked(true)
		}
		r.mu.Unlock()
		if quiesced {
			r.storage.dropCache()
		}
	}
}

// maybeTruncateLog drops applied entries once the log is long (worker).
func (r *Replica) maybeTruncateLog() {
	cfg := r.store.cfg
	first, last := r.storage.bounds()
	if last < first || last-first+1 <= cfg.LogTruncateThreshold {
		return
	}
	a := r.storage.appliedState()
	if a.Index <= cfg.LogKeepEntries {
		return
	}
	target := a.Index - cfg.LogKeepEntries
	if r.isLeaderNow() {
		// Keep what a follower still needs unless it is so far behind that
		// a snapshot is the cheaper way to catch it up.
		r.raw.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			if id != r.replicaID && pr.Match < target && a.Index-pr.Match <= cfg.LogTruncateThreshold {
				target = pr.Match
			}
		})
	}
	if target < first {
		return
	}
	term, err := r.storage.Term(target)
	if err != nil {
		return
	}
	b := r.store.engine.NewWriteBatch()
	defer b.Close()
	if err := r.storage.writeTruncate(b, target, term); err != nil {
		r.store.fatal(err)
	}
	if err := r.store.engine.Commit(b, false); err != nil {
		r.store.fatal(err)
	}
	r.storage.truncatedTo(target, term)
}
