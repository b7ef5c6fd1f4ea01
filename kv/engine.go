package kv

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Reader is what MVCC reads need: point gets and iterators. *pebble.DB,
// *pebble.Snapshot and an indexed *pebble.Batch (which sees its own writes)
// all satisfy it.
type Reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// Writer is what MVCC writes need. *pebble.Batch satisfies it.
type Writer interface {
	Set(key, value []byte, o *pebble.WriteOptions) error
	Delete(key []byte, o *pebble.WriteOptions) error
	DeleteRange(start, end []byte, o *pebble.WriteOptions) error
}

// ReadWriter is an indexed batch: writes that later reads in the same batch see.
type ReadWriter interface {
	Reader
	Writer
}

// EngineOptions configure Open.
type EngineOptions struct {
	// CacheSize is the block cache size in bytes (0: 64 MiB).
	CacheSize int64
	// Logger receives pebble's log lines (nil: slog.Default()).
	Logger *slog.Logger
	// EventListener, when set, receives pebble's events (flushes, compactions,
	// write stalls, disk slowness) so the node can export them as metrics.
	EventListener *pebble.EventListener
	// InMemory keeps everything in memory (tests and benchmarks only).
	InMemory bool
}

// Engine owns the node's single pebble database. Callers write through
// batches and decide per batch whether to sync: Raft log appends sync (once
// per scheduler round for all ranges), applies do not (the next synced append
// makes them durable, and restart re-applies from the applied index).
type Engine struct {
	db    *pebble.DB
	cache *pebble.Cache
	dir   string
}

// Open opens (creating if needed) the pebble database in dir.
func Open(dir string, opts EngineOptions) (*Engine, error) {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cache := pebble.NewCache(opts.CacheSize)
	po := &pebble.Options{
		Cache:                       cache,
		Logger:                      slogAdapter{opts.Logger.With("component", "pebble")},
		MemTableSize:                64 << 20,
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       1000,
		FormatMajorVersion:          pebble.FormatNewest,
	}
	if opts.EventListener != nil {
		po.EventListener = opts.EventListener
	}
	if opts.InMemory {
		po.FS = newMemFS()
		dir = ""
	}
	db, err := pebble.Open(dir, po)
	cache.Unref() // the DB holds its own reference
	if err != nil {
		return nil, fmt.Errorf("kv: open pebble at %q: %w", dir, err)
	}
	return &Engine{db: db, dir: dir}, nil
}

// DB exposes the pebble database to the layers that need its full API (Raft
// snapshots build and ingest SSTs).
func (e *Engine) DB() *pebble.DB { return e.db }

// Dir is the data directory ("" when in memory).
func (e *Engine) Dir() string { return e.dir }

// NewBatch returns an indexed batch: reads through it see its own writes.
func (e *Engine) NewBatch() *pebble.Batch { return e.db.NewIndexedBatch() }

// NewWriteBatch returns a write-only batch (cheaper; no reads through it).
func (e *Engine) NewWriteBatch() *pebble.Batch { return e.db.NewBatch() }

// NewSnapshot returns a consistent point-in-time view. Close it when done.
func (e *Engine) NewSnapshot() *pebble.Snapshot { return e.db.NewSnapshot() }

// Get reads one raw pebble key; it returns (nil, nil) when absent. The value
// is a copy.
func (e *Engine) Get(key []byte) ([]byte, error) {
	return GetRaw(e.db, key)
}

// Commit commits a batch, syncing the WAL when sync is set.
func (e *Engine) Commit(b *pebble.Batch, sync bool) error {
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := b.Commit(opt); err != nil {
		return fmt.Errorf("kv: commit batch: %w", err)
	}
	return nil
}

// Metrics returns pebble's metrics (compactions, cache hit rates, WAL bytes
// and fsync latency) for export.
func (e *Engine) Metrics() *pebble.Metrics { return e.db.Metrics() }

// Close flushes nothing extra and closes the database; unsynced writes that
// pebble has not yet written to the WAL may be lost, synced ones never.
func (e *Engine) Close() error {
	if err := e.db.Close(); err != nil {
		return fmt.Errorf("kv: close pebble: %w", err)
	}
	return nil
}

// GetRaw reads one raw pebble key from r; it returns (nil, nil) when absent.
// The value is a copy that outlives the read; a present empty value is a
// non-nil empty slice, so absence and emptiness stay apart.
func GetRaw(r Reader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kv: get %x: %w", key, err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	if cerr := closer.Close(); cerr != nil {
		return nil, fmt.Errorf("kv: get %x: %w", key, cerr)
	}
	return out, nil
}

// slogAdapter routes pebble's printf-style logger to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Infof(format string, args ...any)  { a.l.Debug(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Error(fmt.Sprintf(format, args...)) }
func (a slogAdapter) Fatalf(format string, args ...any) {
	a.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
