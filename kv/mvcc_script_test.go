package kv

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
)

// TestMVCCScripts runs the text scenarios in testdata/mvcc: a command, its
// arguments, optional input lines, then `----` and the expected output.
// Rewrite the expectations after an intended change with -rewrite.
//
// Timestamps are integers, or <n>ms for MakeTimestamp(n, 0) when the
// physical time matters (lock TTLs). Keys are plain words, or Go-quoted
// strings for bytes such as "\x00". Commands:
//
//	prewrite ts= primary= [ttl=]     input: put <k> <v> | del <k> | lock <k>
//	commit ts= commit=               input: keys
//	rollback ts=                     input: keys
//	resolve ts= [commit=]            input: keys
//	check-txn-status primary= ts= now= [rollback-if-expired]
//	heartbeat primary= ts= ttl=
//	1pc ts= commit=                  input: mutations as for prewrite, read <k> | read <k> <end>
//	get k= ts=
//	scan start= end= ts= [limit=] [reverse]
//	validate self= from= to=         input: read <k> | read <k> <end>
//	gc start= end= safepoint=
//	dump                             every lock, data version and write record
func TestMVCCScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/mvcc", func(t *testing.T, path string) {
		h := newHarness(t)
		h.desc = &RangeDescriptor{RangeID: 1, StartKey: []byte("a"), EndKey: []byte("z")}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return runScriptCommand(t, h, d)
		})
	})
}

func scriptTS(t *testing.T, d *datadriven.TestData, name string) Timestamp {
	t.Helper()
	var s string
	d.ScanArgs(t, name, &s)
	return parseScriptTS(t, s)
}

func parseScriptTS(t *testing.T, s string) Timestamp {
	t.Helper()
	if ms, ok := strings.CutSuffix(s, "ms"); ok {
		n, err := strconv.ParseUint(ms, 10, 64)
		if err != nil {
			t.Fatalf("bad timestamp %q", s)
		}
		return MakeTimestamp(n, 0)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("bad timestamp %q", s)
	}
	return n
}

func scriptKey(t *testing.T, s string) []byte {
	t.Helper()
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("bad key %s: %v", s, err)
		}
		return []byte(u)
	}
	return []byte(s)
}

func scriptArgKey(t *testing.T, d *datadriven.TestData, name string) []byte {
	t.Helper()
	var s string
	d.ScanArgs(t, name, &s)
	return scriptKey(t, s)
}

func scriptKeys(t *testing.T, d *datadriven.TestData) [][]byte {
	var keys [][]byte
	for _, f := range strings.Fields(d.Input) {
		keys = append(keys, scriptKey(t, f))
	}
	return keys
}

// scriptMutations parses put/del/lock lines and read spans.
func scriptMutations(t *testing.T, d *datadriven.TestData) ([]Mutation, []Span) {
	var muts []Mutation
	var spans []Span
	for _, line := range strings.Split(d.Input, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "put" && len(f) == 3:
			muts = append(muts, Mutation{Op: OpPut, Key: scriptKey(t, f[1]), Value: []byte(f[2])})
		case f[0] == "del" && len(f) == 2:
			muts = append(muts, Mutation{Op: OpDelete, Key: scriptKey(t, f[1])})
		case f[0] == "lock" && len(f) == 2:
			muts = append(muts, Mutation{Op: OpLock, Key: scriptKey(t, f[1])})
		case f[0] == "read" && len(f) == 2:
			spans = append(spans, Span{Key: scriptKey(t, f[1])})
		case f[0] == "read" && len(f) == 3:
			spans = append(spans, Span{Key: scriptKey(t, f[1]), EndKey: scriptKey(t, f[2])})
		default:
			d.Fatalf(t, "bad input line %q", line)
		}
	}
	return muts, spans
}

func runScriptCommand(t *testing.T, h *mvccHarness, d *datadriven.TestData) string {
	var req *Request
	switch d.Cmd {
	case "dump":
		return dumpMVCC(t, h.e.DB())
	case "prewrite":
		muts, _ := scriptMutations(t, d)
		ttl := uint64(3000)
		d.MaybeScanArgs(t, "ttl", &ttl)
		req = &Request{Prewrite: &PrewriteRequest{Mutations: muts, Primary: scriptArgKey(t, d, "primary"), StartTS: scriptTS(t, d, "ts"), LockTTL: ttl}}
	case "commit":
		req = &Request{Commit: &CommitRequest{Keys: scriptKeys(t, d), StartTS: scriptTS(t, d, "ts"), CommitTS: scriptTS(t, d, "commit")}}
	case "rollback":
		req = &Request{Rollback: &RollbackRequest{Keys: scriptKeys(t, d), StartTS: scriptTS(t, d, "ts")}}
	case "resolve":
		var commitTS Timestamp
		if d.HasArg("commit") {
			commitTS = scriptTS(t, d, "commit")
		}
		req = &Request{ResolveLock: &ResolveLockRequest{Keys: scriptKeys(t, d), StartTS: scriptTS(t, d, "ts"), CommitTS: commitTS}}
	case "check-txn-status":
		req = &Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: scriptArgKey(t, d, "primary"), StartTS: scriptTS(t, d, "ts"),
			CurrentTS: scriptTS(t, d, "now"), RollbackIfExpired: d.HasArg("rollback-if-expired")}}
	case "heartbeat":
		var ttl uint64
		d.ScanArgs(t, "ttl", &ttl)
		req = &Request{TxnHeartbeat: &TxnHeartbeatRequest{PrimaryKey: scriptArgKey(t, d, "primary"), StartTS: scriptTS(t, d, "ts"), NewTTL: ttl}}
	case "1pc":
		muts, spans := scriptMutations(t, d)
		req = &Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: muts, ReadSpans: spans, StartTS: scriptTS(t, d, "ts"), CommitTS: scriptTS(t, d, "commit")}}
	case "get":
		req = &Request{Get: &GetRequest{Key: scriptArgKey(t, d, "k"), ReadTS: scriptTS(t, d, "ts")}}
	case "scan":
		var limit int
		d.MaybeScanArgs(t, "limit", &limit)
		req = &Request{Scan: &ScanRequest{Start: scriptArgKey(t, d, "start"), End: scriptArgKey(t, d, "end"), ReadTS: scriptTS(t, d, "ts"),
			Limit: limit, Reverse: d.HasArg("reverse")}}
	case "validate":
		_, spans := scriptMutations(t, d)
		req = &Request{ValidateReads: &ValidateReadsRequest{Spans: spans, TxnStartTS: scriptTS(t, d, "self"), From: scriptTS(t, d, "from"), To: scriptTS(t, d, "to")}}
	case "gc":
		req = &Request{GC: &GCRequest{Start: scriptArgKey(t, d, "start"), End: scriptArgKey(t, d, "end"), SafePoint: scriptTS(t, d, "safepoint")}}
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	resp, err := h.eval(req)
	if err != nil {
		return fmt.Sprintf("error: %T: %v\n", err, err)
	}
	return formatScriptResponse(resp)
}

func formatScriptResponse(r *Response) string {
	var sb strings.Builder
	switch {
	case r.Get != nil:
		if r.Get.Found {
			fmt.Fprintf(&sb, "%q\n", r.Get.Value)
		} else {
			sb.WriteString("not found\n")
		}
	case r.Scan != nil:
		for _, kv := range r.Scan.Rows {
			fmt.Fprintf(&sb, "%q: %q\n", kv.Key, kv.Value)
		}
		if r.Scan.ResumeKey != nil {
			fmt.Fprintf(&sb, "resume at %q\n", r.Scan.ResumeKey)
		}
		if sb.Len() == 0 {
			sb.WriteString("no rows\n")
		}
	case r.ValidateReads != nil:
		if r.ValidateReads.Conflict {
			fmt.Fprintf(&sb, "conflict on %q\n", r.ValidateReads.ConflictKey)
		} else {
			sb.WriteString("no conflict\n")
		}
	case r.CheckTxnStatus != nil:
		c := r.CheckTxnStatus
		switch c.Status {
		case TxnPending:
			fmt.Fprintf(&sb, "pending ttl=%d\n", c.LockTTL)
		case TxnCommitted:
			fmt.Fprintf(&sb, "committed at %d\n", c.CommitTS)
		case TxnRolledBack:
			sb.WriteString("rolled back\n")
		}
	case r.TxnHeartbeat != nil:
		fmt.Fprintf(&sb, "ttl=%d\n", r.TxnHeartbeat.LockTTL)
	case r.OnePhaseCommit != nil:
		fmt.Fprintf(&sb, "committed at %d\n", r.OnePhaseCommit.CommitTS)
	case r.GC != nil:
		fmt.Fprintf(&sb, "removed %d\n", r.GC.VersionsRemoved)
	default:
		sb.WriteString("ok\n")
	}
	return sb.String()
}

// dumpMVCC prints the three families in pebble order.
func dumpMVCC(t *testing.T, r Reader) string {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{lockFamily}, UpperBound: []byte{writeFamily + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	var sb strings.Builder
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		userKey, rest, err := decodeEscaped(k[1:])
		if err != nil {
			t.Fatal(err)
		}
		switch k[0] {
		case lockFamily:
			l, err := decodeLock(it.Value())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&sb, "lock  %q: start=%d primary=%q ttl=%d kind=%s min_commit=%d\n",
				userKey, l.startTS, l.primary, l.ttl, writeKind(l.kind), l.minCommitTS)
		case dataFamily:
			fmt.Fprintf(&sb, "data  %q@%d: %q\n", userKey, ^beUint64(rest), it.Value())
		case writeFamily:
			w, err := decodeWriteRecord(it.Value())
			if err != nil {
				t.Fatal(err)
			}
			flag := ""
			if w.overlappedRollback {
				flag = " +overlapped-rollback"
			}
			fmt.Fprintf(&sb, "write %q@%d: start=%d %s%s\n", userKey, ^beUint64(rest), w.startTS, w.kind, flag)
		}
	}
	if sb.Len() == 0 {
		return "empty\n"
	}
	return sb.String()
}
