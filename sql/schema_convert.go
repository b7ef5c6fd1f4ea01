package qsql

import (
	"fmt"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"

	"github.com/quorumdb/quorumdb/catalog"
)

// buildTableInfo derives the SQL layer's view of a descriptor. referenced
// are the foreign keys of other tables pointing at this one.
func buildTableInfo(d *catalog.TableDescriptor, referenced []gms.ForeignKeyConstraint) (*tableInfo, error) {
	ti := &tableInfo{
		desc:          d,
		dbName:        d.Database,
		name:          d.Name,
		id:            d.ID,
		version:       d.Version,
		primaryID:     catalog.PrimaryIndexID,
		comment:       d.Comment,
		referencedFKs: referenced,
		collation:     gms.Collation_Default,
	}
	if d.Collation != "" {
		coll, err := gms.ParseCollation("", d.Collation, false)
		if err != nil {
			return nil, fmt.Errorf("qsql: table %s collation %q: %w", d.Name, d.Collation, err)
		}
		ti.collation = coll
	}
	pks, err := d.PrimaryKeySchema()
	if err != nil {
		return nil, err
	}
	byID := make(map[uint32]int, len(d.Columns))
	for i := range d.Columns {
		byID[d.Columns[i].ID] = i
		ti.colIDs = append(ti.colIDs, d.Columns[i].ID)
	}
	// A type string without COLLATE parses to an unspecified collation;
	// it was stored from a type of the default collation (Type.String
	// names any other). Unspecified would make LIKE and comparisons fail.
	for _, c := range pks.Schema {
		if tc, ok := c.Type.(gms.TypeWithCollation); ok && tc.Collation() == gms.Collation_Unspecified {
			nt, err := tc.WithNewCollation(gms.Collation_Default)
			if err != nil {
				return nil, fmt.Errorf("qsql: column %s.%s collation: %w", d.Name, c.Name, err)
			}
			c.Type = nt
		}
	}
	ti.schema = pks
	ti.pkOrd = pks.PkOrdinals
	for _, ix := range d.Indexes {
		idx := &indexInfo{id: ix.ID, name: ix.Name, unique: ix.Unique, comment: ix.Comment}
		for i, id := range ix.ColumnIDs {
			o, ok := byID[id]
			if !ok {
				return nil, fmt.Errorf("qsql: table %s index %s column ID %d unknown", d.Name, ix.Name, id)
			}
			idx.cols = append(idx.cols, o)
			var pl uint16
			if i < len(ix.PrefixLengths) {
				pl = uint16(ix.PrefixLengths[i])
			}
			idx.prefixLens = append(idx.prefixLens, pl)
		}
		if allZero(idx.prefixLens) {
			idx.prefixLens = nil
		}
		ti.indexes = append(ti.indexes, idx)
	}
	for i := range d.Checks {
		ti.checks = append(ti.checks, d.Checks[i].ToGMS())
	}
	for i := range d.ForeignKeys {
		ti.declaredFKs = append(ti.declaredFKs, d.ForeignKeys[i].ToGMS())
	}
	if err := ti.finishLayout(); err != nil {
		return nil, err
	}
	return ti, nil
}

func allZero(xs []uint16) bool {
	for _, x := range xs {
		if x != 0 {
			return false
		}
	}
	return true
}

func sameName(a, b string) bool { return strings.EqualFold(a, b) }
