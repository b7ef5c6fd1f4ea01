package raftgroup

import (
	"bytes"

	"github.com/quorumdb/quorumdb/kv"
)

// requestSpans lists the user keys and spans a request touches inside its
// range (a Prewrite's Primary is only a pointer to another key and may live
// elsewhere, so it is not listed).
func requestSpans(req *kv.Request) []kv.Span {
	var out []kv.Span
	key := func(k []byte) { out = append(out, kv.Span{Key: k}) }
	switch {
	case req.Get != nil:
		key(req.Get.Key)
	case req.Scan != nil:
		out = append(out, kv.Span{Key: req.Scan.Start, EndKey: req.Scan.End})
	case req.ValidateReads != nil:
		out = append(out, req.ValidateReads.Spans...)
	case req.Prewrite != nil:
		for _, m := range req.Prewrite.Mutations {
			key(m.Key)
		}
	case req.Commit != nil:
		for _, k := range req.Commit.Keys {
			key(k)
		}
	case req.Rollback != nil:
		for _, k := range req.Rollback.Keys {
			key(k)
		}
	case req.CheckTxnStatus != nil:
		key(req.CheckTxnStatus.PrimaryKey)
	case req.ResolveLock != nil:
		for _, k := range req.ResolveLock.Keys {
			key(k)
		}
	case req.TxnHeartbeat != nil:
		key(req.TxnHeartbeat.PrimaryKey)
	case req.OnePhaseCommit != nil:
		for _, m := range req.OnePhaseCommit.Mutations {
			key(m.Key)
		}
		out = append(out, req.OnePhaseCommit.ReadSpans...)
	case req.GC != nil:
		out = append(out, kv.Span{Key: req.GC.Start, EndKey: req.GC.End})
	}
	return out
}

// readTimestamp is the timestamp at which a read observes the range: the
// leader's max_read_ts must cover it before the read is served.
func readTimestamp(req *kv.Request) kv.Timestamp {
	switch {
	case req.Get != nil:
		return req.Get.ReadTS
	case req.Scan != nil:
		return req.Scan.ReadTS
	case req.ValidateReads != nil:
		return req.ValidateReads.To
	}
	return 0
}

// firstKeyOutside returns the first key or span start of spans not inside
// desc, or nil when all are inside.
func firstKeyOutside(desc *kv.RangeDescriptor, spans []kv.Span) ([]byte, bool) {
	for _, sp := range spans {
		if !desc.ContainsSpan(sp.Key, sp.EndKey) {
			return sp.Key, true
		}
	}
	return nil, false
}

// spanOverlapsKey reports whether key lies in sp (a single key when EndKey
// is empty).
func spanOverlapsKey(sp kv.Span, key []byte) bool {
	if len(sp.EndKey) == 0 {
		return bytes.Equal(sp.Key, key)
	}
	return bytes.Compare(key, sp.Key) >= 0 && bytes.Compare(key, sp.EndKey) < 0
}

// routingError is the answer to a request whose keys are not all inside
// desc: EpochMismatchError with the current descriptors when the client's
// descriptor predates a split (another range on this store now holds the
// key, or the key is inside desc but the request's span runs past desc's
// end), KeyOutOfRangeError otherwise.
func (s *Store) routingError(desc *kv.RangeDescriptor, key []byte) error {
	descs := []*kv.RangeDescriptor{desc.Clone()}
	// A span starting inside desc but ending past it: the client believed
	// the range was wider. The current descriptor is what it needs.
	found := desc.ContainsKey(key)
	for _, r := range s.replicaList(nil) {
		d := r.descriptor()
		if d == nil || d.RangeID == desc.RangeID {
			continue
		}
		if d.ContainsKey(key) || (found && bytes.Equal(d.StartKey, desc.EndKey)) {
			descs = append(descs, d.Clone())
			found = true
		}
	}
	if found {
		return &kv.EpochMismatchError{RangeID: desc.RangeID, Descriptors: descs}
	}
	return &kv.KeyOutOfRangeError{Key: append([]byte(nil), key...), RangeID: desc.RangeID, StartKey: desc.StartKey, EndKey: desc.EndKey}
}
