package node

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
)

// httpHandler serves the node's HTTP endpoints:
//
//	/health        200 while the process runs
//	/ready         200 when the node can serve SQL, 503 otherwise
//	/metrics       Prometheus metrics of this node
//	/api/nodes     the cluster's nodes (JSON)
//	/api/ranges    the cluster's ranges with this node's view of them (JSON)
//	/debug/pprof/  Go's profiler
//	/              the admin page
func (n *Node) httpHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(&nodeCollector{n: n})
	reg.MustRegister(n.sqlMetrics.collectors()...)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if err := n.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/nodes", func(w http.ResponseWriter, r *http.Request) {
		nodes, err := n.ClusterNodes(r.Context())
		writeJSON(w, nodes, err)
	})
	mux.HandleFunc("GET /api/ranges", func(w http.ResponseWriter, r *http.Request) {
		ranges, err := n.ClusterRanges(r.Context())
		writeJSON(w, ranges, err)
	})
	mux.HandleFunc("GET /{$}", n.serveAdminPage)
	// Go's profiler, for diagnosing a live node (CPU, heap, goroutines).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// NodeStatus is one node as the admin API lists it.
type NodeStatus struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name"`
	SQLAddr  string `json:"sql_addr"`
	RPCAddr  string `json:"rpc_addr"`
	HTTPAddr string `json:"http_addr"`
	Live     bool   `json:"live"`
}

// ClusterNodes lists every node ever registered, with its liveness.
func (n *Node) ClusterNodes(ctx context.Context) ([]NodeStatus, error) {
	return ListNodes(ctx, n.client)
}

// ListNodes lists every node ever registered in c's cluster, with its
// liveness, ordered by ID.
func ListNodes(ctx context.Context, c *cluster.Client) ([]NodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	known, err := c.ListKnownNodes(ctx)
	if err != nil {
		return nil, err
	}
	live, err := c.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	isLive := make(map[uint64]bool, len(live))
	for _, l := range live {
		isLive[l.ID] = true
	}
	out := make([]NodeStatus, 0, len(known))
	for _, k := range known {
		out = append(out, NodeStatus{ID: k.ID, Name: k.Name, SQLAddr: k.SQLAddr, RPCAddr: k.RPCAddr, HTTPAddr: k.HTTPAddr, Live: isLive[k.ID]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// RangeStatus is one range as the admin API lists it.
type RangeStatus struct {
	RangeID    uint64                 `json:"range_id"`
	StartKey   string                 `json:"start_key"`
	EndKey     string                 `json:"end_key"`
	Generation uint64                 `json:"generation"`
	Replicas   []kv.ReplicaDescriptor `json:"replicas"`
	// Leader is this node's view (0: unknown here); LocalReplica says
	// whether this node hosts a replica.
	Leader       uint64 `json:"leader"`
	LocalReplica bool   `json:"local_replica"`
	Applied      uint64 `json:"applied_index,omitempty"`
	// ClosedTS is the local replica's closed timestamp: AS OF reads at or
	// below it are served by this node (0: nothing closed here).
	ClosedTS uint64 `json:"closed_ts,omitempty"`
}

// ClosedLag is how far the local closed timestamp is behind now, for the
// admin page ("-" when nothing is closed here).
func (r RangeStatus) ClosedLag() string {
	if r.ClosedTS == 0 {
		return "-"
	}
	return time.Since(time.UnixMilli(int64(kv.PhysicalMillis(r.ClosedTS)))).Round(100 * time.Millisecond).String()
}

// ClusterRanges lists the ranges of the cluster's directory, with what this
// node knows of their leaders.
func (n *Node) ClusterRanges(ctx context.Context) ([]RangeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	descs, err := n.client.ListRanges(ctx)
	if err != nil {
		return nil, err
	}
	local := map[uint64]RangeStatus{}
	for _, info := range n.store.RangeInfo() {
		local[info.RangeID] = RangeStatus{Leader: info.LeaderNodeID, LocalReplica: true, Applied: info.Applied, ClosedTS: info.ClosedTS}
	}
	out := make([]RangeStatus, 0, len(descs))
	for _, d := range descs {
		rs := local[d.RangeID]
		rs.setDescriptor(d)
		out = append(out, rs)
	}
	return out, nil
}

var adminPage = template.Must(template.New("admin").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>QuorumDB {{.Name}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.down{color:#b00}</style>
</head><body>
<h1>QuorumDB node {{.Name}} (ID {{.ID}})</h1>
<p>SQL <code>mysql -h {{.SQLHost}} -P {{.SQLPort}} -u root</code> · RPC {{.RPCAddr}} · <a href="/metrics">metrics</a> · <a href="/api/nodes">nodes JSON</a> · <a href="/api/ranges">ranges JSON</a></p>
<p>Ready: {{if .ReadyErr}}<span class="down">no ({{.ReadyErr}})</span>{{else}}yes{{end}} · this page refreshes every 2 s</p>
<h2>Live rates (this node, last 5 s)</h2>
<table id="rates"><tr><th>SQL statements/s</th><td>{{printf "%.1f" .Rates.StatementsPerSec}}</td></tr>
<tr><th>transactions committed/s</th><td>{{printf "%.1f" .Rates.CommitsPerSec}}</td></tr>
<tr><th>serialization aborts/s</th><td>{{printf "%.1f" .Rates.AbortsPerSec}}</td></tr>
<tr><th>Raft proposals/s</th><td>{{printf "%.1f" .Rates.ProposalsPerSec}}</td></tr></table>
<h2>Nodes</h2>
{{if .NodesErr}}<p class="down">{{.NodesErr}}</p>{{end}}
<table id="nodes"><tr><th>ID</th><th>name</th><th>SQL</th><th>RPC</th><th>HTTP</th><th>live</th></tr>
{{range .Nodes}}<tr><td>{{.ID}}</td><td>{{.Name}}</td><td>{{.SQLAddr}}</td><td>{{.RPCAddr}}</td><td>{{if .HTTPAddr}}<a href="http://{{.HTTPAddr}}/">{{.HTTPAddr}}</a>{{end}}</td><td>{{if .Live}}yes{{else}}<span class="down">no</span>{{end}}</td></tr>
{{end}}</table>
<h2>Ranges</h2>
{{if .RangesErr}}<p class="down">{{.RangesErr}}</p>{{end}}
<table id="ranges"><tr><th>range</th><th>start</th><th>end</th><th>gen</th><th>replicas (node/replica)</th><th>leader (this node's view)</th><th>closed here (behind now)</th></tr>
{{range .Ranges}}<tr><td>{{.RangeID}}</td><td><code>{{.StartKey}}</code></td><td><code>{{.EndKey}}</code></td><td>{{.Generation}}</td><td>{{range .Replicas}}n{{.NodeID}}/{{.ReplicaID}}{{if eq .Type 1}} (learner){{end}} {{end}}</td><td>{{if .Leader}}n{{.Leader}}{{else}}?{{end}}</td><td>{{.ClosedLag}}</td></tr>
{{end}}</table>
<h2>Store</h2>
<table id="store">{{range .Store}}<tr><th>{{.K}}</th><td>{{.V}}</td></tr>{{end}}</table>
</body></html>`))

func (n *Node) serveAdminPage(w http.ResponseWriter, r *http.Request) {
	type kvRow struct {
		K string
		V any
	}
	m := n.store.Metrics()
	data := struct {
		Name, RPCAddr, SQLHost, SQLPort string
		ID                              uint64
		ReadyErr, NodesErr, RangesErr   string
		Nodes                           []NodeStatus
		Ranges                          []RangeStatus
		Store                           []kvRow
		Rates                           Rates
	}{Name: n.cfg.Name, ID: n.id, RPCAddr: n.RPCAddr(), Rates: n.Rates()}
	if host, port, err := splitHostPort(n.SQLAddr()); err == nil {
		data.SQLHost, data.SQLPort = host, port
	}
	if err := n.Ready(r.Context()); err != nil {
		data.ReadyErr = err.Error()
	}
	var err error
	if data.Nodes, err = n.ClusterNodes(r.Context()); err != nil {
		data.NodesErr = err.Error()
	}
	if data.Ranges, err = n.ClusterRanges(r.Context()); err != nil {
		data.RangesErr = err.Error()
	}
	data.Store = []kvRow{
		{"replicas", m.Replicas}, {"leaders", m.Leaders}, {"quiesced", m.Quiesced},
		{"proposals", m.Proposals}, {"entries applied", m.Commits}, {"linearizable reads", m.Reads},
		{"closed-timestamp (follower) reads", m.ClosedReads}, {"timestamps closed", m.Closes},
		{"log fsyncs", m.Fsyncs}, {"fsync p50", m.FsyncLatency.Quantile(0.5)}, {"fsync p99", m.FsyncLatency.Quantile(0.99)},
		{"snapshots sent", m.SnapshotsSent}, {"snapshots applied", m.SnapshotsApplied},
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := adminPage.Execute(w, data); err != nil {
		n.log.Warn("render admin page", "err", err)
	}
}

// nodeCollector exports the store's counters at scrape time.
type nodeCollector struct{ n *Node }

var (
	descProposals   = prometheus.NewDesc("quorumdb_raft_proposals_total", "Commands proposed to Raft by this node.", nil, nil)
	descCommits     = prometheus.NewDesc("quorumdb_raft_entries_applied_total", "Raft entries applied on this node (all ranges).", nil, nil)
	descApplies     = prometheus.NewDesc("quorumdb_raft_proposals_applied_total", "Proposals of this node answered after apply.", nil, nil)
	descReads       = prometheus.NewDesc("quorumdb_raft_linearizable_reads_total", "Reads served after ReadIndex.", nil, nil)
	descClosedReads = prometheus.NewDesc("quorumdb_raft_closed_timestamp_reads_total", "Reads served at a closed timestamp from this node's own replica state, without ReadIndex (follower reads, and stale reads on leaders).", nil, nil)
	descCloses      = prometheus.NewDesc("quorumdb_raft_timestamps_closed_total", "Close-timestamp entries proposed by the ranges this node leads.", nil, nil)
	descNearest     = prometheus.NewDesc("quorumdb_follower_reads_total", "AS OF reads this node's router sent to its own replica, by result (served there, or forwarded to the leader).", []string{"result"}, nil)
	descTransport   = prometheus.NewDesc("quorumdb_transport_events_total", "Raft transport events: messages sent, received and dropped, liveness probes answered, peers torn down as unresponsive.", []string{"event"}, nil)
	descFsync       = prometheus.NewDesc("quorumdb_raft_log_fsync_seconds", "Latency of the synced Raft log batches (one per scheduler round).", nil, nil)
	descLeaders     = prometheus.NewDesc("quorumdb_ranges_led", "Ranges this node leads.", nil, nil)
	descReplicas    = prometheus.NewDesc("quorumdb_replicas", "Replicas hosted on this node.", nil, nil)
	descQuiesced    = prometheus.NewDesc("quorumdb_replicas_quiesced", "Replicas not ticking because their group is idle.", nil, nil)
	descSnapSent    = prometheus.NewDesc("quorumdb_raft_snapshots_sent_total", "Raft snapshots sent.", nil, nil)
	descSnapApply   = prometheus.NewDesc("quorumdb_raft_snapshots_applied_total", "Raft snapshots applied.", nil, nil)
	descDropped     = prometheus.NewDesc("quorumdb_raft_messages_dropped_total", "Incoming Raft messages dropped on a full inbox.", nil, nil)
	descReady       = prometheus.NewDesc("quorumdb_node_ready", "1 when the node can serve SQL.", nil, nil)
	descTxns        = prometheus.NewDesc("quorumdb_txn_total", "Transactions coordinated by this node, by outcome (commit, read_only_commit, abort = retryable conflict, failure, rollback).", []string{"outcome"}, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProposals, descCommits, descApplies, descReads, descClosedReads, descCloses, descNearest, descTransport, descFsync, descLeaders, descReplicas, descQuiesced, descSnapSent, descSnapApply, descDropped, descReady, descTxns} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.n.store.Metrics()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descProposals, m.Proposals)
	counter(descCommits, m.Commits)
	counter(descApplies, m.Applies)
	counter(descReads, m.Reads)
	counter(descClosedReads, m.ClosedReads)
	counter(descCloses, m.Closes)
	tst := c.n.trans.Stats()
	for _, e := range []struct {
		event string
		v     uint64
	}{{"message_sent", tst.MessagesSent}, {"message_received", tst.MessagesReceived}, {"message_dropped", tst.MessagesDropped},
		{"probe_answered", tst.ProbesAnswered}, {"peer_unresponsive", tst.PeersUnresponsive}} {
		ch <- prometheus.MustNewConstMetric(descTransport, prometheus.CounterValue, float64(e.v), e.event)
	}
	rs := c.n.router.Stats()
	ch <- prometheus.MustNewConstMetric(descNearest, prometheus.CounterValue, float64(rs.NearestServed), "local")
	ch <- prometheus.MustNewConstMetric(descNearest, prometheus.CounterValue, float64(rs.NearestForwarded), "forwarded")
	counter(descSnapSent, m.SnapshotsSent)
	counter(descSnapApply, m.SnapshotsApplied)
	counter(descDropped, m.DroppedMessages)
	gauge(descLeaders, float64(m.Leaders))
	gauge(descReplicas, float64(m.Replicas))
	gauge(descQuiesced, float64(m.Quiesced))
	ready := 0.0
	if c.n.Ready(context.Background()) == nil {
		ready = 1
	}
	gauge(descReady, ready)
	ts := c.n.db.Stats()
	for _, o := range []struct {
		outcome string
		v       uint64
	}{{"commit", ts.Commits}, {"read_only_commit", ts.ReadOnlyCommits}, {"abort", ts.Aborts}, {"failure", ts.Failures}, {"rollback", ts.Rollbacks}} {
		ch <- prometheus.MustNewConstMetric(descTxns, prometheus.CounterValue, float64(o.v), o.outcome)
	}

	// The store's histogram has power-of-two microsecond buckets: bucket i
	// holds [2^(i-1), 2^i) µs.
	buckets := make(map[float64]uint64, len(m.FsyncLatency.Buckets))
	var cum uint64
	for i, cnt := range m.FsyncLatency.Buckets {
		cum += cnt
		buckets[math.Ldexp(1, i)/1e6] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descFsync, m.FsyncLatency.Count, m.FsyncLatency.Sum.Seconds(), buckets)
}
