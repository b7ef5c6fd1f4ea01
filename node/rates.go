package node

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// rateSample is one reading of the node's counters.
type rateSample struct {
	at         time.Time
	statements float64
	commits    uint64
	aborts     uint64
	proposals  uint64
}

// Rates are the node's live rates over the last few seconds.
type Rates struct {
	StatementsPerSec float64
	CommitsPerSec    float64
	AbortsPerSec     float64
	ProposalsPerSec  float64
}

// rateTracker samples the counters once a second and keeps a short window,
// so the admin page can show live rates without client-side code.
type rateTracker struct {
	mu      sync.Mutex
	samples []rateSample // oldest first, at most rateWindow+1
}

const rateWindow = 5

func (n *Node) sampleRates() rateSample {
	s := rateSample{at: time.Now(), proposals: n.store.Metrics().Proposals}
	st := n.db.Stats()
	s.commits, s.aborts = st.Commits+st.ReadOnlyCommits, st.Aborts
	for _, c := range []prometheus.Counter{n.sqlMetrics.ok, n.sqlMetrics.failed} {
		var m dto.Metric
		if err := c.Write(&m); err == nil {
			s.statements += m.GetCounter().GetValue()
		}
	}
	return s
}

// trackRates samples until ctx ends.
func (n *Node) trackRates(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s := n.sampleRates()
		n.rates.mu.Lock()
		n.rates.samples = append(n.rates.samples, s)
		if len(n.rates.samples) > rateWindow+1 {
			n.rates.samples = n.rates.samples[1:]
		}
		n.rates.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Rates returns the rates over the sampled window (zero until two samples).
func (n *Node) Rates() Rates {
	n.rates.mu.Lock()
	defer n.rates.mu.Unlock()
	if len(n.rates.samples) < 2 {
		return Rates{}
	}
	a, b := n.rates.samples[0], n.rates.samples[len(n.rates.samples)-1]
	d := b.at.Sub(a.at).Seconds()
	if d <= 0 {
		return Rates{}
	}
	return Rates{
		StatementsPerSec: (b.statements - a.statements) / d,
		CommitsPerSec:    float64(b.commits-a.commits) / d,
		AbortsPerSec:     float64(b.aborts-a.aborts) / d,
		ProposalsPerSec:  float64(b.proposals-a.proposals) / d,
	}
}
