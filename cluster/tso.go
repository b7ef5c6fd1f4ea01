package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/quorumdb/quorumdb/kv"
)

// Defaults of TSOServerConfig.
const (
	DefaultTSOWindow         = 3 * time.Second
	DefaultTSOUpdateInterval = 50 * time.Millisecond
	// MaxTimestampBatch is the most timestamps one request may ask for.
	MaxTimestampBatch = 1 << 16
	maxLogical        = 1 << kv.TimestampLogicalBits
	tsoHWMPath        = "tso/hwm"
	tsoLeaderPath     = "tso/leader"
)

// TSOServerConfig configures a TSOServer.
type TSOServerConfig struct {
	// AdvertiseAddr is the gRPC address clients dial when this server
	// leads; published at tso/leader. Required.
	AdvertiseAddr string
	// Window is how far ahead of its clock the leader persists the
	// high-water mark (DefaultTSOWindow). It is also how long the leader
	// keeps serving while etcd is unreachable.
	Window time.Duration
	// UpdateInterval is the period of clock and high-water mark updates
	// (DefaultTSOUpdateInterval).
	UpdateInterval time.Duration
	// Knobs are testing hooks; nil in production.
	Knobs *TSOTestingKnobs
}

// TSOTestingKnobs lets tests steer a TSOServer.
type TSOTestingKnobs struct {
	// Now replaces the wall clock (e.g. to make it go backwards).
	Now func() time.Time
}

// TSOServer is one candidate of the timestamp oracle. Run campaigns for the
// tso election; while it leads, GetTimestamps hands out timestamps
// physical_ms<<18|logical, strictly increasing, also across leader changes:
//
//   - every timestamp handed out is below the high-water mark persisted in
//     tso/hwm (in ms), written ahead (now+Window) by a transaction guarded by
//     the leader's election key, so a deposed leader cannot raise it;
//   - a new leader starts above the persisted mark;
//   - the leader serves only while its Leadership is Valid, which turns
//     false before etcd can expire its lease and elect another leader.
type TSOServer struct {
	c       *Client
	cfg     TSOServerConfig
	now     func() time.Time
	logger  *slog.Logger
	stopped chan struct{}

	mu       sync.Mutex
	lead     *Leadership
	physical uint64 // ms of the last handed-out timestamp
	logical  uint64 // next logical value at physical
	limit    uint64 // persisted high-water mark: physical must stay below
	hwmRev   int64  // mod revision of tso/hwm as last written by us
}

// NewTSOServer returns a TSO candidate; call Run.
func NewTSOServer(c *Client, cfg TSOServerConfig) (*TSOServer, error) {
	if cfg.AdvertiseAddr == "" {
		return nil, fmt.Errorf("cluster: TSO server: empty advertise address: %w", ErrInvalidArgument)
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultTSOWindow
	}
	if cfg.UpdateInterval <= 0 {
		cfg.UpdateInterval = DefaultTSOUpdateInterval
	}
	s := &TSOServer{c: c, cfg: cfg, now: time.Now, logger: c.logger.With("tso", cfg.AdvertiseAddr), stopped: make(chan struct{})}
	if cfg.Knobs != nil && cfg.Knobs.Now != nil {
		s.now = cfg.Knobs.Now
	}
	return s, nil
}

// Run campaigns and serves as leader until ctx ends, then resigns if it
// leads. After losing leadership it campaigns again.
func (s *TSOServer) Run(ctx context.Context) error {
	defer close(s.stopped)
	bo := newBackoff(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		lead, err := s.c.Campaign(ctx, ElectionTSO, s.cfg.AdvertiseAddr)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.logger.Warn("TSO campaign failed", "err", err)
			_ = bo.wait(ctx)
			continue
		}
		served, err := s.serveTerm(ctx, lead)
		if served {
			// A term that served resets the delay: a later loss is news.
			bo = newBackoff(50*time.Millisecond, 2*time.Second)
		}
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("TSO leadership ended", "err", err)
			_ = bo.wait(ctx)
		}
	}
	return nil
}

// serveTerm serves one term: start above the persisted mark, then keep the mark
// ahead of the clock until the leadership ends.
func (s *TSOServer) serveTerm(ctx context.Context, lead *Leadership) (served bool, err error) {
	defer func() {
		s.mu.Lock()
		s.lead = nil
		s.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), defaultRequestTimeout)
		_ = lead.Resign(rctx)
		cancel()
	}()
	if err := s.startTerm(ctx, lead); err != nil {
		return false, err
	}
	s.logger.Info("TSO leader serving")
	tick := time.NewTicker(s.cfg.UpdateInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case <-lead.Done():
			return true, lead.Err()
		case <-tick.C:
			if err := s.advance(ctx, lead); err != nil {
				return true, err
			}
		}
	}
}

// startTerm reads the persisted mark and persists a new one above it, with
// the leader address, guarded by the election key.
func (s *TSOServer) startTerm(ctx context.Context, lead *Leadership) error {
	hwmKey := s.c.key(tsoHWMPath)
	resp, err := s.c.etcd.Get(ctx, hwmKey)
	if err != nil {
		return wrapEtcdErr("TSO: read high-water mark", err)
	}
	var hwm uint64
	hwmCmp := clientv3.Compare(clientv3.CreateRevision(hwmKey), "=", 0)
	if len(resp.Kvs) == 1 {
		if hwm, err = parseUint(resp.Kvs[0].Value); err != nil {
			return fmt.Errorf("cluster: TSO high-water mark holds %q: %w", resp.Kvs[0].Value, err)
		}
		hwmCmp = clientv3.Compare(clientv3.ModRevision(hwmKey), "=", resp.Kvs[0].ModRevision)
	}
	// Everything a previous leader handed out is below hwm ms: start at
	// hwm+1 ms at least (one ms of guard against equal physical parts).
	start := max(s.wallMillis(), hwm+1)
	limit := start + uint64(s.cfg.Window/time.Millisecond)
	txn, err := s.c.etcd.Txn(ctx).If(lead.guard(), hwmCmp).Then(
		clientv3.OpPut(hwmKey, formatUint(limit)),
		clientv3.OpPut(s.c.key(tsoLeaderPath), s.cfg.AdvertiseAddr, clientv3.WithLease(lead.lease())),
	).Commit()
	if err != nil {
		return wrapEtcdErr("TSO: persist high-water mark", err)
	}
	if !txn.Succeeded {
		return fmt.Errorf("cluster: TSO: start term: guarded write refused: %w", ErrLeadershipLost)
	}
	s.mu.Lock()
	s.lead, s.physical, s.logical, s.limit = lead, start, 0, limit
	s.hwmRev = txn.Header.Revision
	s.mu.Unlock()
	return nil
}

// advance persists a new high-water mark when the current one is less than
// two thirds of a window ahead.
func (s *TSOServer) advance(ctx context.Context, lead *Leadership) error {
	s.mu.Lock()
	base := max(s.wallMillis(), s.physical)
	limit, hwmRev := s.limit, s.hwmRev
	s.mu.Unlock()
	window := uint64(s.cfg.Window / time.Millisecond)
	if limit > base && limit-base > window*2/3 {
		return nil
	}
	next := base + window
	hwmKey := s.c.key(tsoHWMPath)
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Window/3)
	txn, err := s.c.etcd.Txn(wctx).
		If(lead.guard(), clientv3.Compare(clientv3.ModRevision(hwmKey), "=", hwmRev)).
		Then(clientv3.OpPut(hwmKey, formatUint(next))).Commit()
	cancel()
	if err != nil {
		// etcd unreachable: keep serving below the old mark; requests fail
		// with ErrTSOWindowExhausted once it is used up.
		s.logger.Warn("TSO: cannot persist high-water mark", "err", err)
		return nil
	}
	if !txn.Succeeded {
		lead.end(fmt.Errorf("TSO guarded write refused: %w", ErrLeadershipLost))
		return fmt.Errorf("cluster: TSO: persist high-water mark: guarded write refused: %w", ErrLeadershipLost)
	}
	s.mu.Lock()
	if s.lead == lead {
		s.limit, s.hwmRev = next, txn.Header.Revision
	}
	s.mu.Unlock()
	return nil
}

func (s *TSOServer) wallMillis() uint64 {
	ms := s.now().UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

// GetTimestamps hands out count contiguous timestamps and returns the first:
// first, first+1, …, first+count-1 are all this caller's. It fails with
// *TSONotLeaderError unless this server is the valid leader.
func (s *TSOServer) GetTimestamps(count uint32) (kv.Timestamp, error) {
	if count == 0 || count > MaxTimestampBatch {
		return 0, fmt.Errorf("cluster: TSO: batch of %d timestamps (want 1..%d): %w", count, MaxTimestampBatch, ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Confirm leadership for every batch: a deposed leader stops at once.
	if s.lead == nil || !s.lead.Valid() {
		return 0, &TSONotLeaderError{}
	}
	if now := s.wallMillis(); now > s.physical {
		s.physical, s.logical = now, 0
	}
	if s.logical+uint64(count) > maxLogical {
		s.physical, s.logical = s.physical+1, 0
	}
	if s.physical >= s.limit {
		return 0, ErrTSOWindowExhausted
	}
	first := kv.MakeTimestamp(s.physical, s.logical)
	s.logical += uint64(count)
	return first, nil
}

// IsLeader reports whether this server currently serves timestamps.
func (s *TSOServer) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lead != nil && s.lead.Valid()
}

// Resign gives up leadership now (Run campaigns again). It returns at once
// when this server does not lead.
func (s *TSOServer) Resign(ctx context.Context) error {
	s.mu.Lock()
	lead := s.lead
	s.lead = nil
	s.mu.Unlock()
	if lead == nil {
		return nil
	}
	if err := lead.Resign(ctx); err != nil && !errors.Is(err, ErrLeadershipLost) {
		return err
	}
	return nil
}

// Stopped is closed when Run has returned.
func (s *TSOServer) Stopped() <-chan struct{} { return s.stopped }
