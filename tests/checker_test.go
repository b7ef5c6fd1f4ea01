package tests

import (
	"strings"
	"testing"
)

// The checker must reject the classic anomalies and accept serial histories.

func TestCheckerAcceptsSerialHistory(t *testing.T) {
	h := []TxnRecord{
		{Name: "T1", CommitTS: 10, Reads: []ReadRecord{{Key: "x"}}, Writes: map[string]string{"x": "1"}},
		{Name: "T2", CommitTS: 20, Reads: []ReadRecord{{Key: "x", Value: "1", Found: true}}, Writes: map[string]string{"x": "2", "y": "2"}},
		{Name: "T3", Reads: []ReadRecord{{Key: "x", Value: "2", Found: true}, {Key: "y", Value: "2", Found: true}}},
		{Name: "T4", Scans: []ScanRecord{{Start: "a", End: "z", Rows: map[string]string{"x": "2", "y": "2"}}}},
	}
	if err := CheckSerializable(h); err != nil {
		t.Fatalf("serial history rejected: %v", err)
	}
}

func expectCycle(t *testing.T, h []TxnRecord) {
	t.Helper()
	err := CheckSerializable(h)
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("expected a dependency cycle, got %v", err)
	}
	t.Logf("rejected as expected: %v", err)
}

func TestCheckerRejectsLostUpdate(t *testing.T) {
	// Both read x=0 and both write x: T2 overwrites T1 without seeing it.
	expectCycle(t, []TxnRecord{
		{Name: "init", CommitTS: 1, Writes: map[string]string{"x": "0"}},
		{Name: "T1", CommitTS: 10, Reads: []ReadRecord{{Key: "x", Value: "0", Found: true}}, Writes: map[string]string{"x": "1"}},
		{Name: "T2", CommitTS: 11, Reads: []ReadRecord{{Key: "x", Value: "0", Found: true}}, Writes: map[string]string{"x": "2"}},
	})
}

func TestCheckerRejectsWriteSkew(t *testing.T) {
	// Two doctors on call: each reads both, each takes itself off.
	expectCycle(t, []TxnRecord{
		{Name: "init", CommitTS: 1, Writes: map[string]string{"alice": "on0", "bob": "on0"}},
		{Name: "T1", CommitTS: 10, Reads: []ReadRecord{{Key: "alice", Value: "on0", Found: true}, {Key: "bob", Value: "on0", Found: true}},
			Writes: map[string]string{"alice": "off1"}},
		{Name: "T2", CommitTS: 11, Reads: []ReadRecord{{Key: "alice", Value: "on0", Found: true}, {Key: "bob", Value: "on0", Found: true}},
			Writes: map[string]string{"bob": "off2"}},
	})
}

func TestCheckerRejectsReadSkew(t *testing.T) {
	// R sees x before T and y after T.
	expectCycle(t, []TxnRecord{
		{Name: "init", CommitTS: 1, Writes: map[string]string{"x": "x0", "y": "y0"}},
		{Name: "T", CommitTS: 10, Writes: map[string]string{"x": "x1", "y": "y1"}},
		{Name: "R", Reads: []ReadRecord{{Key: "x", Value: "x0", Found: true}, {Key: "y", Value: "y1", Found: true}}},
	})
}

func TestCheckerRejectsPhantom(t *testing.T) {
	// Each counts the rows of a span, sees none, and inserts one into it.
	expectCycle(t, []TxnRecord{
		{Name: "T1", CommitTS: 10, Scans: []ScanRecord{{Start: "r/", End: "r0", Rows: map[string]string{}}}, Writes: map[string]string{"r/1": "a"}},
		{Name: "T2", CommitTS: 11, Scans: []ScanRecord{{Start: "r/", End: "r0", Rows: map[string]string{}}}, Writes: map[string]string{"r/2": "b"}},
	})
}

func TestCheckerRejectsDirtyRead(t *testing.T) {
	err := CheckSerializable([]TxnRecord{
		{Name: "R", Reads: []ReadRecord{{Key: "x", Value: "from-aborted", Found: true}}},
	})
	if err == nil || !strings.Contains(err.Error(), "no committed transaction wrote") {
		t.Fatalf("expected a dirty-read error, got %v", err)
	}
}

func TestCheckerRejectsStaleReadOfOwnOrder(t *testing.T) {
	// W1 then W2 on x; R reads W1's value but also reads y written only by W2.
	expectCycle(t, []TxnRecord{
		{Name: "W1", CommitTS: 5, Writes: map[string]string{"x": "1"}},
		{Name: "W2", CommitTS: 6, Writes: map[string]string{"x": "2", "y": "2"}},
		{Name: "R", Reads: []ReadRecord{{Key: "x", Value: "1", Found: true}, {Key: "y", Value: "2", Found: true}}},
	})
}

func TestCheckerRejectsDuplicateValues(t *testing.T) {
	err := CheckSerializable([]TxnRecord{
		{Name: "A", CommitTS: 1, Writes: map[string]string{"x": "v"}},
		{Name: "B", CommitTS: 2, Writes: map[string]string{"x": "v"}},
	})
	if err == nil || !strings.Contains(err.Error(), "not unique") {
		t.Fatalf("expected a uniqueness error, got %v", err)
	}
}

func TestCheckSnapshots(t *testing.T) {
	h := []TxnRecord{
		{Name: "a", CommitTS: 10, Writes: map[string]string{"x": "a1", "y": "a2"}},
		{Name: "b", CommitTS: 20, Writes: map[string]string{"x": "b1"}},
	}
	good := []SnapshotRecord{
		{AsOf: 5, Rows: map[string]string{}},
		{AsOf: 10, Rows: map[string]string{"x": "a1", "y": "a2"}},
		{AsOf: 25, Rows: map[string]string{"x": "b1", "y": "a2"}},
	}
	if err := CheckSnapshots(h, good); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]SnapshotRecord{
		"a later write":        {AsOf: 15, Rows: map[string]string{"x": "b1", "y": "a2"}},
		"a lost write":         {AsOf: 25, Rows: map[string]string{"x": "a1", "y": "a2"}},
		"a missing row":        {AsOf: 25, Rows: map[string]string{"x": "b1"}},
		"an uncommitted write": {AsOf: 25, Rows: map[string]string{"x": "b1", "y": "a2", "z": "dirty"}},
		"half a transaction":   {AsOf: 12, Rows: map[string]string{"x": "a1"}},
	} {
		if err := CheckSnapshots(h, []SnapshotRecord{bad}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
