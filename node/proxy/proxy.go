package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Policy chooses among healthy backends.
type Policy string

const (
	// RoundRobin cycles through healthy backends.
	RoundRobin Policy = "round-robin"
	// LeastConnections picks the healthy backend with the fewest open
	// proxied connections (ties broken round-robin).
	LeastConnections Policy = "least-connections"
)

// Backend is one QuorumDB node behind the proxy.
type Backend struct {
	// Name identifies the backend in logs and status.
	Name string
	// SQLAddr is the node's MySQL address (host:port).
	SQLAddr string
	// HTTPAddr is the node's admin address; when set, /ready must answer 200.
	HTTPAddr string
}

// Config configures a Proxy.
type Config struct {
	// ListenAddr is where clients connect (host:port; port 0 picks one).
	ListenAddr string
	Backends   []Backend
	Policy     Policy
	// CheckInterval is the time between health checks (default 1 s).
	CheckInterval time.Duration
	// CheckTimeout bounds one check (default: CheckInterval/2).
	CheckTimeout time.Duration
	// DialTimeout bounds connecting to a backend for a client (default 2 s).
	DialTimeout time.Duration
	// User and Password are used for the MySQL ping (default root, no password).
	User, Password string
	Logger         *slog.Logger
}

// BackendStatus is a snapshot of one backend's state.
type BackendStatus struct {
	Backend
	Healthy     bool
	ActiveConns int64
	TotalConns  uint64
	LastError   string
	LastCheck   time.Time
}

type backendState struct {
	Backend
	healthy   atomic.Bool
	active    atomic.Int64
	total     atomic.Uint64
	mu        sync.Mutex
	lastError string
	lastCheck time.Time
	pinger    *sql.DB
}

// Proxy forwards MySQL connections to healthy backends.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	backends []*backendState
	next     atomic.Uint64
	http     *http.Client

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	cancel context.CancelFunc
	// checked is closed after the first round of health checks, so Serve
	// never routes on an unknown state.
	checked chan struct{}
}

// New validates cfg, binds the listening socket and returns a proxy that is
// not yet serving.
func New(cfg Config) (*Proxy, error) {
	if len(cfg.Backends) == 0 {
		return nil, errors.New("proxy: no backends configured")
	}
	switch cfg.Policy {
	case "":
		cfg.Policy = RoundRobin
	case RoundRobin, LeastConnections:
	default:
		return nil, fmt.Errorf("proxy: unknown policy %q (want %q or %q)", cfg.Policy, RoundRobin, LeastConnections)
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = cfg.CheckInterval / 2
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	if cfg.User == "" {
		cfg.User = "root"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on %s: %w", cfg.ListenAddr, err)
	}
	p := &Proxy{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "proxy"),
		ln:      ln,
		http:    &http.Client{Timeout: cfg.CheckTimeout},
		conns:   make(map[net.Conn]struct{}),
		checked: make(chan struct{}),
	}
	for _, b := range cfg.Backends {
		mc := mysql.NewConfig()
		mc.User = cfg.User
		mc.Passwd = cfg.Password
		mc.Net = "tcp"
		mc.Addr = b.SQLAddr
		mc.Timeout = cfg.CheckTimeout
		mc.ReadTimeout = cfg.CheckTimeout
		mc.WriteTimeout = cfg.CheckTimeout
		connector, err := mysql.NewConnector(mc)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("proxy: backend %s: %w", b.Name, err)
		}
		db := sql.OpenDB(connector)
		// A fresh connection per check: a pooled one could pass while the
		// node no longer accepts new clients.
		db.SetMaxIdleConns(0)
		p.backends = append(p.backends, &backendState{Backend: b, pinger: db})
	}
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Serve runs health checks and accepts connections until ctx ends or Close
// is called. It returns nil after a clean stop.
func (p *Proxy) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	defer cancel()

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.checkLoop(ctx)
	}()
	go func() {
		<-ctx.Done()
		p.ln.Close()
	}()
	select {
	case <-p.checked:
	case <-ctx.Done():
		return nil
	}
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		if !p.track(c) {
			c.Close()
			return nil
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.forward(ctx, c)
		}()
	}
}

// Close stops accepting, closes every proxied connection and waits for the
// health checker and forwarders to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.cancel != nil {
		p.cancel()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
	for _, b := range p.backends {
		b.pinger.Close()
	}
	return nil
}

// Status returns the current state of every backend.
func (p *Proxy) Status() []BackendStatus {
	out := make([]BackendStatus, 0, len(p.backends))
	for _, b := range p.backends {
		b.mu.Lock()
		out = append(out, BackendStatus{
			Backend:     b.Backend,
			Healthy:     b.healthy.Load(),
			ActiveConns: b.active.Load(),
			TotalConns:  b.total.Load(),
			LastError:   b.lastError,
			LastCheck:   b.lastCheck,
		})
		b.mu.Unlock()
	}
	return out
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// forward connects client to a healthy backend and copies bytes both ways
// until either side closes.
func (p *Proxy) forward(ctx context.Context, client net.Conn) {
	b, server, err := p.dialHealthy(ctx)
	if err != nil {
		p.log.Warn("no backend for client", "client", client.RemoteAddr().String(), "err", err)
		return
	}
	defer b.active.Add(-1)
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.untrack(server)

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other direction can drain, then let the
		// deferred closes end both.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	// One side finished: close both so the other copy ends too.
	client.Close()
	server.Close()
	<-done
}

// dialHealthy picks backends by policy and dials them, marking a backend
// down when the dial fails, until one answers or every healthy one failed.
func (p *Proxy) dialHealthy(ctx context.Context) (*backendState, net.Conn, error) {
	tried := make(map[*backendState]bool)
	for {
		b := p.pick(tried)
		if b == nil {
			return nil, nil, errors.New("proxy: no healthy backend")
		}
		tried[b] = true
		b.active.Add(1)
		d := net.Dialer{Timeout: p.cfg.DialTimeout}
		c, err := d.DialContext(ctx, "tcp", b.SQLAddr)
		if err == nil {
			b.total.Add(1)
			return b, c, nil
		}
		b.active.Add(-1)
		p.markDown(b, fmt.Errorf("dial: %w", err))
	}
}

// pick returns a healthy backend not in skip, or nil.
func (p *Proxy) pick(skip map[*backendState]bool) *backendState {
	n := len(p.backends)
	start := int(p.next.Add(1) % uint64(n))
	var best *backendState
	for i := 0; i < n; i++ {
		b := p.backends[(start+i)%n]
		if skip[b] || !b.healthy.Load() {
			continue
		}
		if p.cfg.Policy == RoundRobin {
			return b
		}
		if best == nil || b.active.Load() < best.active.Load() {
			best = b
		}
	}
	return best
}

func (p *Proxy) markDown(b *backendState, err error) {
	if b.healthy.Swap(false) {
		p.log.Warn("backend down", "backend", b.Name, "addr", b.SQLAddr, "err", err)
	}
	b.mu.Lock()
	b.lastError = err.Error()
	b.mu.Unlock()
}

func (p *Proxy) checkLoop(ctx context.Context) {
	first := true
	t := time.NewTicker(p.cfg.CheckInterval)
	defer t.Stop()
	for {
		p.checkAll(ctx)
		if first {
			close(p.checked)
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkAll checks every backend concurrently and waits for all checks.
func (p *Proxy) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range p.backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.check(ctx, b)
			b.mu.Lock()
			b.lastCheck = time.Now()
			b.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					p.markDown(b, err)
				}
				return
			}
			if !b.healthy.Swap(true) {
				p.log.Info("backend up", "backend", b.Name, "addr", b.SQLAddr)
			}
			b.mu.Lock()
			b.lastError = ""
			b.mu.Unlock()
		}()
	}
	wg.Wait()
}

// check runs one health check: a MySQL ping on a new connection and, when
// configured, GET /ready.
func (p *Proxy) check(ctx context.Context, b *backendState) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CheckTimeout)
	defer cancel()
	if err := b.pinger.PingContext(ctx); err != nil {
		return fmt.Errorf("mysql ping: %w", err)
	}
	if b.HTTPAddr == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.HTTPAddr+"/ready", nil)
	if err != nil {
		return fmt.Errorf("ready request: %w", err)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET /ready: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /ready: status %d", resp.StatusCode)
	}
	return nil
}
