package raftgroup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/quorumdb/quorumdb/kv"
)

// A register/CAS workload on a few keys of one range, by concurrent clients,
// while a nemesis kills and restarts nodes and partitions them; the history
// is checked for linearizability with porcupine.
//
// Operations: read (Get at a fresh timestamp), write (1PC put), and
// cas(expected, new): a Get at S, then, if the value matches, a 1PC with
// StartTS S validating the key over (S, commit]; it succeeds only if nothing
// was written in between. A write or CAS whose outcome is unknown (timeout)
// is recorded as possibly taking effect at any time after its call.

type regInput struct {
	op       string // "r", "w", "cas"
	key      int
	value    string // w: value; cas: new value
	expected string // cas
}

type regOutput struct {
	value   string // r: value read ("" = absent)
	ok      bool   // cas: applied
	unknown bool   // w/cas: outcome unknown
}

var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(regInput), output.(regOutput)
		switch in.op {
		case "r":
			return out.value == st, st
		case "w":
			return true, in.value
		default: // cas
			if out.unknown {
				if st == in.expected {
					return true, in.value
				}
				return true, st
			}
			if out.ok {
				return st == in.expected, in.value
			}
			return st != in.expected, st
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		return fmt.Sprintf("%s(k%d, %q, %q) -> %+v", in.op, in.key, in.expected, in.value, out)
	},
}

type linClient struct {
	c       *testCluster
	rangeID uint64
}

// do runs one operation, following NotLeader answers (nothing was proposed)
// but never retrying an ambiguous write.
func (lc *linClient) do(ctx context.Context, req *kv.Request) (*kv.Response, error) {
	for {
		target := lc.c.leader(lc.rangeID)
		if target == 0 {
			ids := lc.c.liveIDs()
			if len(ids) == 0 {
				return nil, errors.New("no live node")
			}
			target = ids[0]
		}
		s := lc.c.store(target)
		if s == nil {
			continue
		}
		resp, err := s.Execute(ctx, lc.rangeID, req)
		var nl *kv.NotLeaderError
		var dropped *kv.ProposalDroppedError
		if (errors.As(err, &nl) || errors.As(err, &dropped)) && ctx.Err() == nil {
			select {
			case <-time.After(testTick):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return resp, err
	}
}

func (lc *linClient) key(k int) []byte { return []byte(fmt.Sprintf("reg%d", k)) }

func (lc *linClient) read(ctx context.Context, k int, ts uint64) (string, error) {
	resp, err := lc.do(ctx, &kv.Request{Get: &kv.GetRequest{Key: lc.key(k), ReadTS: ts}})
	if err != nil {
		return "", err
	}
	return string(resp.Get.Value), nil
}

// write returns (applied, known).
func (lc *linClient) write(ctx context.Context, k int, v string, startTS uint64, validate bool) (bool, bool) {
	req := &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: lc.key(k), Value: []byte(v)}},
		StartTS:   startTS,
		CommitTS:  lc.c.now(),
	}
	if validate {
		req.ReadSpans = []kv.Span{{Key: lc.key(k)}}
	}
	_, err := lc.do(ctx, &kv.Request{OnePhaseCommit: req})
	if err == nil {
		return true, true
	}
	if kv.IsRequestError(err) {
		return false, true // conflict or serialization failure: nothing written
	}
	return false, false
}

// linTime is how long the register workload runs per transport; make chaos
// can pass -raftgroup.lin.time=5m for a long run.
var linTime = flag.Duration("raftgroup.lin.time", 2500*time.Millisecond, "duration of the porcupine register workload per transport")

func TestLinearizableRegistersUnderFaults(t *testing.T) {
	forEachTransport(t, testLinearizableRegistersUnderFaults)
}

func testLinearizableRegistersUnderFaults(t *testing.T, transport string) {
	const (
		keys    = 3
		clients = 6
	)
	duration := *linTime
	c := newTestClusterOver(t, transport, 3, func(cfg *Config) { cfg.RequestTimeout = time.Second })
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	c.waitLeader(1, 2*time.Second)
	lc := &linClient{c: c, rangeID: 1}
	origin := time.Now()
	stamp := func() int64 { return int64(time.Since(origin)) }

	var mu sync.Mutex
	var history []porcupine.Operation
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(cl), 99))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := rng.IntN(keys)
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				call := stamp()
				switch p := rng.IntN(10); {
				case p < 4:
					v, err := lc.read(ctx, k, c.now())
					if err == nil {
						record(porcupine.Operation{ClientId: cl, Input: regInput{op: "r", key: k}, Call: call, Output: regOutput{value: v}, Return: stamp()})
					}
				case p < 7:
					v := fmt.Sprintf("c%d-%d", cl, n)
					applied, known := lc.write(ctx, k, v, c.now(), false)
					ret := stamp()
					if known && !applied {
						cancel()
						continue // refused (write conflict): nothing written
					}
					if !known {
						ret = math.MaxInt64
					}
					record(porcupine.Operation{ClientId: cl, Input: regInput{op: "w", key: k, value: v}, Call: call, Output: regOutput{unknown: !known}, Return: ret})
				default:
					// Read at S and validate (S, commit]: the CAS applies only
					// if the value read is still the latest at commit.
					start := c.now()
					cur, err := lc.read(ctx, k, start)
					if err != nil {
						cancel()
						continue // nothing written
					}
					v := fmt.Sprintf("c%d-%d", cl, n)
					in := regInput{op: "cas", key: k, value: v, expected: cur}
					applied, known := lc.write(ctx, k, v, start, true)
					ret := stamp()
					if !known {
						ret = math.MaxInt64
					}
					record(porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: regOutput{ok: applied, unknown: !known}, Return: ret})
				}
				cancel()
			}
		}()
	}

	// Nemesis: kill and restart a node, or isolate one, every ~250 ms.
	rng := rand.New(rand.NewPCG(7, 7))
	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) {
		victim := uint64(rng.IntN(3) + 1)
		if rng.IntN(2) == 0 {
			c.stopNode(victim)
			time.Sleep(150 * time.Millisecond) // the fault lasts this long
			c.startNode(victim)
		} else {
			var rest []uint64
			for id := uint64(1); id <= 3; id++ {
				if id != victim {
					rest = append(rest, id)
				}
			}
			c.partition([]uint64{victim}, rest)
			time.Sleep(150 * time.Millisecond) // the fault lasts this long
			c.heal()
		}
		time.Sleep(100 * time.Millisecond) // healthy interval between faults
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var reads, writes, cas, unknown int
	for _, op := range history {
		switch in := op.Input.(regInput); in.op {
		case "r":
			reads++
		case "w":
			writes++
		default:
			cas++
		}
		if op.Output.(regOutput).unknown {
			unknown++
		}
	}
	t.Logf("%d operations: %d reads, %d writes, %d cas, %d with unknown outcome", len(history), reads, writes, cas, unknown)
	if reads < 20 || writes < 20 {
		t.Fatalf("too few operations completed: %d reads, %d writes", reads, writes)
	}
	res := porcupine.CheckOperationsTimeout(registerModel, history, 20*time.Second+duration)
	if res == porcupine.Illegal {
		t.Fatalf("history is not linearizable (%d operations)", len(history))
	}
	if res == porcupine.Unknown {
		t.Logf("linearizability check timed out: inconclusive")
	}
}

// The model rejects a stale read, so the check above is not vacuous.
func TestRegisterModelRejectsStaleRead(t *testing.T) {
	history := []porcupine.Operation{
		{ClientId: 0, Input: regInput{op: "w", key: 0, value: "a"}, Call: 0, Output: regOutput{}, Return: 10},
		{ClientId: 1, Input: regInput{op: "r", key: 0}, Call: 20, Output: regOutput{value: ""}, Return: 30},
	}
	if porcupine.CheckOperations(registerModel, history) {
		t.Fatal("a read missing an acknowledged write passed as linearizable")
	}
	history[1].Output = regOutput{value: "a"}
	history = append(history, porcupine.Operation{ClientId: 1, Input: regInput{op: "cas", key: 0, expected: "a", value: "b"}, Call: 40, Output: regOutput{ok: false}, Return: 50})
	if porcupine.CheckOperations(registerModel, history) {
		t.Fatal("a failed CAS whose expectation held passed as linearizable")
	}
}
