package checker

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// registerInput is one register operation as the model sees it.
type registerInput struct {
	f       string // read, write, cas
	value   int64  // written (write, cas)
	expect  int64  // cas precondition
	unknown bool   // outcome unknown: may apply at any time after its call
}

// registerOutput is what the client saw.
type registerOutput struct {
	value   int64 // read result
	applied bool  // cas applied
}

// registerModel is one linearizable register per key, starting at Initial.
func registerModel(initial int64) porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[int][]porcupine.Operation{}
			var keys []int
			for _, op := range history {
				k := op.Metadata.(int)
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Ints(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return initial },
		Step: func(state, input, output any) (bool, any) {
			s := state.(int64)
			in := input.(registerInput)
			out := output.(registerOutput)
			switch in.f {
			case "read":
				return out.value == s, s
			case "write":
				return true, in.value
			case "cas":
				if in.unknown {
					// Linearized here it applies iff the precondition holds;
					// "never applied" is the linearization at the end.
					if s == in.expect {
						return true, in.value
					}
					return true, s
				}
				if out.applied {
					return s == in.expect, in.value
				}
				return s != in.expect, s
			}
			return false, s
		},
		DescribeOperation: func(input, output any) string {
			in := input.(registerInput)
			out := output.(registerOutput)
			switch in.f {
			case "read":
				return fmt.Sprintf("read() -> %d", out.value)
			case "write":
				return fmt.Sprintf("write(%d)%s", in.value, unknownMark(in.unknown))
			default:
				return fmt.Sprintf("cas(%d→%d) -> %v%s", in.expect, in.value, out.applied, unknownMark(in.unknown))
			}
		},
	}
}

func unknownMark(u bool) string {
	if u {
		return " ?"
	}
	return ""
}

// Register checks that every key of a register history is linearizable:
// ok "read" (Value = what was read; a missing row reads as -1), "write"
// (Value) and "cas" (Expect → Value; Applied says whether it matched). A
// failed write or CAS did nothing and is left out; an unknown one may take
// effect at any time after its invocation or never; reads that did not
// complete say nothing. The check gives up after timeout (a note, not an
// anomaly: porcupine's search is exponential in the worst case).
func Register(initial int64, ops []Op, timeout time.Duration) Result {
	r := Result{Checker: "register"}
	var history []porcupine.Operation
	for _, op := range ops {
		if op.Final {
			continue
		}
		in := registerInput{f: op.F, value: op.Value, expect: op.Expect}
		out := registerOutput{value: op.Value, applied: op.Applied}
		ret := op.Complete
		switch op.Outcome {
		case Fail:
			continue
		case Unknown:
			if op.F == "read" {
				continue
			}
			in.unknown = true
			ret = math.MaxInt64
		}
		history = append(history, porcupine.Operation{
			ClientId: op.Process,
			Input:    in,
			Call:     op.Invoke,
			Output:   out,
			Return:   ret,
			Metadata: op.Key,
		})
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel(initial), history, timeout)
	switch res {
	case porcupine.Illegal:
		r.add("non-linearizable", "%s", describeIllegal(info, history))
	case porcupine.Unknown:
		r.Notes = append(r.Notes, fmt.Sprintf("linearizability search of %d operations timed out after %s (no verdict)", len(history), timeout))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d operations checked", len(history)))
	return r.finish()
}

// describeIllegal names the key whose history could not be linearized and
// the end of the longest prefix porcupine managed.
func describeIllegal(info porcupine.LinearizationInfo, history []porcupine.Operation) string {
	model := registerModel(0)
	partitions := model.Partition(history)
	for p, partials := range info.PartialLinearizationsOperations() {
		if p >= len(partitions) || len(partitions[p]) == 0 {
			continue
		}
		var longest []porcupine.Operation
		for _, lin := range partials {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
		if len(longest) == len(partitions[p]) {
			continue // this key linearized
		}
		desc := fmt.Sprintf("key %d: only %d of %d operations linearize; the longest linearizable prefix ends", partitions[p][0].Metadata.(int), len(longest), len(partitions[p]))
		for _, op := range longest[max(0, len(longest)-4):] {
			desc += " · " + model.DescribeOperation(op.Input, op.Output)
		}
		return desc
	}
	return "a key's history has no linearization"
}
