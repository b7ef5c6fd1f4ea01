package qsql

// Stale reads through SQL: SELECT … FROM t AS OF <expr>.
//
// go-mysql-server resolves a table written with AS OF through
// sql.VersionedDatabase.GetTableInsensitiveAsOf, handing over the evaluated
// expression (a string or a time.Time). The database turns it into a hybrid
// timestamp, refuses one in the future or below the GC safepoint, and opens
// a read-only txn.TxnOptions{AsOf: ts} transaction: the table's definition
// is read from the catalog inside it (the schema as of that time; a table
// that did not exist then is 1146), and every scan of the table reads in it.
//
// One such transaction per distinct timestamp per statement, shared by
// every AS OF table of that timestamp in the statement (a lookup join reads
// the inner table once per outer row: it must not begin a transaction, with
// its GC safepoint read, each time). The transactions belong to the session
// (statementSnapshots) and are always rolled back: when the statement's
// context ends (the server cancels it once the result is sent), at the
// start of the session's next statement, or when the session closes. An
// open AS OF transaction holds the node's MinActiveStartTS at its
// timestamp, which keeps the GC safepoint below it while it reads.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
	"github.com/dolthub/vitess/go/mysql"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

var _ gms.VersionedDatabase = (*Database)(nil)

// maxPhysicalMillis is the largest physical part a Timestamp can hold.
const maxPhysicalMillis = uint64(1)<<(64-kv.TimestampLogicalBits) - 1

// MySQL error codes of AS OF refusals (vitess names 1525 and 1105 but not
// 1036).
const erOpenAsReadonly = 1036

// errAsOfValue is MySQL 1525 (ER_WRONG_VALUE) for an AS OF value that is
// not a point in time this layer can read at.
func errAsOfValue(value any, reason string) error {
	return mysql.NewSQLError(mysql.ERWrongValue, mysql.SSUnknownSQLState,
		"Incorrect AS OF value: '%s' (%s)", asOfString(value), reason)
}

// asOfString shows an AS OF value as the client wrote it (a time.Time is
// the session zone's wall clock, whatever its Go location says).
func asOfString(value any) string {
	if t, ok := value.(time.Time); ok {
		return t.Format("2006-01-02 15:04:05.999999")
	}
	return fmt.Sprint(value)
}

// errAsOfTooOld is MySQL 1105 (ER_UNKNOWN_ERROR; MySQL has no code for a
// garbage-collected snapshot) for an AS OF timestamp at or below the GC
// safepoint.
func errAsOfTooOld(value any, e *txn.SnapshotTooOldError) error {
	return mysql.NewSQLError(mysql.ERUnknownError, mysql.SSUnknownSQLState,
		"AS OF '%s' is too old: snapshot %d is at or below the GC safepoint %d (%s UTC); old versions may be collected",
		asOfString(value), e.AsOf, e.SafePoint, formatPhysical(e.SafePoint))
}

// errAsOfReadOnly is MySQL 1036 (ER_OPEN_AS_READONLY) for a write through a
// table read AS OF.
func errAsOfReadOnly(table string) error {
	return mysql.NewSQLError(erOpenAsReadonly, mysql.SSUnknownSQLState,
		"Table '%s' is read only: it is read AS OF a past timestamp", table)
}

func formatPhysical(ts kv.Timestamp) string {
	return time.UnixMilli(int64(kv.PhysicalMillis(ts))).UTC().Format("2006-01-02 15:04:05.000")
}

// asOfRead is what a Table read AS OF carries: the timestamp and the
// statement's snapshot transaction at it (nil when the table was resolved
// outside any transaction, as COM_STMT_PREPARE does: each scan then opens
// and ends its own).
type asOfRead struct {
	ts  kv.Timestamp
	kvt KVTxn
}

// GetTableInsensitiveAsOf returns the table as it was at asOf (a datetime
// string or time.Time in the session time zone, or an integer hybrid
// timestamp), reading its definition in a snapshot at that time.
func (d *Database) GetTableInsensitiveAsOf(ctx *gms.Context, name string, asOf any) (gms.Table, bool, error) {
	ts, err := d.srv.asOfTimestamp(ctx, asOf)
	if err != nil {
		return nil, false, err
	}
	snap, release, err := d.srv.asOfSnapshot(ctx, asOf, ts)
	if err != nil {
		return nil, false, err
	}
	defer release()
	info, found, err := d.srv.store.getTable(ctx, snap, nil, d.desc, name)
	if err != nil || !found {
		return nil, false, err
	}
	read := &asOfRead{ts: ts}
	if stmtSnapshot(ctx) {
		read.kvt = snap
	}
	return &Table{db: d, info: info, asOf: read}, true, nil
}

// GetTableNamesAsOf lists the tables that existed at asOf, sorted.
func (d *Database) GetTableNamesAsOf(ctx *gms.Context, asOf any) ([]string, error) {
	ts, err := d.srv.asOfTimestamp(ctx, asOf)
	if err != nil {
		return nil, err
	}
	snap, release, err := d.srv.asOfSnapshot(ctx, asOf, ts)
	if err != nil {
		return nil, err
	}
	defer release()
	names, err := d.srv.store.listTables(ctx, snap, d.desc)
	if err != nil {
		return nil, err
	}
	sort.Slice(names, func(i, j int) bool { return strings.ToLower(names[i]) < strings.ToLower(names[j]) })
	return names, nil
}

// stmtSnapshot reports whether AS OF snapshots opened under ctx belong to a
// running statement: the engine opened a transaction for it. Without one
// (COM_STMT_PREPARE binds before any transaction exists) nothing will read
// the resolved table, and nothing ends the statement: the snapshot is
// released at once.
func stmtSnapshot(ctx *gms.Context) bool {
	tx, ok := ctx.GetTransaction().(*Transaction)
	return ok && tx != nil && !tx.finished
}

// asOfSnapshot returns a read-only transaction at ts: the statement's (kept
// until the statement ends; release does nothing) or, outside a statement
// transaction, a one-off that release rolls back.
func (s *Server) asOfSnapshot(ctx *gms.Context, value any, ts kv.Timestamp) (KVTxn, func(), error) {
	sess, ok := ctx.Session.(*Session)
	if !ok {
		return nil, nil, fmt.Errorf("qsql: session of type %T", ctx.Session)
	}
	if stmtSnapshot(ctx) {
		k, err := sess.asOf.get(ctx, ts, func() (KVTxn, error) { return s.beginAsOf(ctx, value, ts) })
		return k, func() {}, err
	}
	k, err := s.beginAsOf(ctx, value, ts)
	if err != nil {
		return nil, nil, err
	}
	return k, func() { _ = k.Rollback(ctx) }, nil
}

// beginAsOf begins the snapshot. The transaction layer refuses a timestamp
// above the oracle's (a read there would raise the max_read_ts of every
// range it touches, pushing later commits into the future; it asks the
// oracle only for timestamps near or past this node's clock) and one at or
// below the GC safepoint.
func (s *Server) beginAsOf(ctx context.Context, value any, ts kv.Timestamp) (KVTxn, error) {
	k, err := s.db.Begin(ctx, txn.TxnOptions{AsOf: ts})
	if err != nil {
		var tooOld *txn.SnapshotTooOldError
		var invalid *txn.InvalidArgumentError
		switch {
		case errors.As(err, &tooOld):
			return nil, errAsOfTooOld(value, tooOld)
		case errors.As(err, &invalid):
			return nil, errAsOfValue(value, invalid.Reason)
		}
		return nil, convertTxnError("AS OF: begin snapshot", err)
	}
	return k, nil
}

// asOfTimestamp turns an AS OF value into a hybrid timestamp:
//   - an integer (digits only) is a hybrid timestamp as is;
//   - a datetime string or time.Time is a wall-clock time in the session
//     time zone (go-mysql-server evaluates NOW() and friends to the session
//     zone's wall clock in a UTC-labelled time.Time), read at the first
//     hybrid timestamp of its millisecond (finer digits are dropped).
func (s *Server) asOfTimestamp(ctx *gms.Context, value any) (kv.Timestamp, error) {
	var wall time.Time
	switch v := value.(type) {
	case string:
		str := strings.TrimSpace(v)
		if isDigits(str) {
			ts, err := strconv.ParseUint(str, 10, 64)
			if err != nil || ts == 0 {
				return 0, errAsOfValue(value, "not a hybrid timestamp: want an integer in [1, 2^64)")
			}
			return ts, nil
		}
		t, err := types.DatetimeMaxPrecision.ConvertWithoutRangeCheck(ctx, str)
		if err != nil {
			return 0, errAsOfValue(value, "want a datetime such as '2006-01-02 15:04:05.000' or an integer hybrid timestamp")
		}
		wall = t
	case time.Time:
		wall = v
	default:
		return 0, errAsOfValue(value, fmt.Sprintf("unsupported value of type %T", value))
	}
	loc, err := sessionLocation(ctx)
	if err != nil {
		return 0, err
	}
	instant := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), wall.Nanosecond(), loc)
	ms := instant.UnixMilli()
	switch {
	case ms <= 0:
		return 0, errAsOfValue(value, "before 1970-01-01 00:00:00 UTC")
	case uint64(ms) > maxPhysicalMillis:
		return 0, errAsOfValue(value, "beyond the range of hybrid timestamps")
	}
	return kv.MakeTimestamp(uint64(ms), 0), nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// sessionLocation is the session's time_zone: SYSTEM (the server's local
// zone), a zone name, or a MySQL offset such as "+05:30".
func sessionLocation(ctx *gms.Context) (*time.Location, error) {
	v, err := ctx.GetSessionVariable(ctx, "time_zone")
	if err != nil {
		return nil, fmt.Errorf("qsql: AS OF: read time_zone: %w", err)
	}
	name, _ := v.(string)
	if name == "" || strings.EqualFold(name, "SYSTEM") {
		return time.Local, nil
	}
	if loc, err := time.LoadLocation(name); err == nil {
		return loc, nil
	}
	if off, ok := parseMySQLOffset(name); ok {
		return time.FixedZone(name, off), nil
	}
	return nil, fmt.Errorf("qsql: AS OF: unknown session time zone %q", name)
}

// parseMySQLOffset parses "+HH:MM" / "-H:MM" into seconds east of UTC.
func parseMySQLOffset(s string) (int, bool) {
	if len(s) < 4 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	hh, mm, ok := strings.Cut(s[1:], ":")
	if !ok || !isDigits(hh) || len(mm) != 2 || !isDigits(mm) || len(hh) > 2 {
		return 0, false
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	if h > 14 || m > 59 {
		return 0, false
	}
	off := h*3600 + m*60
	if s[0] == '-' {
		off = -off
	}
	return off, true
}

// scanTxn is the transaction a scan of t reads in: the session's, or for
// a table read AS OF its snapshot.
func (t *Table) scanTxn(ctx *gms.Context) (KVTxn, func(), error) {
	if t.asOf == nil {
		return readTxn(ctx)
	}
	if t.asOf.kvt != nil {
		return t.asOf.kvt, func() {}, nil
	}
	k, err := t.db.srv.beginAsOf(ctx, t.asOf.ts, t.asOf.ts)
	if err != nil {
		return nil, nil, err
	}
	return k, func() { _ = k.Rollback(ctx) }, nil
}

// statementSnapshots are a session's open AS OF transactions, grouped by
// the statement context that opened them. Safe for concurrent use: a
// group is ended from the goroutine context.AfterFunc starts when its
// statement's context is cancelled. The zero value is ready.
type statementSnapshots struct {
	mu     sync.Mutex
	groups map[<-chan struct{}]*snapshotGroup
}

// snapshotGroup is one statement's AS OF transactions, one per timestamp.
type snapshotGroup struct {
	txns map[kv.Timestamp]KVTxn
	// stop unregisters the end-of-statement callback (nil when the
	// statement context cannot be cancelled).
	stop func() bool
}

// get returns the statement's snapshot at ts, beginning it with begin on
// first use. The group of ctx is ended when ctx is done; a context that
// is never done (engines driven in-process) leaves it to the next
// statement's ValidateSession.
func (ss *statementSnapshots) get(ctx context.Context, ts kv.Timestamp, begin func() (KVTxn, error)) (KVTxn, error) {
	key := ctx.Done()
	ss.mu.Lock()
	g := ss.groups[key]
	if g != nil {
		if k, ok := g.txns[ts]; ok {
			ss.mu.Unlock()
			return k, nil
		}
	}
	ss.mu.Unlock()

	// Begin outside the lock: it asks the oracle and reads the safepoint.
	k, err := begin()
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.groups == nil {
		ss.groups = map[<-chan struct{}]*snapshotGroup{}
	}
	g = ss.groups[key]
	if g == nil {
		g = &snapshotGroup{txns: map[kv.Timestamp]KVTxn{}}
		ss.groups[key] = g
		if key != nil {
			g.stop = context.AfterFunc(ctx, func() { ss.endGroup(key) })
		}
	}
	if prev, ok := g.txns[ts]; ok {
		// Only one goroutine runs a statement; keep the first anyway.
		_ = k.Rollback(context.Background())
		return prev, nil
	}
	g.txns[ts] = k
	return k, nil
}

// endGroup rolls back the snapshots opened under the statement context
// whose Done channel is key.
func (ss *statementSnapshots) endGroup(key <-chan struct{}) {
	ss.mu.Lock()
	g := ss.groups[key]
	delete(ss.groups, key)
	ss.mu.Unlock()
	g.end()
}

// endAll rolls back every snapshot of the session (a new statement starts,
// or the session closes).
func (ss *statementSnapshots) endAll() {
	ss.mu.Lock()
	groups := ss.groups
	ss.groups = nil
	ss.mu.Unlock()
	for _, g := range groups {
		g.end()
	}
}

// open counts the session's open AS OF transactions.
func (ss *statementSnapshots) open() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for _, g := range ss.groups {
		n += len(g.txns)
	}
	return n
}

func (g *snapshotGroup) end() {
	if g == nil {
		return
	}
	if g.stop != nil {
		g.stop()
	}
	for _, k := range g.txns {
		// Rolling back a read-only transaction only unregisters it.
		_ = k.Rollback(context.Background())
	}
}

// startStatement ends the snapshots of earlier statements: a statement
// that is not nested in another one (stored programs run theirs
// interpreted, inside the caller's) starts only once the session's
// previous statement is over.
func (ss *statementSnapshots) startStatement(ctx *gms.Context) {
	if ctx.IsInterpreted() {
		return
	}
	ss.endAll()
}

// writeTxn is writeTxn for a write to t: refused when t is read AS OF.
func (t *Table) writeTxn(ctx *gms.Context) (*Transaction, KVTxn, error) {
	if t.asOf != nil {
		return nil, nil, errAsOfReadOnly(t.info.name)
	}
	return writeTxn(ctx)
}
