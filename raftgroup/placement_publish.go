package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
)

// RangeDirectoryWriter publishes range descriptors to the range directory.
// *cluster.Client implements it: the write is a compare-and-swap on the
// generation, refused with *cluster.StaleDescriptorError when an
// overlapping published descriptor is at least as new.
type RangeDirectoryWriter interface {
	PublishRanges(ctx context.Context, descs ...*kv.RangeDescriptor) error
}

// RangePublisherOptions tune RunRangePublisherWithOptions.
type RangePublisherOptions struct {
	// Interval between two passes (default 200ms).
	Interval time.Duration
	// ResyncEvery: every this many passes, everything the node leads is
	// offered again, in case the directory lost an entry (default 150;
	// re-publishing an identical descriptor writes nothing).
	ResyncEvery int
	// CallTimeout bounds one publish call (default 5s).
	CallTimeout time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// RunRangePublisher publishes, every interval, the descriptor of every range
// this store leads whose generation is newer than what it last published,
// until ctx ends (it then returns nil). Adjacent new descriptors go in one
// PublishRanges call, so the two halves of a split replace their parent
// together and no key is left uncovered. The directory's CAS refusing a
// descriptor (someone published a newer one: this node lags or lost the
// leadership) is not an error: the range is skipped until its generation
// grows here. Run it on every node.
func RunRangePublisher(ctx context.Context, store *Store, dir RangeDirectoryWriter, interval time.Duration) error {
	return RunRangePublisherWithOptions(ctx, store, dir, RangePublisherOptions{Interval: interval})
}

// RunRangePublisherWithOptions is RunRangePublisher with every option.
func RunRangePublisherWithOptions(ctx context.Context, store *Store, dir RangeDirectoryWriter, opts RangePublisherOptions) error {
	if store == nil || dir == nil {
		return fmt.Errorf("raftgroup: range publisher: store and directory are required")
	}
	p := newRangePublisher(store, dir, opts)
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for pass := 1; ; pass++ {
		if p.opts.ResyncEvery > 0 && pass%p.opts.ResyncEvery == 0 {
			clear(p.published)
		}
		p.publishOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

type rangePublisher struct {
	store *Store
	dir   RangeDirectoryWriter
	opts  RangePublisherOptions
	log   *slog.Logger
	// published maps a range ID to the highest generation this node
	// published or saw refused as stale.
	published map[uint64]uint64
}

func newRangePublisher(store *Store, dir RangeDirectoryWriter, opts RangePublisherOptions) *rangePublisher {
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.ResyncEvery == 0 {
		opts.ResyncEvery = 150
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &rangePublisher{
		store: store, dir: dir, opts: opts,
		log:       opts.Logger.With("component", "range-publisher", "node", store.NodeID()),
		published: map[uint64]uint64{},
	}
}

// publishOnce offers every led descriptor newer than what was published.
func (p *rangePublisher) publishOnce(ctx context.Context) {
	var fresh []*kv.RangeDescriptor
	for _, ri := range p.store.RangeInfo() {
		if !ri.IsLeader || ri.Descriptor == nil {
			continue
		}
		if gen, ok := p.published[ri.RangeID]; ok && gen >= ri.Descriptor.Generation {
			continue
		}
		fresh = append(fresh, ri.Descriptor)
	}
	for _, group := range adjacentGroups(fresh) {
		if ctx.Err() != nil {
			return
		}
		p.publishGroup(ctx, group)
	}
}

// adjacentGroups sorts descs by start key and cuts them into runs where
// each descriptor starts where the previous one ends.
func adjacentGroups(descs []*kv.RangeDescriptor) [][]*kv.RangeDescriptor {
	slices.SortFunc(descs, func(a, b *kv.RangeDescriptor) int { return bytes.Compare(a.StartKey, b.StartKey) })
	var groups [][]*kv.RangeDescriptor
	for i, d := range descs {
		if i > 0 && bytes.Equal(descs[i-1].EndKey, d.StartKey) {
			groups[len(groups)-1] = append(groups[len(groups)-1], d)
			continue
		}
		groups = append(groups, []*kv.RangeDescriptor{d})
	}
	return groups
}

func (p *rangePublisher) publishGroup(ctx context.Context, group []*kv.RangeDescriptor) {
	err := p.publish(ctx, group)
	var stale *cluster.StaleDescriptorError
	switch {
	case err == nil:
		return
	case errors.As(err, &stale) && len(group) > 1:
		// One of the group is behind the directory: the others may still
		// be news. Offer them one by one.
		for _, d := range group {
			if ctx.Err() != nil {
				return
			}
			if err := p.publish(ctx, []*kv.RangeDescriptor{d}); err != nil && !errors.As(err, &stale) {
				p.log.Warn("publishing range descriptor failed; retrying next pass", "range", d.RangeID, "generation", d.Generation, "err", err)
			}
		}
	case errors.As(err, &stale):
	default:
		ids := make([]uint64, len(group))
		for i, d := range group {
			ids[i] = d.RangeID
		}
		p.log.Warn("publishing range descriptors failed; retrying next pass", "ranges", ids, "err", err)
	}
}

// publish offers descs in one call and records them as published on
// success or on a stale refusal (a newer copy is out there: offering the
// same generation again cannot succeed).
func (p *rangePublisher) publish(ctx context.Context, descs []*kv.RangeDescriptor) error {
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	err := p.dir.PublishRanges(cctx, descs...)
	var stale *cluster.StaleDescriptorError
	switch {
	case err == nil:
		for _, d := range descs {
			p.published[d.RangeID] = d.Generation
			p.log.Debug("published range descriptor", "range", d.RangeID, "generation", d.Generation, "desc", d.String())
		}
	case errors.As(err, &stale) && len(descs) == 1:
		p.published[descs[0].RangeID] = descs[0].Generation
		p.log.Info("directory holds a newer descriptor; not publishing ours", "range", descs[0].RangeID,
			"generation", descs[0].Generation, "published", stale.Published.String())
	}
	return err
}
