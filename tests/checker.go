package tests

import (
	"fmt"
	"sort"
	"strings"
)

// A serializability checker for histories with unique written values.
//
// Every committed transaction records what it read (key → value seen, or
// absent), what it scanned (a span and the rows seen in it), and what it
// wrote (key → a value no other write in the history uses). Because values
// are unique, every read names the write it saw. The checker builds the
// dependency graph over the committed transactions:
//
//   - ww: the writers of a key, ordered by commit timestamp (the version
//     order the store claims);
//   - wr: the writer of the version a transaction read → the reader;
//   - rw (anti-dependency): a reader → the writer of the next version of the
//     key after the one it read (for an absent key: its first writer). Scans
//     read every key of their span, so a row inserted into a scanned span
//     after the scan's version gives an rw edge (phantoms count).
//
// The history is serializable iff this graph is acyclic. A read of a value
// that no committed transaction wrote (an aborted or dirty write) is an error
// by itself.

// TxnRecord is one committed transaction of a history.
type TxnRecord struct {
	// Name identifies the transaction in error messages.
	Name string
	// CommitTS orders the transaction's writes among the writes of the same
	// keys (version order). Unused for transactions that wrote nothing.
	CommitTS uint64
	Reads    []ReadRecord
	Scans    []ScanRecord
	// Writes maps key → the unique value written. Deletes are not modelled.
	Writes map[string]string
}

// ReadRecord is one point read: the value seen, or Found false.
type ReadRecord struct {
	Key   string
	Value string
	Found bool
}

// ScanRecord is a scan of [Start, End) that saw Rows (key → value); every
// key of the span not in Rows was seen absent.
type ScanRecord struct {
	Start, End string
	Rows       map[string]string
}

// initialTxn is the graph node of the initial (empty) state.
const initialTxn = -1

// CheckSerializable returns nil when the history is serializable, else an
// error describing the first violation (a cycle with its edges, or a read of
// a value nobody committed).
func CheckSerializable(history []TxnRecord) error {
	// writers[key] = indices of writing txns in version order.
	writers := make(map[string][]int)
	writerOf := make(map[string]int) // key+"\x00"+value -> txn index
	for i, t := range history {
		for k, v := range t.Writes {
			writers[k] = append(writers[k], i)
			id := k + "\x00" + v
			if j, dup := writerOf[id]; dup {
				return fmt.Errorf("values not unique: %s and %s both wrote %q to %q", history[j].Name, t.Name, v, k)
			}
			writerOf[id] = i
		}
	}
	for k, ws := range writers {
		sort.SliceStable(ws, func(a, b int) bool { return history[ws[a]].CommitTS < history[ws[b]].CommitTS })
		for a := 1; a < len(ws); a++ {
			if history[ws[a]].CommitTS == history[ws[a-1]].CommitTS {
				return fmt.Errorf("%s and %s both wrote %q at commit_ts %d", history[ws[a-1]].Name, history[ws[a]].Name, k, history[ws[a]].CommitTS)
			}
		}
	}
	g := newDepGraph(len(history))
	for k, ws := range writers {
		for a := 1; a < len(ws); a++ {
			g.add(ws[a-1], ws[a], "ww", k)
		}
	}
	// observe records that reader saw the version of key written by w
	// (initialTxn: the key did not exist yet).
	observe := func(reader, w int, key string) {
		if w == reader {
			return // a read of its own write
		}
		if w != initialTxn {
			g.add(w, reader, "wr", key)
		}
		ws := writers[key]
		next := 0
		if w != initialTxn {
			for next < len(ws) && ws[next] != w {
				next++
			}
			next++
		}
		for next < len(ws) && ws[next] == reader {
			next++
		}
		if next < len(ws) {
			g.add(reader, ws[next], "rw", key)
		}
	}
	for i, t := range history {
		for _, r := range t.Reads {
			if !r.Found {
				observe(i, initialTxn, r.Key)
				continue
			}
			w, ok := writerOf[r.Key+"\x00"+r.Value]
			if !ok {
				return fmt.Errorf("%s read %q = %q, which no committed transaction wrote", t.Name, r.Key, r.Value)
			}
			observe(i, w, r.Key)
		}
		for _, s := range t.Scans {
			for k, v := range s.Rows {
				if k < s.Start || k >= s.End {
					return fmt.Errorf("%s's scan [%q, %q) returned %q outside it", t.Name, s.Start, s.End, k)
				}
				if _, ok := writerOf[k+"\x00"+v]; !ok {
					return fmt.Errorf("%s scanned %q = %q, which no committed transaction wrote", t.Name, k, v)
				}
			}
			for k := range writers {
				if k < s.Start || k >= s.End {
					continue
				}
				if v, ok := s.Rows[k]; ok {
					observe(i, writerOf[k+"\x00"+v], k)
				} else {
					observe(i, initialTxn, k)
				}
			}
		}
	}
	if cyc := g.findCycle(); cyc != nil {
		parts := make([]string, len(cyc))
		for i, e := range cyc {
			parts[i] = fmt.Sprintf("%s -%s(%q)-> %s", history[e.from].Name, e.kind, e.key, history[e.to].Name)
		}
		return fmt.Errorf("not serializable: dependency cycle %s", strings.Join(parts, ", "))
	}
	return nil
}

type depEdge struct {
	from, to int
	kind     string
	key      string
}

type depGraph struct {
	out [][]depEdge
}

func newDepGraph(n int) *depGraph { return &depGraph{out: make([][]depEdge, n)} }

func (g *depGraph) add(from, to int, kind, key string) {
	if from == to || from < 0 || to < 0 {
		return
	}
	g.out[from] = append(g.out[from], depEdge{from: from, to: to, kind: kind, key: key})
}

// findCycle returns the edges of one cycle, or nil (iterative DFS with
// colours, so long histories do not overflow the stack).
func (g *depGraph) findCycle() []depEdge {
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(g.out))
	parent := make([]depEdge, len(g.out))
	type frame struct{ node, next int }
	for root := range g.out {
		if color[root] != white {
			continue
		}
		stack := []frame{{node: root}}
		color[root] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next >= len(g.out[top.node]) {
				color[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			e := g.out[top.node][top.next]
			top.next++
			switch color[e.to] {
			case white:
				color[e.to] = grey
				parent[e.to] = e
				stack = append(stack, frame{node: e.to})
			case grey:
				// Back edge: walk parents from e.from up to e.to.
				cyc := []depEdge{e}
				for n := e.from; n != e.to; n = parent[n].from {
					cyc = append(cyc, parent[n])
				}
				for i, j := 0, len(cyc)-1; i < j; i, j = i+1, j-1 {
					cyc[i], cyc[j] = cyc[j], cyc[i]
				}
				return cyc
			}
		}
	}
	return nil
}

// SnapshotRecord is one AS OF read: every row of the audited key space
// visible at AsOf.
type SnapshotRecord struct {
	AsOf uint64
	Rows map[string]string
}

// CheckSnapshots checks AS OF reads against the committed history: at
// timestamp T each key must show the value of the committed write with the
// highest commit timestamp at or below T, and no key may show anything else
// (a write committed later, an aborted write, a lost write). history must
// hold every transaction that may have committed in the audited key space.
func CheckSnapshots(history []TxnRecord, snaps []SnapshotRecord) error {
	type version struct {
		ts    uint64
		value string
	}
	versions := map[string][]version{}
	for _, r := range history {
		for k, v := range r.Writes {
			versions[k] = append(versions[k], version{r.CommitTS, v})
		}
	}
	for k := range versions {
		sort.Slice(versions[k], func(i, j int) bool { return versions[k][i].ts < versions[k][j].ts })
	}
	visibleAt := func(key string, ts uint64) (string, bool) {
		vs := versions[key]
		i := sort.Search(len(vs), func(i int) bool { return vs[i].ts > ts })
		if i == 0 {
			return "", false
		}
		return vs[i-1].value, true
	}
	for _, s := range snaps {
		keys := map[string]bool{}
		for k := range s.Rows {
			keys[k] = true
		}
		for k := range versions {
			keys[k] = true
		}
		for k := range keys {
			want, wantOK := visibleAt(k, s.AsOf)
			got, gotOK := s.Rows[k]
			if want != got || wantOK != gotOK {
				return fmt.Errorf("snapshot at %d: key %q shows %q (present %v), the history says %q (present %v)", s.AsOf, k, got, gotOK, want, wantOK)
			}
		}
	}
	return nil
}
