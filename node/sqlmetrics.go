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
	// ok and failed are the two children of statements, looked up once
	// rather than per statement.
	ok, failed prometheus.Counter
	latency    prometheus.Histogram
}

func newSQLMetrics() *sqlMetrics {
	m := &sqlMetrics{
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
	m.ok = m.statements.WithLabelValues("ok")
	m.failed = m.statements.WithLabelValues("error")
	return m
}

func (m *sqlMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connections, m.statements, m.latency}
}

func (m *sqlMetrics) ClientConnected()    { m.connections.Inc() }
func (m *sqlMetrics) ClientDisconnected() { m.connections.Dec() }
func (m *sqlMetrics) QueryStarted()       {}

func (m *sqlMetrics) QueryCompleted(success bool, d time.Duration) {
	if success {
		m.ok.Inc()
	} else {
		m.failed.Inc()
	}
	m.latency.Observe(d.Seconds())
}
