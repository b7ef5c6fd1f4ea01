package catalog

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/quorumdb/quorumdb/kv"
)

// The schema generation is a counter under the catalog's key space,
//
//	s cat 'g' → generation (BE8; absent = 0)
//
// that every transaction changing the schema increments in the same
// transaction as its descriptor writes. Two snapshots that read the same
// generation therefore see the same descriptors, which lets a node cache
// resolved descriptors and validate them with one read per transaction;
// and because that read is part of the transaction's read set, a
// transaction that used the cache cannot commit across a concurrent schema
// change (it fails read validation instead).
//
// The catalog does not bump the generation by itself: the caller that owns
// the transaction does it once per write (see the SQL layer's catalog
// adapter), so Catalog's methods stay plain descriptor reads and writes.
const tagGeneration = 'g'

// SchemaGenerationKey is the key of the schema generation counter.
func SchemaGenerationKey() []byte {
	return kv.SystemKey(catalogRoot, []byte{tagGeneration})
}

// SchemaGeneration reads the schema generation in this transaction (0 when
// no schema change ever bumped it).
func (c *Catalog) SchemaGeneration(ctx context.Context) (uint64, error) {
	v, ok, err := c.txn.Get(ctx, SchemaGenerationKey())
	if err != nil {
		return 0, fmt.Errorf("catalog: read schema generation: %w", err)
	}
	if !ok {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: schema generation value of %d bytes", ErrInvalidDescriptor, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// BumpSchemaGeneration increments the schema generation in this transaction
// and returns the new value. Call it in every transaction that writes
// catalog keys (or other schema objects cached by generation).
func (c *Catalog) BumpSchemaGeneration(ctx context.Context) (uint64, error) {
	g, err := c.SchemaGeneration(ctx)
	if err != nil {
		return 0, err
	}
	g++
	if err := c.txn.Put(ctx, SchemaGenerationKey(), binary.BigEndian.AppendUint64(nil, g)); err != nil {
		return 0, fmt.Errorf("catalog: bump schema generation: %w", err)
	}
	return g, nil
}
