package raftgroup

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// Snapshot stream format (the data behind a MsgSnap):
//
//	chunk 0:  "QSN1" | descriptor (kv encoding)
//	chunk 1+: records  spanIndex (1 byte) | uvarint len | key | uvarint len | value
//
// spanIndex numbers kv.MVCCSpans(desc). Range-local state is not sent: the
// receiver rebuilds it from the snapshot metadata and the descriptor.
const snapshotMagic = "QSN1"

// snapshotSendTimeout bounds one snapshot transfer.
const snapshotSendTimeout = 2 * time.Minute

// onStorageSnapshot is called by logStorage.Snapshot on the owner worker:
// it pins a pebble snapshot at the applied index the metadata names.
func (r *Replica) onStorageSnapshot(index uint64) {
	if ref := r.snapStash[index]; ref != nil {
		ref.round = r.round
		return
	}
	r.snapStash[index] = &snapRef{snap: r.store.engine.NewSnapshot(), index: index, round: r.round, refs: 1}
}

// releaseOldSnapshots drops pinned snapshots no MsgSnap claimed within a
// round (worker).
func (r *Replica) releaseOldSnapshots() {
	for idx, ref := range r.snapStash {
		if ref.round+1 < r.round {
			delete(r.snapStash, idx)
			ref.release()
		}
	}
}

// sendSnapshot streams the data of m's snapshot to node to in the
// background and reports the outcome to raft (worker).
func (r *Replica) sendSnapshot(m *raftpb.Message, to uint64) {
	idx := m.GetSnapshot().GetMetadata().GetIndex()
	ref := r.snapStash[idx]
	if ref == nil {
		r.raw.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
		return
	}
	ref.acquire()
	s := r.store
	s.metrics.snapshotsSent.Add(1)
	header := &RaftMessage{RangeID: r.rangeID, FromNode: s.cfg.NodeID, ToNode: to, Message: m}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer ref.release()
		ctx, cancel := context.WithTimeout(s.ctx, snapshotSendTimeout)
		defer cancel()
		err := s.cfg.Transport.SendSnapshot(ctx, header, snapshotSource(r.rangeID, ref.snap, s.cfg.SnapshotChunkBytes))
		status := raft.SnapshotFinish
		if err != nil {
			status = raft.SnapshotFailure
			r.log.Debug("snapshot send failed", "to", to, "index", idx, "err", err)
		}
		_ = r.runOnOwner(func(r *Replica) { r.raw.ReportSnapshot(m.GetTo(), status) })
	}()
}

// snapshotSource produces the stream of a range's data from a pebble
// snapshot.
func snapshotSource(rangeID uint64, snap *pebble.Snapshot, chunkBytes int) SnapshotSource {
	return func(send func(chunk []byte) error) error {
		raw, err := kv.GetRaw(snap, kv.RangeDescriptorKey(rangeID))
		if err != nil {
			return fmt.Errorf("raftgroup: r%d snapshot: read descriptor: %w", rangeID, err)
		}
		if raw == nil {
			return fmt.Errorf("raftgroup: r%d snapshot: no descriptor", rangeID)
		}
		desc, err := kv.UnmarshalRangeDescriptor(raw)
		if err != nil {
			return err
		}
		if err := send(append([]byte(snapshotMagic), raw...)); err != nil {
			return err
		}
		buf := make([]byte, 0, chunkBytes+1024)
		for i, sp := range kv.MVCCSpans(desc.StartKey, desc.EndKey) {
			it, err := snap.NewIter(&pebble.IterOptions{LowerBound: sp[0], UpperBound: sp[1]})
			if err != nil {
				return fmt.Errorf("raftgroup: r%d snapshot: iterate: %w", rangeID, err)
			}
			for valid := it.First(); valid; valid = it.Next() {
				v, err := it.ValueAndErr()
				if err != nil {
					_ = it.Close()
					return fmt.Errorf("raftgroup: r%d snapshot: read value: %w", rangeID, err)
				}
				buf = append(buf, byte(i))
				buf = binary.AppendUvarint(buf, uint64(len(it.Key())))
				buf = append(buf, it.Key()...)
				buf = binary.AppendUvarint(buf, uint64(len(v)))
				buf = append(buf, v...)
				if len(buf) >= chunkBytes {
					if err := send(buf); err != nil {
						_ = it.Close()
						return err
					}
					buf = make([]byte, 0, chunkBytes+1024)
				}
			}
			if err := it.Close(); err != nil {
				return fmt.Errorf("raftgroup: r%d snapshot: iterate: %w", rangeID, err)
			}
		}
		if len(buf) > 0 {
			return send(buf)
		}
		return nil
	}
}
