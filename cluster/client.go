package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults for Connect's options.
const (
	DefaultDialTimeout = 5 * time.Second
	DefaultLeaseTTL    = 5 * time.Second
	// defaultRequestTimeout bounds single etcd requests issued on behalf of
	// callers that cannot pass a context (the address resolver's miss path).
	defaultRequestTimeout = 2 * time.Second
)

// Client is an etcd client scoped to one QuorumDB cluster: every key it
// reads or writes lives under /quorumdb/<cluster>/.
type Client struct {
	etcd     *clientv3.Client
	cluster  string
	prefix   string
	leaseTTL time.Duration
	logger   *slog.Logger
}

// Option configures Connect.
type Option func(*connectOptions)

type connectOptions struct {
	dialTimeout time.Duration
	leaseTTL    time.Duration
	logger      *slog.Logger
}

// WithDialTimeout bounds how long Connect waits for etcd to answer.
func WithDialTimeout(d time.Duration) Option {
	return func(o *connectOptions) { o.dialTimeout = d }
}

// WithLeaseTTL sets the TTL of the leases this client grants: node liveness
// and election sessions. A node is declared dead about one TTL after it stops
// renewing. etcd rounds TTLs up to whole seconds (and to its minimum, 2 s with
// default timing).
func WithLeaseTTL(d time.Duration) Option {
	return func(o *connectOptions) { o.leaseTTL = d }
}

// WithLogger sets the logger for this package's own messages.
func WithLogger(l *slog.Logger) Option {
	return func(o *connectOptions) { o.logger = l }
}

// Connect dials etcd at endpoints and checks, within the dial timeout, that it
// answers. The cluster name scopes every key.
func Connect(ctx context.Context, endpoints []string, cluster string, opts ...Option) (*Client, error) {
	o := connectOptions{dialTimeout: DefaultDialTimeout, leaseTTL: DefaultLeaseTTL}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if err := validateName("cluster name", cluster); err != nil {
		return nil, err
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("cluster: connect: no etcd endpoints: %w", ErrInvalidArgument)
	}
	if o.leaseTTL < time.Second {
		return nil, fmt.Errorf("cluster: connect: lease TTL %s below 1s: %w", o.leaseTTL, ErrInvalidArgument)
	}
	etcd, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          o.dialTimeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to etcd %v: %w", endpoints, err)
	}
	c := &Client{
		etcd:     etcd,
		cluster:  cluster,
		prefix:   "/quorumdb/" + cluster + "/",
		leaseTTL: o.leaseTTL,
		logger:   o.logger.With("component", "cluster", "cluster", cluster),
	}
	// clientv3.New does not wait for a connection: probe with a read so an
	// unreachable etcd is reported here, not at the first real request.
	probeCtx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	defer cancel()
	if _, err := etcd.Get(probeCtx, c.prefix, clientv3.WithCountOnly()); err != nil {
		_ = etcd.Close()
		return nil, fmt.Errorf("cluster: etcd at %v did not answer within %s: %w: %w", endpoints, o.dialTimeout, ErrEtcdUnavailable, err)
	}
	return c, nil
}

// Close closes the etcd connection. Leases this client holds are not revoked
// (use NodeRegistration.Deregister or Leadership.Resign first); they expire.
func (c *Client) Close() error {
	return c.etcd.Close()
}

// Cluster returns the cluster name.
func (c *Client) Cluster() string { return c.cluster }

// Prefix returns the etcd key prefix of this cluster, "/quorumdb/<cluster>/".
func (c *Client) Prefix() string { return c.prefix }

// Etcd returns the underlying etcd client, for tools and tests.
func (c *Client) Etcd() *clientv3.Client { return c.etcd }

// LeaseTTL returns the TTL used for liveness and election leases.
func (c *Client) LeaseTTL() time.Duration { return c.leaseTTL }

// key returns the full etcd key of a path inside the cluster's prefix.
func (c *Client) key(path string) string { return c.prefix + path }

// leaseTTLSeconds is the TTL in whole seconds, rounded up.
func (c *Client) leaseTTLSeconds() int64 {
	return int64((c.leaseTTL + time.Second - 1) / time.Second)
}

// validateName checks a name used as one segment of an etcd key.
func validateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("cluster: empty %s: %w", what, ErrInvalidArgument)
	}
	if strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("cluster: %s %q contains '/' or NUL: %w", what, name, ErrInvalidArgument)
	}
	return nil
}

// wrapEtcdErr adds context and, for timeouts and unavailability, the
// ErrEtcdUnavailable kind.
func wrapEtcdErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || isUnavailable(err) {
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrEtcdUnavailable, err)
	}
	return fmt.Errorf("cluster: %s: %w", op, err)
}
