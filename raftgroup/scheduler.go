package raftgroup

import "sync"

// scheduler is the store-wide queue of ranges that have work (incoming
// messages, proposals, ticks, a pending Ready). A small pool of workers
// drains it; a range is owned by at most one worker at a time, so its
// RawNode needs no lock of its own. A range signalled while a worker holds
// it is queued again when the worker releases it, so no signal is lost.
type scheduler struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []uint64
	state   map[uint64]schedState
	stopped bool
}

type schedState uint8

const (
	schedQueued     schedState = 1
	schedProcessing schedState = 2
	schedDirty      schedState = 3 // processing, and signalled again meanwhile
)

func newScheduler() *scheduler {
	s := &scheduler{state: make(map[uint64]schedState)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// enqueue marks rangeID as having work.
func (s *scheduler) enqueue(rangeID uint64) {
	s.mu.Lock()
	switch s.state[rangeID] {
	case 0:
		s.state[rangeID] = schedQueued
		s.queue = append(s.queue, rangeID)
		s.cond.Signal()
	case schedProcessing:
		s.state[rangeID] = schedDirty
	}
	s.mu.Unlock()
}

// enqueueMany marks many ranges at once (the ticker), under one lock.
func (s *scheduler) enqueueMany(ids []uint64) {
	s.mu.Lock()
	added := false
	for _, rangeID := range ids {
		switch s.state[rangeID] {
		case 0:
			s.state[rangeID] = schedQueued
			s.queue = append(s.queue, rangeID)
			added = true
		case schedProcessing:
			s.state[rangeID] = schedDirty
		}
	}
	if added {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// next blocks until work is queued and takes up to max ranges, now owned by
// the caller. It returns nil once the scheduler is stopped.
func (s *scheduler) next(max int, into []uint64) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.stopped {
		s.cond.Wait()
	}
	if s.stopped {
		return nil
	}
	n := min(max, len(s.queue))
	into = append(into[:0], s.queue[:n]...)
	s.queue = s.queue[n:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	for _, id := range into {
		s.state[id] = schedProcessing
	}
	if len(s.queue) > 0 {
		s.cond.Signal() // more work: wake another worker
	}
	return into
}

// done releases ranges taken by next, queueing again those signalled while
// they were processed.
func (s *scheduler) done(ids []uint64) {
	s.mu.Lock()
	for _, id := range ids {
		if s.state[id] == schedDirty {
			s.state[id] = schedQueued
			s.queue = append(s.queue, id)
			s.cond.Signal()
		} else {
			delete(s.state, id)
		}
	}
	s.mu.Unlock()
}

func (s *scheduler) stop() {
	s.mu.Lock()
	s.stopped = true
	s.cond.Broadcast()
	s.mu.Unlock()
}
