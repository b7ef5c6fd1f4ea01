package checker

import (
	"strings"
	"testing"
	"time"
)

// Every checker accepts a correct history and rejects hand-made bad ones.

func ms(n int64) int64 { return n * int64(time.Millisecond) }

func expectValid(t *testing.T, r Result) {
	t.Helper()
	if !r.Valid {
		t.Fatalf("valid history rejected:\n%s", r.Summary())
	}
}

func expectAnomaly(t *testing.T, r Result, kind string) {
	t.Helper()
	for _, a := range r.Anomalies {
		if strings.HasPrefix(a.Kind, kind) {
			t.Logf("caught as expected: %s", a)
			return
		}
	}
	t.Fatalf("want a %s anomaly, got:\n%s", kind, r.Summary())
}

// --- bank

func bankHistory() []Op {
	return []Op{
		{F: "transfer", ID: 1, From: 1, To: 2, Amount: 5, Outcome: OK, Applied: true},
		{F: "transfer", ID: 2, From: 2, To: 1, Amount: 3, Outcome: Fail, Err: "1213"},
		{F: "transfer", ID: 3, From: 1, To: 2, Amount: 1, Outcome: Unknown},
		{F: "read", Outcome: OK, Balances: map[int]int64{1: 5, 2: 15}},
		{F: "ledger", Outcome: OK, Final: true, Elements: []int64{1}},
		{F: "read", Outcome: OK, Final: true, Balances: map[int]int64{1: 5, 2: 15}},
	}
}

func TestBankAcceptsCorrectHistory(t *testing.T) {
	expectValid(t, Bank(BankModel{Accounts: 2, Initial: 10}, bankHistory()))
}

func TestBankCatchesLostTransfer(t *testing.T) {
	h := bankHistory()
	h[4].Elements = nil // the acknowledged transfer 1 is gone from the ledger
	expectAnomaly(t, Bank(BankModel{Accounts: 2, Initial: 10}, h), "lost-transfer")
}

func TestBankCatchesWrongTotal(t *testing.T) {
	h := bankHistory()
	h[3].Balances = map[int]int64{1: 5, 2: 10} // money vanished
	expectAnomaly(t, Bank(BankModel{Accounts: 2, Initial: 10}, h), "wrong-total")
}

func TestBankCatchesAbortedTransferAndReplayMismatch(t *testing.T) {
	h := bankHistory()
	h[4].Elements = []int64{1, 2} // the refused transfer committed after all
	r := Bank(BankModel{Accounts: 2, Initial: 10}, h)
	expectAnomaly(t, r, "aborted-transfer-visible")
	expectAnomaly(t, r, "ledger-mismatch")
}

func TestBankCatchesDuplicatedTransfer(t *testing.T) {
	h := bankHistory()
	h[4].Elements = []int64{1, 1}
	expectAnomaly(t, Bank(BankModel{Accounts: 2, Initial: 10}, h), "duplicated-transfer")
}

// --- register

func TestRegisterAcceptsLinearizableHistory(t *testing.T) {
	h := []Op{
		{Process: 0, F: "write", Key: 1, Value: 1, Invoke: ms(0), Complete: ms(10), Outcome: OK},
		{Process: 1, F: "read", Key: 1, Value: 0, Invoke: ms(1), Complete: ms(5), Outcome: OK}, // concurrent: old value fine
		{Process: 1, F: "read", Key: 1, Value: 1, Invoke: ms(11), Complete: ms(12), Outcome: OK},
		{Process: 2, F: "cas", Key: 1, Expect: 1, Value: 2, Applied: true, Invoke: ms(13), Complete: ms(14), Outcome: OK},
		{Process: 0, F: "cas", Key: 1, Expect: 1, Value: 3, Applied: false, Invoke: ms(15), Complete: ms(16), Outcome: OK},
		{Process: 0, F: "write", Key: 1, Value: 9, Invoke: ms(17), Complete: ms(18), Outcome: Unknown},
		{Process: 1, F: "read", Key: 1, Value: 2, Invoke: ms(20), Complete: ms(21), Outcome: OK}, // the unknown write not (yet) applied
		{Process: 1, F: "read", Key: 1, Value: 9, Invoke: ms(22), Complete: ms(23), Outcome: OK}, // now it is
		{Process: 2, F: "write", Key: 2, Value: 5, Invoke: ms(0), Complete: ms(1), Outcome: Fail},
		{Process: 2, F: "read", Key: 2, Value: 0, Invoke: ms(2), Complete: ms(3), Outcome: OK},
	}
	expectValid(t, Register(0, h, 10*time.Second))
}

func TestRegisterCatchesStaleRead(t *testing.T) {
	h := []Op{
		{Process: 0, F: "write", Key: 1, Value: 1, Invoke: ms(0), Complete: ms(10), Outcome: OK},
		// Invoked after the write was acknowledged, yet sees the old value.
		{Process: 1, F: "read", Key: 1, Value: 0, Invoke: ms(11), Complete: ms(12), Outcome: OK},
	}
	expectAnomaly(t, Register(0, h, 10*time.Second), "non-linearizable")
}

func TestRegisterCatchesLostCAS(t *testing.T) {
	h := []Op{
		{Process: 0, F: "cas", Key: 3, Expect: 0, Value: 1, Applied: true, Invoke: ms(0), Complete: ms(1), Outcome: OK},
		{Process: 1, F: "cas", Key: 3, Expect: 0, Value: 2, Applied: true, Invoke: ms(2), Complete: ms(3), Outcome: OK},
	}
	expectAnomaly(t, Register(0, h, 10*time.Second), "non-linearizable")
}

func TestRegisterCatchesReadOfFailedWrite(t *testing.T) {
	h := []Op{
		{Process: 0, F: "write", Key: 1, Value: 7, Invoke: ms(0), Complete: ms(1), Outcome: Fail},
		{Process: 1, F: "read", Key: 1, Value: 7, Invoke: ms(2), Complete: ms(3), Outcome: OK},
	}
	expectAnomaly(t, Register(0, h, 10*time.Second), "non-linearizable")
}

// --- set

func setHistory() []Op {
	return []Op{
		{F: "add", Value: 1, Outcome: OK},
		{F: "add", Value: 2, Outcome: Fail, Err: "1213"},
		{F: "add", Value: 3, Outcome: Unknown},
		{F: "add", Value: 4, Outcome: Unknown},
		{F: "read", Node: "n1", Final: true, Outcome: OK, Elements: []int64{1, 3}},
		{F: "read", Node: "n2", Final: true, Outcome: OK, Elements: []int64{3, 1}},
	}
}

func TestSetAcceptsCorrectHistory(t *testing.T) { expectValid(t, Set(setHistory())) }

func TestSetCatchesLostAdd(t *testing.T) {
	h := setHistory()
	h[4].Elements = []int64{3}
	h[5].Elements = []int64{3}
	expectAnomaly(t, Set(h), "lost-add")
}

func TestSetCatchesDuplicate(t *testing.T) {
	h := setHistory()
	h[4].Elements = []int64{1, 3, 3} // an unknown add applied twice
	expectAnomaly(t, Set(h), "duplicated-element")
}

func TestSetCatchesAbortedAddAndDivergence(t *testing.T) {
	h := setHistory()
	h[5].Elements = []int64{1, 2, 3}
	r := Set(h)
	expectAnomaly(t, r, "aborted-add-visible")
	expectAnomaly(t, r, "divergent-replicas")
}

// --- list-append

func txn(proc int, outcome Outcome, mops ...Mop) Op {
	return Op{Process: proc, F: "txn", Outcome: outcome, Mops: mops}
}

func ap(k int, v int64) Mop         { return Mop{F: "append", Key: k, Value: v} }
func rd(k int, list ...int64) Mop   { return Mop{F: "r", Key: k, List: list} }
func final(k int, list ...int64) Op { op := txn(9, OK, rd(k, list...)); op.Final = true; return op }
func finalOps(lists map[int][]int64) []Op {
	var out []Op
	for k, l := range lists {
		out = append(out, final(k, l...))
	}
	return out
}

func TestListAppendAcceptsSerialHistory(t *testing.T) {
	h := []Op{
		txn(0, OK, ap(1, 1), ap(2, 1)),
		txn(1, OK, rd(1, 1), ap(1, 2)),
		txn(2, OK, rd(1, 1, 2), rd(2, 1)),
		txn(0, Unknown, ap(2, 2)),
		txn(1, Fail, ap(1, 3)),
	}
	h = append(h, finalOps(map[int][]int64{1: {1, 2}, 2: {1, 2}})...)
	expectValid(t, ListAppend(h))
}

func TestListAppendCatchesG2Cycle(t *testing.T) {
	// Write skew: each read the other's key empty, then appended to its own.
	h := []Op{
		txn(0, OK, rd(1), ap(2, 1)),
		txn(1, OK, rd(2), ap(1, 1)),
	}
	h = append(h, finalOps(map[int][]int64{1: {1}, 2: {1}})...)
	expectAnomaly(t, ListAppend(h), "G2-cycle")
}

func TestListAppendCatchesG1cCycle(t *testing.T) {
	// T0 appends x=1 and reads y=[1] (T1's); T1 appends y=1 and reads x=[1].
	h := []Op{
		txn(0, OK, ap(1, 1), rd(2, 1)),
		txn(1, OK, ap(2, 1), rd(1, 1)),
	}
	h = append(h, finalOps(map[int][]int64{1: {1}, 2: {1}})...)
	expectAnomaly(t, ListAppend(h), "G1c-cycle")
}

func TestListAppendCatchesLostAppend(t *testing.T) {
	h := []Op{
		txn(0, OK, ap(1, 1)),
		txn(1, OK, ap(1, 2)),
	}
	h = append(h, finalOps(map[int][]int64{1: {1}})...)
	expectAnomaly(t, ListAppend(h), "lost-append")
}

func TestListAppendCatchesAbortedReadAndBadOrder(t *testing.T) {
	h := []Op{
		txn(0, Fail, ap(1, 1)),
		txn(1, OK, ap(1, 2)),
		txn(2, OK, rd(1, 2, 1)),
		txn(3, OK, rd(1, 1)),
	}
	h = append(h, finalOps(map[int][]int64{1: {2, 1}})...)
	r := ListAppend(h)
	expectAnomaly(t, r, "aborted-read")
	expectAnomaly(t, r, "incompatible-order")
}

func TestListAppendCatchesDuplicateElement(t *testing.T) {
	h := []Op{txn(0, OK, ap(1, 1))}
	h = append(h, finalOps(map[int][]int64{1: {1, 1}})...)
	expectAnomaly(t, ListAppend(h), "duplicate-element")
}

// --- withdrawals

func TestWithdrawalsAcceptsOneOfTwo(t *testing.T) {
	h := []Op{
		{F: "withdraw", ID: 1, Outcome: OK, Applied: true},
		{F: "withdraw", ID: 1, Outcome: OK, Applied: false},
		{F: "balance", ID: 1, Outcome: OK, Value: 5},
		{F: "withdraw", ID: 2, Outcome: Unknown},
		{F: "withdraw", ID: 2, Outcome: Fail},
		{F: "balance", ID: 2, Outcome: OK, Value: 5},
	}
	expectValid(t, Withdrawals(15, 10, h))
}

func TestWithdrawalsCatchesDoubleWithdrawal(t *testing.T) {
	h := []Op{
		{F: "withdraw", ID: 1, Outcome: OK, Applied: true},
		{F: "withdraw", ID: 1, Outcome: OK, Applied: true},
		{F: "balance", ID: 1, Outcome: OK, Value: -5},
	}
	r := Withdrawals(15, 10, h)
	expectAnomaly(t, r, "double-withdrawal")
	expectAnomaly(t, r, "overdraft")
}

func TestWithdrawalsCatchesLostWithdrawal(t *testing.T) {
	// Both overwrote the balance with 5: the seed's "poorly written system".
	h := []Op{
		{F: "withdraw", ID: 1, Outcome: OK, Applied: true},
		{F: "withdraw", ID: 1, Outcome: OK, Applied: true},
		{F: "balance", ID: 1, Outcome: OK, Value: 5},
	}
	r := Withdrawals(15, 10, h)
	expectAnomaly(t, r, "wrong-balance")
}

// --- availability and split brain

func TestGapsMeasuresLongestGapAndRecovery(t *testing.T) {
	h := []Op{
		{F: "add", Invoke: ms(0), Complete: ms(100), Outcome: OK},
		{F: "add", Invoke: ms(150), Complete: ms(2000), Outcome: Unknown},
		{F: "add", Invoke: ms(900), Complete: ms(3100), Outcome: OK},
		{F: "add", Invoke: ms(3200), Complete: ms(3300), Outcome: OK},
	}
	a := Gaps(h, []string{"add"}, []Event{{At: ms(1000), Kind: "kill", Phase: "fault"}}, ms(4000))
	if a.LongestGap != ms(3000) || a.LongestGapStart != ms(100) {
		t.Fatalf("longest gap %d from %d, want 3s from 0.1s", a.LongestGap, a.LongestGapStart)
	}
	// The op invoked before the kill does not count as recovery after it.
	if got := a.Events[0].FirstCommitAfter; got != ms(2300) {
		t.Fatalf("first commit after the kill: %d, want 2.3s", got)
	}
}

func TestSplitBrainCatchesMinorityCommit(t *testing.T) {
	w := []PartitionWindow{{Start: ms(1000), End: ms(5000), Minority: []string{"n3"}, Majority: []string{"n1", "n2"}}}
	good := []Op{
		{F: "add", Node: "n3", Invoke: ms(1100), Complete: ms(1200), Outcome: Fail},
		{F: "add", Node: "n3", Invoke: ms(1300), Complete: ms(4000), Outcome: Unknown},
		{F: "add", Node: "n1", Invoke: ms(1300), Complete: ms(1400), Outcome: OK},
		{F: "add", Node: "n3", Invoke: ms(500), Complete: ms(1100), Outcome: OK}, // began before the cut
	}
	good = append(good, Op{F: "add", Node: "n2", Invoke: ms(3500), Complete: ms(3600), Outcome: OK})
	expectValid(t, SplitBrain(good, []string{"add"}, w, 2*time.Second, nil))
	bad := append(good, Op{F: "add", Node: "n3", Invoke: ms(2000), Complete: ms(2100), Outcome: OK})
	expectAnomaly(t, SplitBrain(bad, []string{"add"}, w, 2*time.Second, nil), "minority-commit")
}

func TestSplitBrainCatchesStalledMajority(t *testing.T) {
	w := []PartitionWindow{{Start: ms(1000), End: ms(6000), Minority: []string{"n1"}, Majority: []string{"n2", "n3"}}}
	// The majority committed only right at the start (in-flight), then
	// nothing: the TSO leader was on the minority side.
	h := []Op{
		{F: "add", Node: "n2", Invoke: ms(1000), Complete: ms(1100), Outcome: OK},
		{F: "add", Node: "n2", Invoke: ms(1200), Complete: ms(5900), Outcome: Unknown},
	}
	expectAnomaly(t, SplitBrain(h, []string{"add"}, w, 3*time.Second, nil), "majority-unavailable")
}
