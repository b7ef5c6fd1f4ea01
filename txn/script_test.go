package txn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestTxnScripts runs the text scenarios in testdata/scripts: transactions
// interleaved step by step on a real single-node store, each command's
// answer below `----`. Rewrite expectations after an intended change with
// -rewrite. Commands:
//
//	store [split=<k>,<k>…]        a fresh store and DB (first in every file)
//	begin <t> [readonly]
//	get <t> <k>
//	scan <t> <start> <end> [limit=<n>] [reverse]
//	put <t> <k> <v> | del <t> <k> | lock <t> <k>
//	savepoint <t> <name> | rollback-to <t> <name>
//	commit <t>                    prints the commit path (1pc, 2pc, none)
//	rollback <t>
func TestTxnScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		sc := &script{txns: map[string]*Txn{}, savepoints: map[string]Savepoint{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return sc.run(t, d)
		})
	})
}

type script struct {
	db         *DB
	store      *testStore
	txns       map[string]*Txn
	savepoints map[string]Savepoint
}

func (sc *script) txn(t *testing.T, d *datadriven.TestData) *Txn {
	t.Helper()
	tx := sc.txns[d.CmdArgs[0].Key]
	if tx == nil {
		d.Fatalf(t, "no transaction %q", d.CmdArgs[0].Key)
	}
	return tx
}

func (sc *script) arg(t *testing.T, d *datadriven.TestData, i int) string {
	t.Helper()
	if len(d.CmdArgs) <= i {
		d.Fatalf(t, "%s: missing argument %d", d.Cmd, i)
	}
	return d.CmdArgs[i].Key
}

func (sc *script) run(t *testing.T, d *datadriven.TestData) string {
	ctx := context.Background()
	if d.Cmd == "store" {
		var splits []string
		if d.HasArg("split") {
			var s string
			d.ScanArgs(t, "split", &s)
			splits = strings.Split(s, ",")
		}
		sc.db, sc.store = newTestDB(t, DBConfig{}, splits...)
		return "ok"
	}
	if sc.db == nil {
		d.Fatalf(t, "the file must start with `store`")
	}
	switch d.Cmd {
	case "begin":
		tx, err := sc.db.Begin(ctx, TxnOptions{ReadOnly: d.HasArg("readonly")})
		if err != nil {
			return scriptErr(err)
		}
		sc.txns[sc.arg(t, d, 0)] = tx
		return "ok"
	case "get":
		v, ok, err := sc.txn(t, d).Get(ctx, []byte(sc.arg(t, d, 1)))
		switch {
		case err != nil:
			return scriptErr(err)
		case !ok:
			return "not found"
		}
		return string(v)
	case "scan":
		limit := 0
		if d.HasArg("limit") {
			d.ScanArgs(t, "limit", &limit)
		}
		rows, err := sc.txn(t, d).Scan(ctx, []byte(sc.arg(t, d, 1)), []byte(sc.arg(t, d, 2)), limit, d.HasArg("reverse"))
		if err != nil {
			return scriptErr(err)
		}
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&b, "%s=%s\n", r.Key, r.Value)
		}
		if b.Len() == 0 {
			return "(empty)"
		}
		return b.String()
	case "put":
		return scriptResult(sc.txn(t, d).Put(ctx, []byte(sc.arg(t, d, 1)), []byte(sc.arg(t, d, 2))))
	case "del":
		return scriptResult(sc.txn(t, d).Delete(ctx, []byte(sc.arg(t, d, 1))))
	case "lock":
		return scriptResult(sc.txn(t, d).Lock(ctx, []byte(sc.arg(t, d, 1))))
	case "savepoint":
		sc.savepoints[sc.arg(t, d, 1)] = sc.txn(t, d).Savepoint()
		return "ok"
	case "rollback-to":
		return scriptResult(sc.txn(t, d).RollbackTo(sc.savepoints[sc.arg(t, d, 1)]))
	case "commit":
		sc.store.resetCounts()
		err := sc.txn(t, d).Commit(ctx)
		path := "none"
		switch {
		case sc.store.count("1pc") > 0:
			path = "1pc"
		case sc.store.count("prewrite") > 0:
			path = fmt.Sprintf("2pc, %d validations", sc.store.count("validate"))
		}
		if err != nil {
			return fmt.Sprintf("%s (%s)", scriptErr(err), path)
		}
		return "committed (" + path + ")"
	case "rollback":
		return scriptResult(sc.txn(t, d).Rollback(ctx))
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

func scriptResult(err error) string {
	if err != nil {
		return scriptErr(err)
	}
	return "ok"
}

// scriptErr names an error by kind (and key), leaving out timestamps.
func scriptErr(err error) string {
	var (
		ser    *SerializationError
		closed *TxnClosedError
		ro     *ReadOnlyTxnError
		inv    *InvalidArgumentError
	)
	switch {
	case errors.As(err, &ser):
		return fmt.Sprintf("serialization failure on %q", ser.Key)
	case errors.As(err, &closed):
		return "error: transaction is " + closed.State
	case errors.As(err, &ro):
		return "error: read-only transaction"
	case errors.As(err, &inv):
		return "error: " + inv.Reason
	}
	return "error: " + err.Error()
}
