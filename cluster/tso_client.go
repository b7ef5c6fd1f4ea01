package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/quorumdb/quorumdb/kv"
)

// Defaults of TSOClientConfig.
const (
	DefaultTSOMaxWait    = 10 * time.Second
	DefaultTSORPCTimeout = 2 * time.Second
)

// TSOClientConfig configures a TSOClient.
type TSOClientConfig struct {
	// MaxWait bounds how long one batch keeps retrying (no leader, leader
	// change, unreachable leader) before failing with *TSOUnavailableError.
	MaxWait time.Duration
	// RPCTimeout bounds one attempt.
	RPCTimeout time.Duration
	// MaxBatch caps the timestamps fetched by one RPC (MaxTimestampBatch).
	MaxBatch uint32
	// DialOptions replace the default (plaintext) dial options.
	DialOptions []grpc.DialOption
}

// TSOClientStats counts what a TSOClient did.
type TSOClientStats struct {
	// Requests is the number of GetTimestamp calls answered.
	Requests uint64
	// RPCs is the number of GetTimestamps RPCs sent (successful or not).
	RPCs uint64
}

// TSOClient takes timestamps from the TSO leader found through etcd. All
// concurrent GetTimestamp calls that arrive while an RPC is in flight share
// the next RPC, which asks for a contiguous block of that many timestamps.
type TSOClient struct {
	c       *Client
	cfg     TSOClientConfig
	reqs    chan *tsoRequest
	closing <-chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu         sync.Mutex
	leaderAddr string
	changed    chan struct{} // closed and replaced when leaderAddr changes
	conns      map[string]*grpc.ClientConn

	requests atomic.Uint64
	rpcs     atomic.Uint64
}

type tsoRequest struct {
	ctx context.Context
	res chan tsoResult
}

type tsoResult struct {
	ts  kv.Timestamp
	err error
}

// NewTSOClient starts following the TSO leader and the batching loop.
func NewTSOClient(c *Client, cfg TSOClientConfig) *TSOClient {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultTSOMaxWait
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = DefaultTSORPCTimeout
	}
	if cfg.MaxBatch == 0 || cfg.MaxBatch > MaxTimestampBatch {
		cfg.MaxBatch = MaxTimestampBatch
	}
	if cfg.DialOptions == nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TSOClient{
		c:       c,
		cfg:     cfg,
		reqs:    make(chan *tsoRequest, 4096),
		closing: ctx.Done(),
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   map[string]*grpc.ClientConn{},
	}
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		c.followPrefix(ctx, c.key(tsoLeaderPath), func(ev prefixEvent) {
			if ev.Key != "" {
				return
			}
			addr := string(ev.Value)
			if ev.Deleted {
				addr = ""
			}
			t.setLeader(addr)
		}, nil)
	}()
	go func() {
		defer t.wg.Done()
		t.dispatch(ctx)
	}()
	return t
}

func (t *TSOClient) setLeader(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if addr == t.leaderAddr {
		return
	}
	t.leaderAddr = addr
	close(t.changed)
	t.changed = make(chan struct{})
	for a, conn := range t.conns {
		if a != addr {
			_ = conn.Close()
			delete(t.conns, a)
		}
	}
}

func (t *TSOClient) leader() (string, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leaderAddr, t.changed
}

func (t *TSOClient) conn(addr string) (*grpc.ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if conn, ok := t.conns[addr]; ok {
		return conn, nil
	}
	conn, err := grpc.NewClient(addr, t.cfg.DialOptions...)
	if err != nil {
		return nil, fmt.Errorf("cluster: TSO: dial %s: %w", addr, err)
	}
	t.conns[addr] = conn
	return conn, nil
}

// GetTimestamp returns a timestamp larger than every timestamp any client
// obtained before this call started.
func (t *TSOClient) GetTimestamp(ctx context.Context) (kv.Timestamp, error) {
	req := &tsoRequest{ctx: ctx, res: make(chan tsoResult, 1)}
	select {
	case t.reqs <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: get timestamp: %w", ctx.Err())
	case <-t.closing:
		return 0, fmt.Errorf("cluster: get timestamp: TSO client: %w", ErrClosed)
	}
	select {
	case r := <-req.res:
		return r.ts, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("cluster: get timestamp: %w", ctx.Err())
	case <-t.closing:
		return 0, fmt.Errorf("cluster: get timestamp: TSO client: %w", ErrClosed)
	}
}

// dispatch takes the requests queued while the previous RPC was in flight
// and serves them with one RPC.
func (t *TSOClient) dispatch(ctx context.Context) {
	batch := make([]*tsoRequest, 0, 64)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			t.failQueued(fmt.Errorf("cluster: TSO client: %w", ErrClosed))
			return
		case r := <-t.reqs:
			batch = append(batch, r)
		}
	drain:
		for uint32(len(batch)) < t.cfg.MaxBatch {
			select {
			case r := <-t.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		first, err := t.fetch(ctx, batch)
		for i, r := range batch {
			if err != nil {
				r.res <- tsoResult{err: err}
			} else {
				r.res <- tsoResult{ts: first + kv.Timestamp(i)}
			}
		}
		if err == nil {
			t.requests.Add(uint64(len(batch)))
		}
	}
}

func (t *TSOClient) failQueued(err error) {
	for {
		select {
		case r := <-t.reqs:
			r.res <- tsoResult{err: err}
		default:
			return
		}
	}
}

// fetch gets len(batch) timestamps, retrying across leader changes for at
// most MaxWait.
func (t *TSOClient) fetch(ctx context.Context, batch []*tsoRequest) (kv.Timestamp, error) {
	start := time.Now()
	deadline := start.Add(t.cfg.MaxWait)
	bo := newBackoff(10*time.Millisecond, 250*time.Millisecond)
	var last error
	for {
		addr, changed := t.leader()
		if addr == "" {
			last = fmt.Errorf("no TSO leader published in etcd")
		} else {
			ts, err := t.call(ctx, addr, uint32(len(batch)), deadline)
			if err == nil {
				return ts, nil
			}
			// An attempt cut short by the overall deadline says less than
			// the failure before it.
			if last == nil || status.Code(err) != codes.DeadlineExceeded || time.Now().Before(deadline) {
				last = fmt.Errorf("TSO leader %s: %w", addr, err)
			}
			if status.Code(err) == codes.InvalidArgument {
				return 0, fmt.Errorf("cluster: TSO at %s: %w", addr, err)
			}
		}
		if allCanceled(batch) {
			return 0, fmt.Errorf("cluster: get timestamp: %w", context.Canceled)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return 0, &TSOUnavailableError{Waited: time.Since(start).Round(time.Millisecond).String(), Last: last}
		}
		wait := min(bo.next, remaining)
		bo.next = min(2*bo.next, bo.max)
		timer := time.NewTimer(wait)
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return 0, fmt.Errorf("cluster: TSO client: %w", ErrClosed)
		}
		timer.Stop()
	}
}

func (t *TSOClient) call(ctx context.Context, addr string, n uint32, deadline time.Time) (kv.Timestamp, error) {
	conn, err := t.conn(addr)
	if err != nil {
		return 0, err
	}
	if d := time.Now().Add(t.cfg.RPCTimeout); d.Before(deadline) {
		deadline = d
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	t.rpcs.Add(1)
	return callGetTimestamps(rctx, conn, n)
}

func allCanceled(batch []*tsoRequest) bool {
	for _, r := range batch {
		if r.ctx.Err() == nil {
			return false
		}
	}
	return true
}

// Stats returns counters of calls and RPCs.
func (t *TSOClient) Stats() TSOClientStats {
	return TSOClientStats{Requests: t.requests.Load(), RPCs: t.rpcs.Load()}
}

// Leader returns the TSO leader address this client currently uses.
func (t *TSOClient) Leader() string {
	addr, _ := t.leader()
	return addr
}

// Close stops the client; pending and later calls fail with ErrClosed.
func (t *TSOClient) Close() {
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, conn := range t.conns {
		_ = conn.Close()
		delete(t.conns, a)
	}
}
