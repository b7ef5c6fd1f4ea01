package checker

import (
	"fmt"
	"sort"
)

// Set checks a set history: "add" ops insert unique Values; "read" ops with
// Final set return every row (Elements, repetitions kept). Against each
// final read: every ok add is present, no failed add is, no element is
// present twice, and no element appears that no add wrote. Several final
// reads (one per node) must agree.
func Set(ops []Op) Result {
	r := Result{Checker: "set"}
	adds := map[int64]Op{}
	var finals []Op
	for _, op := range ops {
		switch {
		case op.F == "add":
			if prev, dup := adds[op.Value]; dup {
				r.add("invalid-history", "element %d added twice (processes %d and %d)", op.Value, prev.Process, op.Process)
			}
			adds[op.Value] = op
		case op.F == "read" && op.Final && op.Outcome == OK:
			finals = append(finals, op)
		}
	}
	if len(finals) == 0 {
		r.add("no-final-read", "the history has no successful final read")
		return r.finish()
	}
	for _, fr := range finals {
		count := map[int64]int{}
		for _, e := range fr.Elements {
			count[e]++
		}
		for e, n := range count {
			add, ok := adds[e]
			switch {
			case !ok:
				r.add("phantom-element", "final read via %s holds %d, which nobody added", fr.Node, e)
			case add.Outcome == Fail:
				r.add("aborted-add-visible", "element %d was refused (%s) but the final read via %s holds it", e, add.Err, fr.Node)
			}
			if n > 1 {
				r.add("duplicated-element", "final read via %s holds %d %d times", fr.Node, e, n)
			}
		}
		var lost []int64
		for e, add := range adds {
			if add.Outcome == OK && count[e] == 0 {
				lost = append(lost, e)
			}
		}
		sort.Slice(lost, func(a, b int) bool { return lost[a] < lost[b] })
		for _, e := range lost {
			a := adds[e]
			r.add("lost-add", "element %d acknowledged via %s at %s is missing from the final read via %s", e, a.Node, fmtNanos(a.Complete), fr.Node)
		}
	}
	if len(finals) > 1 {
		ref := sortedCopy(finals[0].Elements)
		for _, fr := range finals[1:] {
			if got := sortedCopy(fr.Elements); !equalInts(ref, got) {
				r.add("divergent-replicas", "final read via %s has %d elements, via %s %d (or different ones)", finals[0].Node, len(ref), fr.Node, len(got))
			}
		}
	}
	unknownPresent := 0
	for _, a := range adds {
		if a.Outcome == Unknown && contains(finals[0].Elements, a.Value) {
			unknownPresent++
		}
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d elements in the final read, %d of them from adds with unknown outcome", len(finals[0].Elements), unknownPresent))
	return r.finish()
}

func sortedCopy(xs []int64) []int64 {
	out := append([]int64(nil), xs...)
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func contains(xs []int64, x int64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
