package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Elections this package and its users run.
const (
	// ElectionTSO elects the timestamp oracle leader.
	ElectionTSO = "tso"
	// ElectionPlacementDriver elects the placement driver.
	ElectionPlacementDriver = "pd"
)

// Leadership is the position of an elected leader: it holds until Done is
// closed. It ends when the leader resigns, when its lease cannot be renewed
// within its TTL, or when its election key disappears.
//
// Valid is the fencing check for work that must never be done by two leaders
// at once (the TSO handing out timestamps): it is true only while the lease is
// known to be alive, judged from the time each renewal was *sent*, so it turns
// false before etcd can expire the lease and elect someone else.
type Leadership struct {
	c         *Client
	election  string
	candidate string
	session   *concurrency.Session
	elect     *concurrency.Election
	key       string
	rev       int64
	ttl       time.Duration

	mu         sync.Mutex
	validUntil time.Time
	ended      bool
	endErr     error

	done   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	resignOnce sync.Once
	resignErr  error
}

// Campaign blocks until candidate leads election (a name such as
// ElectionPlacementDriver; the etcd prefix is <election>/election) or ctx
// ends. The leadership lasts until Done is closed; call Resign to give it up.
func (c *Client) Campaign(ctx context.Context, election, candidate string) (*Leadership, error) {
	if err := validateName("election", election); err != nil {
		return nil, err
	}
	grantSent := time.Now()
	grant, err := c.etcd.Grant(ctx, c.leaseTTLSeconds())
	if err != nil {
		return nil, wrapEtcdErr(fmt.Sprintf("campaign %s: grant lease", election), err)
	}
	session, err := concurrency.NewSession(c.etcd, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(grant.TTL)))
	if err != nil {
		c.revokeQuietly(grant.ID)
		return nil, wrapEtcdErr(fmt.Sprintf("campaign %s: session", election), err)
	}
	elect := concurrency.NewElection(session, c.key(election+"/election"))
	if err := elect.Campaign(ctx, candidate); err != nil {
		_ = closeSession(session)
		return nil, wrapEtcdErr(fmt.Sprintf("campaign %s", election), err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Leadership{
		c:         c,
		election:  election,
		candidate: candidate,
		session:   session,
		elect:     elect,
		key:       elect.Key(),
		rev:       elect.Rev(),
		ttl:       time.Duration(grant.TTL) * time.Second,
		done:      make(chan struct{}),
		cancel:    cancel,
	}
	// The session renews the lease; renewals we time ourselves decide
	// validity. Until the first one, the grant bounds it.
	l.validUntil = grantSent.Add(l.safeTTL(l.ttl))
	l.renewOnce(lctx)
	l.wg.Add(2)
	go l.renewLoop(lctx)
	go l.watchKey(lctx)
	c.logger.Info("won election", "election", election, "candidate", candidate, "key", l.key)
	return l, nil
}

// safeTTL leaves a margin for clock rate differences between this process
// and etcd.
func (l *Leadership) safeTTL(ttl time.Duration) time.Duration {
	return ttl - ttl/10
}

// renewOnce renews the lease and, on success, extends validity to the send
// time plus the TTL etcd granted.
func (l *Leadership) renewOnce(ctx context.Context) {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
	resp, err := l.c.etcd.KeepAliveOnce(rctx, l.session.Lease())
	cancel()
	switch {
	case err == nil:
		l.mu.Lock()
		if until := sent.Add(l.safeTTL(time.Duration(resp.TTL) * time.Second)); until.After(l.validUntil) {
			l.validUntil = until
		}
		l.mu.Unlock()
	case isLeaseNotFound(err):
		l.end(fmt.Errorf("lease expired: %w", ErrLeadershipLost))
	}
}

func (l *Leadership) renewLoop(ctx context.Context) {
	defer l.wg.Done()
	tick := time.NewTicker(l.ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.session.Done():
			l.end(fmt.Errorf("session ended: %w", ErrLeadershipLost))
			return
		case <-tick.C:
			l.renewOnce(ctx)
			if !l.Valid() {
				l.end(fmt.Errorf("lease not renewed within its TTL: %w", ErrLeadershipLost))
				return
			}
		}
	}
}

// watchKey ends the leadership when the election key is deleted.
func (l *Leadership) watchKey(ctx context.Context) {
	defer l.wg.Done()
	for ctx.Err() == nil {
		resp, err := l.c.etcd.Get(ctx, l.key)
		if err == nil {
			if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.rev {
				l.end(fmt.Errorf("election key deleted: %w", ErrLeadershipLost))
				return
			}
			wch := l.c.etcd.Watch(ctx, l.key, clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				for _, ev := range wr.Events {
					if ev.Type == mvccpb.DELETE {
						l.end(fmt.Errorf("election key deleted: %w", ErrLeadershipLost))
						return
					}
				}
				if wr.Err() != nil {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// end marks the leadership over (once) and revokes its lease in the
// background so the next leader is elected without waiting for expiry.
func (l *Leadership) end(err error) {
	l.mu.Lock()
	if l.ended {
		l.mu.Unlock()
		return
	}
	l.ended, l.endErr = true, err
	l.mu.Unlock()
	close(l.done)
	l.c.logger.Warn("leadership ended", "election", l.election, "candidate", l.candidate, "reason", err)
	go func() {
		l.cancel()
		_ = closeSession(l.session)
	}()
}

// Valid reports whether this process may still act as the leader: the
// leadership has not ended and the lease is known to be alive now.
func (l *Leadership) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.ended && time.Now().Before(l.validUntil)
}

// Done is closed when the leadership ends.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Err says why the leadership ended (nil while it holds). It wraps
// ErrLeadershipLost.
func (l *Leadership) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.endErr
}

// Candidate returns the value this leader campaigned with.
func (l *Leadership) Candidate() string { return l.candidate }

// Resign ends the leadership at once and deletes the election key so another
// candidate takes over without waiting for the lease to expire.
func (l *Leadership) Resign(ctx context.Context) error {
	l.mu.Lock()
	already := l.ended
	l.ended = true
	if l.endErr == nil {
		l.endErr = fmt.Errorf("resigned: %w", ErrLeadershipLost)
	}
	l.mu.Unlock()
	if !already {
		close(l.done)
	}
	// concurrency.Election is not safe for concurrent use: resign once.
	l.resignOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		err := l.elect.Resign(ctx)
		if cerr := closeSession(l.session); err == nil && cerr != nil && !isLeaseNotFound(cerr) {
			err = cerr
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			l.resignErr = wrapEtcdErr(fmt.Sprintf("resign %s", l.election), err)
		}
	})
	return l.resignErr
}

// guard is the transaction condition "this leadership still holds": the
// election key exists with the create revision it had when won.
func (l *Leadership) guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}

// lease is the session's lease, for keys that must vanish with the leader.
func (l *Leadership) lease() clientv3.LeaseID { return l.session.Lease() }

// Leader returns the candidate value of the current leader of election.
func (c *Client) Leader(ctx context.Context, election string) (string, error) {
	resp, err := c.etcd.Get(ctx, c.key(election+"/election/"), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", wrapEtcdErr(fmt.Sprintf("leader of %s", election), err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("cluster: election %s has no leader: %w", election, concurrency.ErrElectionNoLeader)
	}
	return string(resp.Kvs[0].Value), nil
}

func closeSession(s *concurrency.Session) error {
	return s.Close()
}

func (c *Client) revokeQuietly(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultRequestTimeout)
	defer cancel()
	_, _ = c.etcd.Revoke(ctx, id)
}
