package raftgroup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// stagedSnapshot is a received snapshot waiting for raft to accept it: its
// MVCC data is already written to SSTs (or, for an in-memory engine, held in
// memory); the range-local state is written at apply, from the hard state
// raft hands over in the same Ready.
type stagedSnapshot struct {
	index uint64
	desc  *kv.RangeDescriptor
	files []string    // one SST per MVCC span (on-disk engines)
	kvs   [][2][]byte // the MVCC data (in-memory engines)
	done  chan error  // buffered; receives the outcome once
	used  bool
}

func (st *stagedSnapshot) cleanup() {
	for _, f := range st.files {
		_ = os.Remove(f)
	}
}

// HandleSnapshot implements MessageHandler: it receives the snapshot's data,
// stages it, steps the MsgSnap into the replica (creating an uninitialized
// one if needed) and returns once the snapshot was applied or refused.
// Concurrent applies are bounded by MaxConcurrentSnapshotApplies.
func (s *Store) HandleSnapshot(ctx context.Context, header *RaftMessage, recv func() ([]byte, error)) error {
	if !s.enter() {
		return ErrStoreStopped
	}
	defer s.exit()
	m := header.Message
	if m == nil || m.GetType() != raftpb.MsgSnap || m.GetSnapshot().GetMetadata().GetIndex() == 0 {
		return &InvalidChangeError{RangeID: header.RangeID, Reason: "snapshot header is not a MsgSnap"}
	}
	select {
	case s.snapApplies <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return ErrStoreStopped
	}
	defer func() { <-s.snapApplies }()

	r, err := s.getOrCreateReplica(header.RangeID, m.GetTo())
	if err != nil {
		return err
	}
	if r.replicaID != m.GetTo() {
		return &ReplicaTombstonedError{RangeID: header.RangeID, ReplicaID: m.GetTo(), NextReplicaID: r.replicaID}
	}
	first, err := recv()
	if err != nil {
		return fmt.Errorf("raftgroup: r%d snapshot: receive header: %w", header.RangeID, err)
	}
	if !bytes.HasPrefix(first, []byte(snapshotMagic)) {
		return &InvalidChangeError{RangeID: header.RangeID, Reason: "snapshot stream without header"}
	}
	desc, err := kv.UnmarshalRangeDescriptor(first[len(snapshotMagic):])
	if err != nil {
		return err
	}
	if desc.RangeID != header.RangeID {
		return &InvalidChangeError{RangeID: header.RangeID, Reason: fmt.Sprintf("snapshot carries the descriptor of r%d", desc.RangeID)}
	}
	if err := s.checkSnapshotOverlap(desc); err != nil {
		return err
	}
	st, err := s.stageSnapshot(desc, m.GetSnapshot().GetMetadata().GetIndex(), recv)
	if err != nil {
		return err
	}
	if err := r.runOnOwner(func(r *Replica) {
		r.stagedSnaps = append(r.stagedSnaps, st)
		if err := r.raw.Step(m); err != nil {
			r.log.Debug("step snapshot", "err", err)
		}
	}); err != nil {
		st.cleanup()
		return err
	}
	select {
	case err := <-st.done:
		return err
	case <-ctx.Done():
		// The worker still owns st and cleans it up.
		return ctx.Err()
	case <-s.ctx.Done():
		return ErrStoreStopped
	}
}

// checkSnapshotOverlap refuses a snapshot whose keys an initialized replica
// of another range here still owns (this store has not applied the split
// that separated them yet).
func (s *Store) checkSnapshotOverlap(desc *kv.RangeDescriptor) error {
	for _, r := range s.replicaList(nil) {
		if r.rangeID == desc.RangeID {
			continue
		}
		d := r.descriptor()
		if d != nil && bytes.Compare(d.StartKey, desc.EndKey) < 0 && bytes.Compare(desc.StartKey, d.EndKey) < 0 {
			return &SnapshotOverlapError{RangeID: desc.RangeID, OverlappingRangeID: d.RangeID}
		}
	}
	return nil
}

// stageSnapshot receives the data chunks into one SST per MVCC span (each
// starting with a range deletion of its span, so ingesting it replaces what
// was there), or into memory for an in-memory engine.
func (s *Store) stageSnapshot(desc *kv.RangeDescriptor, index uint64, recv func() ([]byte, error)) (*stagedSnapshot, error) {
	st := &stagedSnapshot{index: index, desc: desc, done: make(chan error, 1)}
	spans := kv.MVCCSpans(desc.StartKey, desc.EndKey)
	var writers []*sstable.Writer
	onDisk := s.engine.Dir() != ""
	if onDisk {
		dir := filepath.Join(s.engine.Dir(), "snapshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("raftgroup: snapshot dir: %w", err)
		}
		for i, sp := range spans {
			path := filepath.Join(dir, fmt.Sprintf("r%d-%d-%d-%d.sst", desc.RangeID, index, s.nextProposalID(), i))
			f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
			if err != nil {
				st.cleanup()
				return nil, fmt.Errorf("raftgroup: create snapshot sst: %w", err)
			}
			st.files = append(st.files, path)
			w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{TableFormat: s.engine.DB().TableFormat()})
			if err := w.DeleteRange(sp[0], sp[1]); err != nil {
				_ = w.Close()
				st.cleanup()
				return nil, fmt.Errorf("raftgroup: snapshot sst: %w", err)
			}
			writers = append(writers, w)
		}
	}
	fail := func(err error) (*stagedSnapshot, error) {
		for _, w := range writers {
			_ = w.Close()
		}
		st.cleanup()
		return nil, err
	}
	for {
		chunk, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("raftgroup: r%d snapshot: receive: %w", desc.RangeID, err))
		}
		for len(chunk) > 0 {
			span := int(chunk[0])
			key, rest, err1 := readUvarintBytes(chunk[1:])
			if err1 != nil {
				return fail(err1)
			}
			val, rest, err2 := readUvarintBytes(rest)
			if err2 != nil {
				return fail(err2)
			}
			chunk = rest
			if span >= len(spans) || bytes.Compare(key, spans[span][0]) < 0 || bytes.Compare(key, spans[span][1]) >= 0 {
				return fail(&InvalidChangeError{RangeID: desc.RangeID, Reason: "snapshot key outside its span"})
			}
			if onDisk {
				if err := writers[span].Set(key, val); err != nil {
					return fail(fmt.Errorf("raftgroup: snapshot sst: %w", err))
				}
			} else {
				st.kvs = append(st.kvs, [2][]byte{append([]byte(nil), key...), append([]byte(nil), val...)})
			}
		}
	}
	for i, w := range writers {
		writers[i] = nil
		if err := w.Close(); err != nil {
			return fail(fmt.Errorf("raftgroup: finish snapshot sst: %w", err))
		}
	}
	return st, nil
}

func readUvarintBytes(b []byte) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, &InvalidChangeError{Reason: "malformed snapshot record"}
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// applySnapshot installs the staged snapshot raft accepted (worker): the
// range-local state and the MVCC data replace what the replica had, in one
// atomic ingest.
func (r *Replica) applySnapshot(snap *raftpb.Snapshot, hs *raftpb.HardState) error {
	meta := snap.GetMetadata()
	var st *stagedSnapshot
	for _, c := range r.stagedSnaps {
		if c.index == meta.GetIndex() && !c.used {
			st = c
		}
	}
	if st == nil {
		return fmt.Errorf("raftgroup: r%d: raft accepted snapshot %d without staged data", r.rangeID, meta.GetIndex())
	}
	st.used = true
	s := r.store
	if hs == nil {
		hs = r.storage.currentHardState()
	}
	hs = cloneHardState(hs)
	if hs.GetCommit() < meta.GetIndex() {
		hs.Commit = new(meta.GetIndex())
	}
	applied := appliedState{Index: meta.GetIndex(), Term: meta.GetTerm(), ConfState: proto.Clone(raftpb.EnsureConfState(meta.GetConfState())).(*raftpb.ConfState)}
	tomb, err := kv.GetRaw(s.engine.DB(), kv.RangeTombstoneKey(r.rangeID))
	if err != nil {
		return err
	}
	// Range-local state, in key order: applied 'a', descriptor 'd', hard
	// state 'h', replica ID 'i', truncated 't', tombstone 'x'.
	local := [][2][]byte{
		{kv.RaftAppliedStateKey(r.rangeID), encodeAppliedState(applied)},
		{kv.RangeDescriptorKey(r.rangeID), st.desc.Marshal()},
		{kv.RaftHardStateKey(r.rangeID), marshalHardState(hs)},
		{kv.RaftReplicaIDKey(r.rangeID), encodeUint64(r.replicaID)},
		{kv.RaftTruncatedStateKey(r.rangeID), encodeTruncatedState(truncatedState{Index: applied.Index, Term: applied.Term})},
	}
	if tomb != nil {
		local = append(local, [2][]byte{kv.RangeTombstoneKey(r.rangeID), tomb})
	}
	localStart, localEnd := kv.RangeLocalSpan(r.rangeID)
	if len(st.files) > 0 {
		path := st.files[0] + ".local.sst"
		f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("raftgroup: create snapshot sst: %w", err)
		}
		w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{TableFormat: s.engine.DB().TableFormat()})
		err = w.DeleteRange(localStart, localEnd)
		for _, kvp := range local {
			if err == nil {
				err = w.Set(kvp[0], kvp[1])
			}
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("raftgroup: write snapshot sst: %w", err)
		}
		paths := append([]string{path}, st.files...)
		if err := s.engine.DB().Ingest(context.Background(), paths); err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("raftgroup: r%d: ingest snapshot: %w", r.rangeID, err)
		}
		_ = os.Remove(path)
		st.cleanup() // ingest hard-links or copies; the staged files are ours to remove
	} else {
		b := s.engine.NewWriteBatch()
		err := b.DeleteRange(localStart, localEnd, nil)
		for _, sp := range kv.MVCCSpans(st.desc.StartKey, st.desc.EndKey) {
			if err == nil {
				err = b.DeleteRange(sp[0], sp[1], nil)
			}
		}
		for _, kvp := range append(local, st.kvs...) {
			if err == nil {
				err = b.Set(kvp[0], kvp[1], nil)
			}
		}
		if err == nil {
			err = s.engine.Commit(b, true)
		}
		_ = b.Close()
		if err != nil {
			return fmt.Errorf("raftgroup: r%d: apply snapshot: %w", r.rangeID, err)
		}
	}
	r.storage.resetToSnapshot(hs, applied)
	s.metrics.snapshotsApplied.Add(1)
	var ambiguous []*proposal
	r.mu.Lock()
	r.desc = st.desc
	r.applied = applied.Index
	close(r.appliedCh)
	r.appliedCh = make(chan struct{})
	for id, p := range r.proposals {
		if p.index != 0 && p.index <= applied.Index {
			delete(r.proposals, id)
			r.releaseLatchesLocked(p)
			ambiguous = append(ambiguous, p)
		}
	}
	r.mu.Unlock()
	for _, p := range ambiguous {
		p.finish(nil, &kv.RangeUnavailableError{RangeID: r.rangeID, Reason: "replica caught up by snapshot; outcome of the proposal unknown"})
	}
	st.done <- nil
	return nil
}

// resolveStagedSnapshots answers staged snapshots raft did not accept this
// round (stale or duplicate): the sender learns the rest from raft's own
// responses (worker).
func (r *Replica) resolveStagedSnapshots() {
	if len(r.stagedSnaps) == 0 {
		return
	}
	for _, st := range r.stagedSnaps {
		if !st.used {
			st.cleanup()
			st.done <- nil
		}
	}
	r.stagedSnaps = nil
}
