package qsql

import (
	"context"
	"sync"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/catalog"
	"github.com/quorumdb/quorumdb/kv"
)

// defaultSchemaCacheEntries bounds the node-wide schema cache; when it is
// full it is emptied (schemas change rarely, the bound only keeps a node
// with very many tables from growing without limit).
const defaultSchemaCacheEntries = 4096

// nodeSchemaCache is the node-wide cache of resolved schema objects: the
// databases by name, the tables by (database ID, name) with the foreign
// keys that reference them, view lookups and trigger lists. Everything in
// it was read at one schema generation (catalog.SchemaGenerationKey) and
// is only handed to a transaction that read that same generation, so it
// is exactly what the transaction would have read from KV itself:
// every schema change bumps the generation in its own transaction.
//
// Negative results (no such database, table or view) are cached as well:
// the engine looks up a view of every table name it resolves.
//
// It only moves forward: entries read at an older generation than the
// cache's are dropped, a newer generation empties it. Values are shared
// between transactions and must not be modified (tableInfo is immutable).
// Safe for concurrent use; the zero value is an empty cache holding up to
// defaultSchemaCacheEntries entries.
type nodeSchemaCache struct {
	mu       sync.Mutex
	gen      uint64
	dbs      map[string]cachedDB
	tables   map[string]*tableInfo // nil value: no such table
	views    map[string]cachedView
	triggers map[uint32][]gms.TriggerDefinition
	size     int
	// maxEntries bounds size (0: defaultSchemaCacheEntries).
	maxEntries int
}

type cachedDB struct {
	desc  dbDesc
	found bool
}

type cachedView struct {
	def   gms.ViewDefinition
	found bool
}

func (c *nodeSchemaCache) resetLocked(gen uint64) {
	c.gen = gen
	c.dbs = map[string]cachedDB{}
	c.tables = map[string]*tableInfo{}
	c.views = map[string]cachedView{}
	c.triggers = map[uint32][]gms.TriggerDefinition{}
	c.size = 0
}

// admitLocked reports whether an entry read at gen may be stored, making
// room (and moving to gen) as needed.
func (c *nodeSchemaCache) admitLocked(gen uint64) bool {
	switch {
	case gen < c.gen:
		return false
	case gen > c.gen || c.dbs == nil:
		c.resetLocked(gen)
	}
	limit := c.maxEntries
	if limit <= 0 {
		limit = defaultSchemaCacheEntries
	}
	if c.size >= limit {
		c.resetLocked(gen)
	}
	c.size++
	return true
}

// cacheGet and cachePut read and fill one of the cache's maps at
// generation gen; pick selects the map under c.mu (a new generation
// replaces the maps).
func cacheGet[K comparable, V any](c *nodeSchemaCache, gen uint64, pick func(*nodeSchemaCache) map[K]V, key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		var zero V
		return zero, false
	}
	v, ok := pick(c)[key]
	return v, ok
}

func cachePut[K comparable, V any](c *nodeSchemaCache, gen uint64, pick func(*nodeSchemaCache) map[K]V, key K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admitLocked(gen) {
		pick(c)[key] = v
	}
}

func cachedDBs(c *nodeSchemaCache) map[string]cachedDB      { return c.dbs }
func cachedTables(c *nodeSchemaCache) map[string]*tableInfo { return c.tables }
func cachedViews(c *nodeSchemaCache) map[string]cachedView  { return c.views }

func (c *nodeSchemaCache) database(gen uint64, key string) (cachedDB, bool) {
	return cacheGet(c, gen, cachedDBs, key)
}

func (c *nodeSchemaCache) putDatabase(gen uint64, key string, d cachedDB) {
	cachePut(c, gen, cachedDBs, key, d)
}

func (c *nodeSchemaCache) table(gen uint64, key string) (*tableInfo, bool) {
	return cacheGet(c, gen, cachedTables, key)
}

func (c *nodeSchemaCache) putTable(gen uint64, key string, ti *tableInfo) {
	cachePut(c, gen, cachedTables, key, ti)
}

func (c *nodeSchemaCache) view(gen uint64, key string) (cachedView, bool) {
	return cacheGet(c, gen, cachedViews, key)
}

func (c *nodeSchemaCache) putView(gen uint64, key string, v cachedView) {
	cachePut(c, gen, cachedViews, key, v)
}

// triggerList returns a copy of the cached trigger list of database dbID.
func (c *nodeSchemaCache) triggerList(gen uint64, dbID uint32) ([]gms.TriggerDefinition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return nil, false
	}
	ts, ok := c.triggers[dbID]
	if !ok {
		return nil, false
	}
	return append([]gms.TriggerDefinition(nil), ts...), true
}

func (c *nodeSchemaCache) putTriggerList(gen uint64, dbID uint32, ts []gms.TriggerDefinition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admitLocked(gen) {
		c.triggers[dbID] = append([]gms.TriggerDefinition(nil), ts...)
	}
}

// plainCatalogKV adapts a KVTxn to the catalog without bumping the schema
// generation on writes (used for the generation itself).
type plainCatalogKV struct{ KVTxn }

func (c plainCatalogKV) Scan(ctx context.Context, start, end []byte, limit int) ([]kv.KeyValue, error) {
	return c.KVTxn.Scan(ctx, start, end, limit, false)
}

// sharedGeneration returns the schema generation the transaction of cache
// reads at, reading it (once per transaction, as a normal transactional
// read that commit validates) on first use; ok is false when the node cache
// must not be used: no transaction, or this transaction changed the schema
// (its own uncommitted descriptors are not the generation's).
func (s *schemaStore) sharedGeneration(ctx context.Context, kvt KVTxn, cache *schemaCache) (uint64, bool, error) {
	if cache == nil || !cache.shared {
		return 0, false, nil
	}
	if !cache.genRead {
		g, err := catalog.New(plainCatalogKV{kvt}).SchemaGeneration(ctx)
		if err != nil {
			return 0, false, convertTxnError("read schema generation", err)
		}
		cache.gen, cache.genRead = g, true
	}
	return cache.gen, true, nil
}

// bumpSchemaGeneration marks a schema change in kvt's transaction.
func bumpSchemaGeneration(ctx context.Context, kvt KVTxn) error {
	if _, err := catalog.New(plainCatalogKV{kvt}).BumpSchemaGeneration(ctx); err != nil {
		return convertTxnError("bump schema generation", err)
	}
	return nil
}
