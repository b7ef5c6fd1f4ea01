package checker

import (
	"fmt"
	"sort"
	"time"
)

// Event is a nemesis action at a time of the run.
type Event struct {
	At   int64  `json:"at"` // nanoseconds since the start of the run
	Kind string `json:"kind"`
	// Phase is "fault" or "heal".
	Phase string `json:"phase"`
	// Nodes are the nodes the action hit (for a partition: the minority).
	Nodes  []string `json:"nodes,omitempty"`
	Detail string   `json:"detail,omitempty"`
}

// EventGap is how long commits stopped after one event.
type EventGap struct {
	Event Event `json:"event"`
	// FirstCommitAfter is the time from the event to the completion of the
	// first commit invoked after it; -1 if none followed.
	FirstCommitAfter int64 `json:"first_commit_after_ns"`
}

// Availability summarizes when commits succeeded.
type Availability struct {
	Commits int `json:"commits"`
	// LongestGap is the longest time without a successful commit, between
	// Start and End of the run (or a run's edges).
	LongestGap      int64      `json:"longest_gap_ns"`
	LongestGapStart int64      `json:"longest_gap_start_ns"`
	Events          []EventGap `json:"events"`
}

// Gaps measures availability: commits are the ok ops whose F is in
// commitFs; the run spans [0, end].
func Gaps(ops []Op, commitFs []string, events []Event, end int64) Availability {
	isCommit := map[string]bool{}
	for _, f := range commitFs {
		isCommit[f] = true
	}
	var commits []Op
	for _, op := range ops {
		if op.Outcome == OK && isCommit[op.F] && !op.Final {
			commits = append(commits, op)
		}
	}
	sort.Slice(commits, func(a, b int) bool { return commits[a].Complete < commits[b].Complete })
	a := Availability{Commits: len(commits)}
	prev := int64(0)
	for _, c := range append(commits, Op{Complete: end}) {
		if g := c.Complete - prev; g > a.LongestGap {
			a.LongestGap, a.LongestGapStart = g, prev
		}
		prev = max(prev, c.Complete)
	}
	for _, ev := range events {
		eg := EventGap{Event: ev, FirstCommitAfter: -1}
		for _, c := range commits {
			if c.Invoke >= ev.At && (eg.FirstCommitAfter < 0 || c.Complete-ev.At < eg.FirstCommitAfter) {
				eg.FirstCommitAfter = c.Complete - ev.At
			}
		}
		a.Events = append(a.Events, eg)
	}
	return a
}

// PartitionWindow is a time a partition was in force.
type PartitionWindow struct {
	Start, End int64
	Minority   []string
	Majority   []string
}

// SplitBrain checks the partition rule: no commit (ok op with F in
// commitFs) invoked and completed inside a window through a node of its
// minority; and the majority side keeps committing: a window that lasts
// more than grace (time to elect new leaders) plus a second without a
// single commit through a majority node after grace is an anomaly
// ("majority-unavailable"). visible, when not nil, says whether an unknown
// op's effect is in the final state; such ops from the minority are only
// counted in a note (their client gave up, the write may have landed after
// the heal, which is no split brain).
func SplitBrain(ops []Op, commitFs []string, windows []PartitionWindow, grace time.Duration, visible func(Op) bool) Result {
	r := Result{Checker: "split-brain"}
	isCommit := map[string]bool{}
	for _, f := range commitFs {
		isCommit[f] = true
	}
	for _, w := range windows {
		minority := map[string]bool{}
		for _, n := range w.Minority {
			minority[n] = true
		}
		majorityCommits, minorityUnknownVisible, afterGrace := 0, 0, 0
		for _, op := range ops {
			if !isCommit[op.F] || op.Invoke < w.Start || op.Complete > w.End {
				continue
			}
			if !minority[op.Node] && op.Outcome == OK && op.Invoke >= w.Start+int64(grace) {
				afterGrace++
			}
			switch {
			case minority[op.Node] && op.Outcome == OK:
				r.add("minority-commit", "a %s via %s, minority of the partition %s–%s, was acknowledged at %s", op.F, op.Node, fmtNanos(w.Start), fmtNanos(w.End), fmtNanos(op.Complete))
			case minority[op.Node] && op.Outcome == Unknown && visible != nil && visible(op):
				minorityUnknownVisible++
			case !minority[op.Node] && op.Outcome == OK:
				majorityCommits++
			}
		}
		if w.End-w.Start > int64(grace+time.Second) && afterGrace == 0 {
			r.add("majority-unavailable", "partition %s–%s (minority %v): no commit through the majority %v after the first %s", fmtNanos(w.Start), fmtNanos(w.End), w.Minority, w.Majority, grace)
		}
		r.Notes = append(r.Notes, fmt.Sprintf("partition %s–%s (minority %v): %d commits on the majority side, %d unknown minority writes visible at the end",
			fmtNanos(w.Start), fmtNanos(w.End), w.Minority, majorityCommits, minorityUnknownVisible))
	}
	return r.finish()
}
