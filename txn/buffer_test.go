package txn

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/quorumdb/quorumdb/kv"
)

// The write buffer against a map model: random sets, savepoints and
// rollbacks; after every step the ordered contents, point lookups, seeks
// and the byte count must match.
func TestWriteBufferAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	b := newWriteBuffer(1)
	model := map[string]bufEntry{}
	type snap struct {
		pos   int
		model map[string]bufEntry
	}
	var saves []snap
	for step := 0; step < 5000; step++ {
		switch r := rng.IntN(10); {
		case r < 7:
			k := fmt.Sprintf("k%03d", rng.IntN(200))
			e := bufEntry{op: kv.MutationOp(1 + rng.IntN(3)), value: []byte(fmt.Sprint(step))}
			b.set([]byte(k), e)
			model[k] = e
		case r < 8:
			cp := make(map[string]bufEntry, len(model))
			for k, v := range model {
				cp[k] = v
			}
			saves = append(saves, snap{pos: len(b.undo), model: cp})
		case len(saves) > 0:
			i := rng.IntN(len(saves))
			b.rollbackTo(saves[i].pos)
			model = saves[i].model
			saves = saves[:i]
		}
		// Compare.
		keys := make([]string, 0, len(model))
		var size int64
		for k, e := range model {
			keys = append(keys, k)
			size += entrySize([]byte(k), e)
		}
		sort.Strings(keys)
		muts := b.mutations()
		if len(muts) != len(keys) || b.len != len(keys) || b.bytes != size {
			t.Fatalf("step %d: %d mutations, len %d, bytes %d; model %d keys, %d bytes", step, len(muts), b.len, b.bytes, len(keys), size)
		}
		for i, m := range muts {
			if string(m.Key) != keys[i] || m.Op != model[keys[i]].op || !bytes.Equal(m.Value, model[keys[i]].value) {
				t.Fatalf("step %d: mutation %d = %s, model %s", step, i, m.Key, keys[i])
			}
		}
		probe := fmt.Sprintf("k%03d", rng.IntN(200))
		_, inModel := model[probe]
		if _, ok := b.get([]byte(probe)); ok != inModel {
			t.Fatalf("step %d: get %s = %v, model %v", step, probe, ok, inModel)
		}
		i := sort.SearchStrings(keys, probe)
		n := b.seekGE([]byte(probe))
		if (i == len(keys)) != (n == nil) || (n != nil && string(n.key) != keys[i]) {
			t.Fatalf("step %d: seekGE %s wrong", step, probe)
		}
		p := b.seekLT([]byte(probe))
		if (i == 0) != (p == nil) || (p != nil && string(p.key) != keys[i-1]) {
			t.Fatalf("step %d: seekLT %s wrong", step, probe)
		}
	}
}

func TestNormalizeSpans(t *testing.T) {
	sp := func(k, e string) kv.Span {
		if e == "" {
			return kv.Span{Key: []byte(k)}
		}
		return kv.Span{Key: []byte(k), EndKey: []byte(e)}
	}
	got := normalizeSpans([]kv.Span{sp("d", "f"), sp("a", ""), sp("e", ""), sp("a", ""), sp("b", "c"), sp("c", "d"), sp("x", "")})
	want := []kv.Span{sp("a", ""), sp("b", "f"), sp("x", "")}
	if len(got) != len(want) {
		t.Fatalf("got %d spans %v", len(got), got)
	}
	for i := range want {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].EndKey, want[i].EndKey) {
			t.Fatalf("span %d = [%q,%q), want [%q,%q)", i, got[i].Key, got[i].EndKey, want[i].Key, want[i].EndKey)
		}
	}
}
