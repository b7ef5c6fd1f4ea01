package kv

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestErrorWireRoundTrip(t *testing.T) {
	desc := &RangeDescriptor{RangeID: 7, StartKey: []byte("a"), EndKey: []byte("m"),
		Replicas: []ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}}, Generation: 3, NextReplicaID: 2}
	cases := []error{
		&LockedError{Key: []byte("k\x00"), Primary: []byte("p"), StartTS: 10, TTL: 3000},
		&WriteConflictError{Key: []byte("k"), StartTS: 5, ConflictStartTS: 6, ConflictCommitTS: 7},
		&TxnAbortedError{Key: []byte("k"), StartTS: 5, Reason: "rollback marker"},
		&TxnCommittedError{Key: []byte("k"), StartTS: 5, CommitTS: 9},
		&SerializationError{Key: []byte("r"), StartTS: 4},
		&KeyOutOfRangeError{Key: []byte("z"), RangeID: 7, StartKey: []byte("a"), EndKey: []byte("m")},
		&InvalidRequestError{Reason: "no operation"},
		&NotLeaderError{RangeID: 3, LeaderNodeID: 2},
		&NotLeaderError{RangeID: 3},
		&RangeNotFoundError{RangeID: 9},
		&EpochMismatchError{RangeID: 7, Descriptors: []*RangeDescriptor{desc, desc.Clone()}},
		&ProposalDroppedError{RangeID: 1},
		&RangeUnavailableError{RangeID: 1, Reason: "no quorum"},
		&RemoteError{Message: "disk full"},
	}
	for _, want := range cases {
		got := UnmarshalError(MarshalError(want))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %T: got %#v, want %#v", want, got, want)
		}
		if got.Error() != want.Error() {
			t.Errorf("message changed: %q vs %q", got.Error(), want.Error())
		}
	}
	if MarshalError(nil) != nil || UnmarshalError(nil) != nil {
		t.Fatal("nil error must encode as nil and back")
	}
}

func TestErrorWireKeepsWrappedTypeAndGenericMessage(t *testing.T) {
	wrapped := fmt.Errorf("prewrite r4: %w", &LockedError{Key: []byte("a"), StartTS: 1})
	var le *LockedError
	if !errors.As(UnmarshalError(MarshalError(wrapped)), &le) || string(le.Key) != "a" {
		t.Fatalf("wrapped typed error lost its type")
	}
	plain := errors.New("pebble: disk on fire")
	var re *RemoteError
	got := UnmarshalError(MarshalError(plain))
	if !errors.As(got, &re) || re.Message != plain.Error() {
		t.Fatalf("generic error: got %#v", got)
	}
	for _, bad := range [][]byte{{0}, {200}, {errTagLocked}, {errTagLocked, 5, 'a'}, {errTagNotLeader, 1, 2, 3}} {
		if err := UnmarshalError(bad); !errors.As(err, &re) || !strings.Contains(re.Message, "undecodable") {
			t.Errorf("UnmarshalError(%x) = %v, want an undecodable RemoteError", bad, err)
		}
	}
}

func TestErrorMessagesNameKeyAndTxn(t *testing.T) {
	msg := (&LockedError{Key: []byte("acct/1"), Primary: []byte("acct/0"), StartTS: 42, TTL: 3000}).Error()
	for _, want := range []string{"acct/1", "acct/0", "42"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not name %q", msg, want)
		}
	}
	if !IsRequestError(fmt.Errorf("x: %w", &SerializationError{Key: []byte("k")})) {
		t.Error("SerializationError must be a request error")
	}
	if IsRequestError(&NotLeaderError{RangeID: 1}) || IsRequestError(errors.New("io")) {
		t.Error("routing and storage errors are not request errors")
	}
}
