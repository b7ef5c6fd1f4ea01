package qsql

import (
	"context"
	"strings"

	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/types"
)

// SystemDatabaseName is the read-only database that shows the cluster
// itself: SELECT * FROM quorumdb.nodes, quorumdb.ranges.
const SystemDatabaseName = "quorumdb"

// ClusterInfo is what the system database shows; the node supplies it.
type ClusterInfo interface {
	Nodes(ctx context.Context) ([]SystemNode, error)
	Ranges(ctx context.Context) ([]SystemRange, error)
}

// SystemNode is one row of quorumdb.nodes.
type SystemNode struct {
	ID                         uint64
	Name                       string
	SQLAddr, RPCAddr, HTTPAddr string
	Live                       bool
}

// SystemRange is one row of quorumdb.ranges.
type SystemRange struct {
	RangeID          uint64
	StartKey, EndKey string
	Generation       uint64
	Replicas         string // "n1,n2,n3(learner)"
	Leader           uint64 // 0: unknown
}

func isSystemDatabase(name string) bool { return strings.EqualFold(name, SystemDatabaseName) }

// sysDatabase is the quorumdb database: two tables computed on read.
type sysDatabase struct{ info ClusterInfo }

var _ gms.Database = sysDatabase{}

func (sysDatabase) Name() string { return SystemDatabaseName }

func (d sysDatabase) GetTableInsensitive(_ *gms.Context, name string) (gms.Table, bool, error) {
	switch strings.ToLower(name) {
	case "nodes":
		return &sysTable{name: "nodes", schema: sysNodesSchema, rows: d.nodeRows}, true, nil
	case "ranges":
		return &sysTable{name: "ranges", schema: sysRangesSchema, rows: d.rangeRows}, true, nil
	}
	return nil, false, nil
}

func (sysDatabase) GetTableNames(*gms.Context) ([]string, error) {
	return []string{"nodes", "ranges"}, nil
}

var sysNodesSchema = gms.Schema{
	{Name: "node_id", Type: types.Uint64, Source: "nodes", PrimaryKey: true},
	{Name: "name", Type: types.LongText, Source: "nodes"},
	{Name: "sql_addr", Type: types.LongText, Source: "nodes"},
	{Name: "rpc_addr", Type: types.LongText, Source: "nodes"},
	{Name: "http_addr", Type: types.LongText, Source: "nodes"},
	{Name: "live", Type: types.Boolean, Source: "nodes"},
}

var sysRangesSchema = gms.Schema{
	{Name: "range_id", Type: types.Uint64, Source: "ranges", PrimaryKey: true},
	{Name: "start_key", Type: types.LongText, Source: "ranges"},
	{Name: "end_key", Type: types.LongText, Source: "ranges"},
	{Name: "generation", Type: types.Uint64, Source: "ranges"},
	{Name: "replicas", Type: types.LongText, Source: "ranges"},
	{Name: "leader_node_id", Type: types.Uint64, Source: "ranges", Nullable: true},
}

func (d sysDatabase) nodeRows(ctx context.Context) ([]gms.Row, error) {
	nodes, err := d.info.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]gms.Row, 0, len(nodes))
	for _, n := range nodes {
		live := int8(0)
		if n.Live {
			live = 1
		}
		rows = append(rows, gms.NewRow(n.ID, n.Name, n.SQLAddr, n.RPCAddr, n.HTTPAddr, live))
	}
	return rows, nil
}

func (d sysDatabase) rangeRows(ctx context.Context) ([]gms.Row, error) {
	ranges, err := d.info.Ranges(ctx)
	if err != nil {
		return nil, err
	}
	rows := make([]gms.Row, 0, len(ranges))
	for _, r := range ranges {
		var leader any
		if r.Leader != 0 {
			leader = r.Leader
		}
		rows = append(rows, gms.NewRow(r.RangeID, r.StartKey, r.EndKey, r.Generation, r.Replicas, leader))
	}
	return rows, nil
}

// sysTable is a read-only table whose rows are computed when it is scanned.
type sysTable struct {
	name   string
	schema gms.Schema
	rows   func(context.Context) ([]gms.Row, error)
}

var _ gms.Table = (*sysTable)(nil)

func (t *sysTable) Name() string       { return t.name }
func (t *sysTable) String() string     { return SystemDatabaseName + "." + t.name }
func (t *sysTable) Schema() gms.Schema { return t.schema }

// IsTemporary: see Table.IsTemporary.
func (t *sysTable) IsTemporary() bool          { return false }
func (t *sysTable) Collation() gms.CollationID { return gms.Collation_Default }
func (t *sysTable) Partitions(*gms.Context) (gms.PartitionIter, error) {
	return gms.PartitionsToPartitionIter(sysPartition{}), nil
}

func (t *sysTable) PartitionRows(ctx *gms.Context, _ gms.Partition) (gms.RowIter, error) {
	rows, err := t.rows(ctx)
	if err != nil {
		return nil, err
	}
	return gms.RowsToRowIter(rows...), nil
}

type sysPartition struct{}

func (sysPartition) Key() []byte { return []byte("all") }

// The system database has no views; the engine asks every database for them.
var _ gms.ViewDatabase = sysDatabase{}

func (sysDatabase) CreateView(*gms.Context, string, string, string) error {
	return gms.ErrViewsNotSupported.New(SystemDatabaseName)
}

func (sysDatabase) DropView(_ *gms.Context, name string) error {
	return gms.ErrViewDoesNotExist.New(SystemDatabaseName, name)
}

func (sysDatabase) GetViewDefinition(*gms.Context, string) (gms.ViewDefinition, bool, error) {
	return gms.ViewDefinition{}, false, nil
}

func (sysDatabase) AllViews(*gms.Context) ([]gms.ViewDefinition, error) { return nil, nil }
