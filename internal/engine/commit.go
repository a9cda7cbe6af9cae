package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// committer applies state changes in groups: every request waiting when a
// transaction starts rides in it (group commit). One transaction per change
// would cap an SQLite store at a few thousand changes a second; grouping
// keeps each change atomic while sharing the commit cost.
type committer struct {
	st    store.Store
	owner string
	ch    chan *commitReq
	done  chan struct{}
	// maxGroup bounds a transaction so one huge group cannot stall others.
	maxGroup int
}

type commitReq struct {
	b   *store.Batch
	err chan error // nil: nobody waits (fire and forget)
}

func newCommitter(st store.Store, owner string) *committer {
	c := &committer{st: st, owner: owner, ch: make(chan *commitReq, 4096), done: make(chan struct{}), maxGroup: 512}
	go c.loop()
	return c
}

// commit applies b and waits until it is durable.
func (c *committer) commit(ctx context.Context, b *store.Batch) error {
	wait, err := c.queue(ctx, b)
	if err != nil {
		return err
	}
	return wait()
}

// queue queues b and returns a function that waits until it is durable.
// Once queued, the change will be applied: wait for it even if ctx ends, so
// the caller never reports a state it does not know was written.
func (c *committer) queue(ctx context.Context, b *store.Batch) (func() error, error) {
	req := &commitReq{b: b, err: make(chan error, 1)}
	select {
	case c.ch <- req:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return func() error { return <-req.err }, nil
}

// send queues b without waiting; a failure surfaces on the next commit of
// the same run, which the store then fences.
func (c *committer) send(b *store.Batch) {
	c.ch <- &commitReq{b: b}
}

func (c *committer) close() {
	close(c.ch)
	<-c.done
}

func (c *committer) loop() {
	defer close(c.done)
	group := make([]*commitReq, 0, c.maxGroup)
	for first := range c.ch {
		group = append(group[:0], first)
	drain:
		for len(group) < c.maxGroup {
			select {
			case r, ok := <-c.ch:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		c.apply(group)
	}
}

func (c *committer) apply(group []*commitReq) {
	// Writes must land even while the run that made them is being
	// cancelled: the cancellation itself is recorded through here.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var merged store.Batch
	for _, r := range group {
		merged.Append(r.b)
	}
	coalesce(&merged)
	// A store that is briefly away (a restart, a network blip) is waited
	// for; a refusal (lease lost) is final.
	err := retry(ctx, func() error { return c.st.Apply(ctx, c.owner, &merged) })
	if err != nil && len(group) > 1 {
		// One bad change must not fail its neighbours: retry each alone.
		for _, r := range group {
			reply(r, c.st.Apply(ctx, c.owner, r.b))
		}
		return
	}
	if err != nil {
		err = fmt.Errorf("record state: %w", err)
	}
	for _, r := range group {
		reply(r, err)
	}
}

func reply(r *commitReq, err error) {
	if r.err != nil {
		r.err <- err
	}
}

// coalesce drops task and attempt changes that a later change in the same
// batch supersedes: a fast task's "started" and "finished" often meet in
// one group, and the finished change carries the start time too.
func coalesce(b *store.Batch) {
	if len(b.Tasks) > 1 {
		last := make(map[store.TaskKey]int, len(b.Tasks))
		for i, t := range b.Tasks {
			last[t.TaskKey] = i
		}
		if len(last) < len(b.Tasks) {
			kept := b.Tasks[:0]
			for i, t := range b.Tasks {
				if last[t.TaskKey] == i {
					kept = append(kept, t)
				}
			}
			b.Tasks = kept
		}
	}
	if len(b.Attempts) > 1 {
		type key struct {
			store.TaskKey
			n int
		}
		last := make(map[key]int, len(b.Attempts))
		for i, a := range b.Attempts {
			last[key{a.TaskKey, a.Attempt}] = i
		}
		if len(last) < len(b.Attempts) {
			kept := b.Attempts[:0]
			for i, a := range b.Attempts {
				if last[key{a.TaskKey, a.Attempt}] == i {
					kept = append(kept, a)
				}
			}
			b.Attempts = kept
		}
	}
}
