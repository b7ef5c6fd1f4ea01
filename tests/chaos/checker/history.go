package checker

import (
	"fmt"
	"sort"
	"strings"
)

// Outcome is what a client learned about one operation.
type Outcome string

const (
	// OK: the operation took effect (committed, or read what it returns).
	OK Outcome = "ok"
	// Fail: the operation certainly did not take effect (the database said
	// so before or instead of committing).
	Fail Outcome = "fail"
	// Unknown: the request may have been applied (a timeout or a connection
	// lost after it was sent).
	Unknown Outcome = "unknown"
)

// Mop is one micro-operation of a list-append transaction: F is "r" (read
// the list of Key, result in List) or "append" (append Value to Key).
type Mop struct {
	F     string  `json:"f"`
	Key   int     `json:"key"`
	Value int64   `json:"value,omitempty"`
	List  []int64 `json:"list,omitempty"`
}

// Op is one operation of a history. Which fields matter depends on F.
type Op struct {
	// Process is the client (worker) that ran the operation; a process runs
	// one operation at a time.
	Process int `json:"process"`
	// Node names the database node the client sent it to.
	Node string `json:"node"`
	// F is the operation: bank "transfer"/"read", register
	// "read"/"write"/"cas", set "add"/"read", list-append "txn",
	// withdrawals "withdraw"/"read".
	F string `json:"f"`
	// Invoke and Complete are nanoseconds since the start of the run.
	Invoke   int64   `json:"invoke"`
	Complete int64   `json:"complete"`
	Outcome  Outcome `json:"outcome"`
	Err      string  `json:"err,omitempty"`

	// ID identifies an operation whose effect is looked for later (a
	// transfer's ledger row, a withdrawal round).
	ID     int64 `json:"id,omitempty"`
	Key    int   `json:"key,omitempty"`
	Value  int64 `json:"value,omitempty"`
	Expect int64 `json:"expect,omitempty"`
	From   int   `json:"from,omitempty"`
	To     int   `json:"to,omitempty"`
	Amount int64 `json:"amount,omitempty"`
	// Applied says whether an ok transfer or withdrawal changed anything
	// (false: it saw too little money and committed read-only).
	Applied bool `json:"applied,omitempty"`
	// Balances are a bank read's rows (account → balance).
	Balances map[int]int64 `json:"balances,omitempty"`
	// Elements are a set read's rows (with repetitions, as returned).
	Elements []int64 `json:"elements,omitempty"`
	// Mops are a list-append transaction's micro-operations.
	Mops []Mop `json:"mops,omitempty"`
	// Final marks the reads taken after every fault was healed.
	Final bool `json:"final,omitempty"`
}

// Anomaly is one violation a checker found.
type Anomaly struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (a Anomaly) String() string { return a.Kind + ": " + a.Detail }

// Result is a checker's verdict on a history.
type Result struct {
	Checker   string    `json:"checker"`
	Valid     bool      `json:"valid"`
	Anomalies []Anomaly `json:"anomalies,omitempty"`
	// Notes are facts worth reporting that are not violations.
	Notes []string `json:"notes,omitempty"`
}

func (r *Result) add(kind, format string, args ...any) {
	r.Anomalies = append(r.Anomalies, Anomaly{Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// anomalyLimit bounds the anomalies kept per kind so one systematic bug does
// not produce a report of megabytes.
const anomalyLimit = 20

func (r *Result) finish() Result {
	counts := map[string]int{}
	kept := r.Anomalies[:0]
	for _, a := range r.Anomalies {
		counts[a.Kind]++
		if counts[a.Kind] <= anomalyLimit {
			kept = append(kept, a)
		}
	}
	r.Anomalies = kept
	for kind, n := range counts {
		if n > anomalyLimit {
			r.Notes = append(r.Notes, fmt.Sprintf("%d more %s anomalies not listed", n-anomalyLimit, kind))
		}
	}
	sort.Strings(r.Notes)
	r.Valid = len(r.Anomalies) == 0
	return *r
}

// Summary renders a result in one line per anomaly.
func (r Result) Summary() string {
	var b strings.Builder
	verdict := "valid"
	if !r.Valid {
		verdict = fmt.Sprintf("INVALID (%d anomalies)", len(r.Anomalies))
	}
	fmt.Fprintf(&b, "%s: %s\n", r.Checker, verdict)
	for _, a := range r.Anomalies {
		fmt.Fprintf(&b, "  - %s\n", a)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// Counts tallies a history's outcomes per operation kind.
func Counts(ops []Op) map[string]map[Outcome]int {
	out := map[string]map[Outcome]int{}
	for _, op := range ops {
		m := out[op.F]
		if m == nil {
			m = map[Outcome]int{}
			out[op.F] = m
		}
		m[op.Outcome]++
	}
	return out
}
