package cluster

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// isUnavailable reports whether err says etcd could not be reached or has no
// leader right now.
func isUnavailable(err error) bool {
	if errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) {
		return true
	}
	if s, ok := status.FromError(err); ok {
		return s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded
	}
	return false
}

// parseUint decodes the decimal counters this package stores.
func parseUint(b []byte) (uint64, error) {
	return strconv.ParseUint(string(b), 10, 64)
}

func formatUint(v uint64) string { return strconv.FormatUint(v, 10) }

// backoff doubles a delay up to max.
type backoff struct {
	next, max time.Duration
}

func newBackoff(initial, max time.Duration) *backoff {
	return &backoff{next: initial, max: max}
}

// wait sleeps for the current delay (or until ctx ends) and doubles it.
func (b *backoff) wait(ctx context.Context) error {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, b.max)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isLeaseNotFound reports whether etcd says the lease no longer exists.
func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound)
}
