package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sqlMetrics receives the MySQL server's connection and statement events
// (go-mysql-server's ServerEventListener) and keeps them as Prometheus
// metrics of this node.
type sqlMetrics struct {
	connections prometheus.Gauge
	statements  *prometheus.CounterVec
	latency     prometheus.Histogram
}

func newSQLMetrics() *sqlMetrics {
	return &sqlMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumdb_sql_connections", Help: "Open MySQL client connections.",
		}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumdb_sql_statements_total", Help: "SQL statements executed, by result (ok or error).",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumdb_sql_statement_seconds",
			Help:    "Latency of SQL statements, from receipt to the last row sent.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 100 µs … ~13 s
		}),
	}
}

func (m *sqlMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connections, m.statements, m.latency}
}

func (m *sqlMetrics) ClientConnected()    { m.connections.Inc() }
func (m *sqlMetrics) ClientDisconnected() { m.connections.Dec() }
func (m *sqlMetrics) QueryStarted()       {}

func (m *sqlMetrics) QueryCompleted(success bool, d time.Duration) {
	result := "ok"
	if !success {
		result = "error"
	}
	m.statements.WithLabelValues(result).Inc()
	m.latency.Observe(d.Seconds())
}
