package checker

import (
	"fmt"
	"sort"
	"strings"
)

// ListAppend checks a list-append history for serializability, after Elle
// (Kingsbury and Alvaro, VLDB 2020). Each "txn" op holds micro-operations
// that read a key's whole list or append a value unique to that key. Since
// lists only grow, the longest list read for a key is its version order
// (every other read must be a prefix of it), and each element names the one
// transaction that appended it. Committed transactions are the ok ones plus
// the unknown ones whose appends were read. Between them:
//
//   - ww: the appender of element i → the appender of element i+1;
//   - wr: the appender of the last element a read saw → the reader;
//   - rw: a reader that saw i elements → the appender of element i+1;
//
// and any cycle is a serializability violation (G0 with ww edges only, G1c
// with ww/wr, G2 with an rw edge). Also reported: a read that is no prefix
// of the version order, an element read twice in one list, an element of a
// failed transaction in a read (aborted read), an element nobody appended,
// and an ok append missing from the final read (lost write). The final reads
// are "txn" ops with Final set; a key never read at the end is not checked
// for lost appends.
func ListAppend(ops []Op) Result {
	r := Result{Checker: "list-append"}
	type elem struct {
		key   int
		value int64
	}
	appender := map[elem]int{} // element → op index
	for i, op := range ops {
		if op.F != "txn" {
			continue
		}
		for _, m := range op.Mops {
			if m.F != "append" {
				continue
			}
			e := elem{m.Key, m.Value}
			if j, dup := appender[e]; dup && j != i {
				r.add("invalid-history", "value %d appended to key %d twice (ops %d and %d)", m.Value, m.Key, j, i)
			}
			appender[e] = i
		}
	}
	// Version order per key: the longest list read by an ok transaction.
	order := map[int][]int64{}
	for _, op := range ops {
		if op.F != "txn" || op.Outcome != OK {
			continue
		}
		for _, m := range op.Mops {
			if m.F == "r" && len(m.List) > len(order[m.Key]) {
				order[m.Key] = m.List
			}
		}
	}
	committed := map[int]bool{}
	for i, op := range ops {
		if op.F == "txn" && op.Outcome == OK {
			committed[i] = true
		}
	}
	for key, list := range order {
		seen := map[int64]bool{}
		for _, v := range list {
			if seen[v] {
				r.add("duplicate-element", "key %d: value %d appears twice in %v", key, v, list)
			}
			seen[v] = true
			j, ok := appender[elem{key, v}]
			switch {
			case !ok:
				r.add("phantom-element", "key %d: value %d was read but never appended", key, v)
			case ops[j].Outcome == Fail:
				r.add("aborted-read", "key %d: value %d of a failed transaction (%s) was read", key, v, ops[j].Err)
			case ops[j].Outcome == Unknown:
				committed[j] = true // it was read, so it committed
			}
		}
	}
	// Every read must be a prefix of the version order.
	for i, op := range ops {
		if op.F != "txn" || op.Outcome != OK {
			continue
		}
		for _, m := range op.Mops {
			if m.F != "r" {
				continue
			}
			full := order[m.Key]
			for p, v := range m.List {
				if p >= len(full) || full[p] != v {
					r.add("incompatible-order", "key %d: op %d (process %d via %s) read %v, which is no prefix of %v", m.Key, i, op.Process, op.Node, m.List, full)
					break
				}
			}
		}
	}
	// Lost appends: against the final reads.
	finalKeys := map[int]map[int64]bool{}
	for _, op := range ops {
		if op.F != "txn" || !op.Final || op.Outcome != OK {
			continue
		}
		for _, m := range op.Mops {
			if m.F == "r" {
				set := map[int64]bool{}
				for _, v := range m.List {
					set[v] = true
				}
				finalKeys[m.Key] = set
			}
		}
	}
	for e, j := range appender {
		set, checked := finalKeys[e.key]
		if checked && ops[j].Outcome == OK && !set[e.value] {
			r.add("lost-append", "key %d: value %d acknowledged via %s at %s is missing from the final read", e.key, e.value, ops[j].Node, fmtNanos(ops[j].Complete))
		}
	}

	// The dependency graph over committed transactions.
	g := newGraph()
	idx := func(key int, list []int64, p int) (int, bool) {
		if p < 0 || p >= len(list) {
			return 0, false
		}
		j, ok := appender[elem{key, list[p]}]
		return j, ok && committed[j]
	}
	for key, list := range order {
		for p := 0; p+1 < len(list); p++ {
			a, okA := idx(key, list, p)
			b, okB := idx(key, list, p+1)
			if okA && okB {
				g.add(a, b, "ww", key)
			}
		}
	}
	for i, op := range ops {
		if op.F != "txn" || !committed[i] || op.Final {
			continue
		}
		for _, m := range op.Mops {
			if m.F != "r" {
				continue
			}
			full := order[m.Key]
			n := len(m.List)
			if w, ok := idx(m.Key, full, n-1); ok {
				g.add(w, i, "wr", m.Key)
			}
			// The next version after what this txn read, skipping its own
			// appends (a read-then-append txn reads before it writes).
			for p := n; p < len(full); p++ {
				w, ok := idx(m.Key, full, p)
				if !ok {
					break
				}
				if w != i {
					g.add(i, w, "rw", m.Key)
					break
				}
			}
		}
	}
	for _, cyc := range g.cycles(5) {
		kinds := map[string]bool{}
		var parts []string
		for _, e := range cyc {
			kinds[e.kind] = true
			parts = append(parts, fmt.Sprintf("T%d -%s(k%d)-> T%d", e.from, e.kind, e.key, e.to))
		}
		kind := "G0"
		switch {
		case kinds["rw"]:
			kind = "G2"
		case kinds["wr"]:
			kind = "G1c"
		}
		r.add(kind+"-cycle", "%s", strings.Join(parts, ", "))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%d committed transactions, %d keys, graph of %d edges", len(committed), len(order), g.edges))
	return r.finish()
}

type edge struct {
	from, to int
	kind     string
	key      int
}

type graph struct {
	out   map[int][]edge
	edges int
}

func newGraph() *graph { return &graph{out: map[int][]edge{}} }

func (g *graph) add(from, to int, kind string, key int) {
	if from == to {
		return
	}
	g.out[from] = append(g.out[from], edge{from, to, kind, key})
	g.edges++
}

// cycles returns up to limit cycles, one per strongly connected component
// with more than one node (Tarjan's algorithm, iterative), each found by a
// BFS inside its component.
func (g *graph) cycles(limit int) [][]edge {
	var nodes []int
	for n := range g.out {
		nodes = append(nodes, n)
	}
	sort.Ints(nodes)
	index := map[int]int{}
	low := map[int]int{}
	onStack := map[int]bool{}
	var stack []int
	var sccs [][]int
	next := 0
	type frame struct{ node, i int }
	for _, root := range nodes {
		if _, seen := index[root]; seen {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.i < len(g.out[f.node]) {
				w := g.out[f.node][f.i].to
				f.i++
				if _, seen := index[w]; !seen {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				} else if onStack[w] {
					low[f.node] = min(low[f.node], index[w])
				}
				continue
			}
			v := f.node
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].node
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var scc []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					scc = append(scc, w)
					if w == v {
						break
					}
				}
				if len(scc) > 1 {
					sccs = append(sccs, scc)
				}
			}
		}
	}
	var out [][]edge
	for _, scc := range sccs {
		if len(out) >= limit {
			break
		}
		in := map[int]bool{}
		for _, n := range scc {
			in[n] = true
		}
		if c := g.shortestCycle(scc[0], in); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// shortestCycle finds a shortest cycle through start inside the component.
func (g *graph) shortestCycle(start int, in map[int]bool) []edge {
	prev := map[int]edge{}
	queue := []int{start}
	visited := map[int]bool{start: true}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, e := range g.out[n] {
			if !in[e.to] {
				continue
			}
			if e.to == start {
				cyc := []edge{e}
				for cur := n; cur != start; cur = prev[cur].from {
					cyc = append(cyc, prev[cur])
				}
				for i, j := 0, len(cyc)-1; i < j; i, j = i+1, j-1 {
					cyc[i], cyc[j] = cyc[j], cyc[i]
				}
				return cyc
			}
			if !visited[e.to] {
				visited[e.to] = true
				prev[e.to] = e
				queue = append(queue, e.to)
			}
		}
	}
	return nil
}
