package kv

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ReplicaType says whether a replica votes.
type ReplicaType uint8

const (
	// Voter replicas count towards the quorum.
	Voter ReplicaType = iota
	// Learner replicas receive the log but do not vote; a new replica is a
	// learner until it has caught up.
	Learner
)

func (t ReplicaType) String() string {
	if t == Learner {
		return "learner"
	}
	return "voter"
}

// ReplicaDescriptor names one replica of a range: the node that hosts it and
// its Raft ID inside the range's group. Replica IDs are never reused.
type ReplicaDescriptor struct {
	NodeID    uint64      `json:"node_id"`
	ReplicaID uint64      `json:"replica_id"`
	Type      ReplicaType `json:"type,omitempty"`
}

// RangeDescriptor describes a range of the user key space [StartKey, EndKey).
// The authoritative copy lives in the range's own replicated state; etcd holds a
// published copy. Generation increases with every split and membership change,
// so a stale copy can be detected by comparing generations.
type RangeDescriptor struct {
	RangeID       uint64              `json:"range_id"`
	StartKey      []byte              `json:"start_key"`
	EndKey        []byte              `json:"end_key"`
	Replicas      []ReplicaDescriptor `json:"replicas"`
	Generation    uint64              `json:"generation"`
	NextReplicaID uint64              `json:"next_replica_id"`
}

// KeyMin is the smallest user key; the first range starts here.
var KeyMin = []byte{}

// KeyMax sorts after every user key; the last range ends here. User keys must
// not start with 0xff 0xff.
var KeyMax = []byte{0xff, 0xff}

// ContainsKey reports whether key lies in [StartKey, EndKey).
func (d *RangeDescriptor) ContainsKey(key []byte) bool {
	return bytes.Compare(key, d.StartKey) >= 0 && bytes.Compare(key, d.EndKey) < 0
}

// ContainsSpan reports whether [start, end) lies in the range. An empty end
// means the single key start.
func (d *RangeDescriptor) ContainsSpan(start, end []byte) bool {
	if len(end) == 0 {
		return d.ContainsKey(start)
	}
	return bytes.Compare(start, d.StartKey) >= 0 && bytes.Compare(end, d.EndKey) <= 0
}

// Replica returns the descriptor of the replica on nodeID, if any.
func (d *RangeDescriptor) Replica(nodeID uint64) (ReplicaDescriptor, bool) {
	for _, r := range d.Replicas {
		if r.NodeID == nodeID {
			return r, true
		}
	}
	return ReplicaDescriptor{}, false
}

// Clone returns a deep copy.
func (d *RangeDescriptor) Clone() *RangeDescriptor {
	c := *d
	c.StartKey = append([]byte(nil), d.StartKey...)
	c.EndKey = append([]byte(nil), d.EndKey...)
	c.Replicas = append([]ReplicaDescriptor(nil), d.Replicas...)
	return &c
}

func (d *RangeDescriptor) String() string {
	return fmt.Sprintf("r%d[%q,%q) gen=%d replicas=%v", d.RangeID, d.StartKey, d.EndKey, d.Generation, d.Replicas)
}

// Marshal encodes the descriptor. JSON keeps the published copy in etcd
// readable with etcdctl; descriptors change rarely, so size does not matter.
func (d *RangeDescriptor) Marshal() []byte {
	b, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("kv: marshal range descriptor: %v", err)) // only plain fields: cannot fail
	}
	return b
}

// UnmarshalRangeDescriptor decodes what Marshal produced.
func UnmarshalRangeDescriptor(b []byte) (*RangeDescriptor, error) {
	var d RangeDescriptor
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("kv: decode range descriptor: %w", err)
	}
	return &d, nil
}
