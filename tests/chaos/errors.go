package chaos

import "errors"

var (
	// ErrPartitionUnsupported: the network cannot cut links (not root, or
	// no network namespaces): partition nemeses are skipped, and reported.
	ErrPartitionUnsupported = errors.New("chaos: network partitions unsupported here (needs root and ip netns)")
	// ErrNotReady: a process did not become ready before its deadline.
	ErrNotReady = errors.New("chaos: process not ready in time")
	// ErrNoLeader: no node reports a leader for the range asked about.
	ErrNoLeader = errors.New("chaos: no leader known")
	// errNoRanges: /api/ranges listed nothing.
	errNoRanges = errors.New("chaos: no ranges listed")
)
