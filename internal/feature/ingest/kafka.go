package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/baton-ml/baton/internal/feature"
)

// Kafka feeds an feature.Engine from Kafka: one consumer group (default
// "baton") consumes the topics PREFIX.SOURCE (default prefix
// baton_events), each record's value one JSON event of SOURCE. A group
// new to the cluster starts from the earliest offsets.
//
// Delivery is at least once, as with NATS. Offsets are committed by hand
// (auto-commit is off), and only for records whose events are applied
// (logged with an fsync, then applied online) or, when malformed,
// dead-lettered: an offset is never committed ahead of the log. But a crash
// between an apply and its commit, or a commit that fails, replays those
// records when the group resumes (here or in another member), and their
// events are then logged and counted twice.
//
// A dead letter's Line is the record's offset in its partition (the
// partition is not recorded). Polling blocks the group's rebalances until
// the records polled are applied and committed, so a partition is never
// committed by a member that no longer owns it.
type Kafka struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	err      error // latest error; see Err
	closeErr error // of the final commit, set before done is closed

	// pending holds, per partition, the last record finished (applied or
	// dead-lettered) but not yet committed.
	pmu     sync.Mutex
	pending map[kafkaPartition]*kgo.Record
}

type kafkaPartition struct {
	topic     string
	partition int32
}

// kafkaSource is what a topic feeds.
type kafkaSource struct {
	name string
	dec  *feature.Decoder
}

const (
	// kafkaFetchMax bounds one poll (one fsync per source in it).
	kafkaFetchMax = 1024
	// kafkaRetryWait is the pause after a failure, before a failed batch
	// is retried or the next poll.
	kafkaRetryWait = time.Second
	// kafkaPingTimeout bounds the check that a broker answers at start.
	kafkaPingTimeout = 5 * time.Second
	// kafkaCommitTimeout bounds one offset commit.
	kafkaCommitTimeout = 10 * time.Second
)

// StartKafka starts consuming the sources' topics PREFIX.SOURCE (topicPrefix
// default baton_events) at brokers into e, in consumer group group (default
// baton). The consumer runs until Close or until ctx is done; a batch being
// applied is finished either way, and what was applied is committed.
func StartKafka(ctx context.Context, e *feature.Engine, brokers []string, topicPrefix, group string, sources []string) (*Kafka, error) {
	var seeds []string
	for _, b := range brokers {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("Kafka ingest needs at least one broker address (host:port)")
	}
	if len(sources) == 0 {
		return nil, errors.New("Kafka ingest needs at least one source to consume")
	}
	if topicPrefix == "" {
		topicPrefix = "baton_events"
	}
	if group == "" {
		group = "baton"
	}
	bySource := map[string]kafkaSource{}
	var topics []string
	for _, name := range slices.Sorted(slices.Values(sources)) {
		src := e.Catalog().Sources[name]
		if src == nil {
			return nil, fmt.Errorf("Kafka ingest of unknown source %q; baton feature list shows the registered ones", name)
		}
		topic := topicPrefix + "." + name
		if _, dup := bySource[topic]; dup {
			continue
		}
		// Made here, before the consumer runs: a decoder settles the
		// source's field order, which Get reads concurrently.
		bySource[topic] = kafkaSource{name: name, dec: feature.NewDecoder(src, e.Catalog().KeyOf(src))}
		topics = append(topics, topic)
	}

	k := &Kafka{done: make(chan struct{}), pending: map[kafkaPartition]*kgo.Record{}}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("baton-feature-ingest"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(k.revoked),
		kgo.OnPartitionsLost(k.lost),
	)
	if err != nil {
		return nil, fmt.Errorf("Kafka client for %s: %w", strings.Join(seeds, ","), err)
	}
	pctx, cancel := context.WithTimeout(ctx, kafkaPingTimeout)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("reach Kafka at %s: %w; start the brokers or fix the addresses", strings.Join(seeds, ","), err)
	}
	k.cl = cl
	loopCtx, cancel := context.WithCancel(ctx)
	k.cancel = cancel
	go k.run(loopCtx, e, bySource)
	return k, nil
}

// run polls, applies and commits until ctx is done, then commits what was
// applied.
func (k *Kafka) run(ctx context.Context, e *feature.Engine, bySource map[string]kafkaSource) {
	// Records already polled are applied even when ctx ends, so an apply
	// is never cut in the middle of its fsync.
	work := context.WithoutCancel(ctx)
	defer func() {
		if err := k.commit(work); err != nil {
			k.closeErr = fmt.Errorf("commit the last Kafka offsets (their records will be consumed again): %w", err)
		}
		close(k.done)
	}()
	for {
		fs := k.cl.PollRecords(ctx, kafkaFetchMax)
		if ctx.Err() != nil || fs.IsClientClosed() {
			// Records returned with the stop are left uncommitted: the
			// group consumes them again.
			return
		}
		var perr error
		fs.EachError(func(topic string, partition int32, err error) {
			perr = errors.Join(perr, fmt.Errorf("poll %s partition %d from Kafka: %w", topic, partition, err))
		})
		// Group the records by source, keeping each partition's order.
		var order []string
		batches := map[string][]*kgo.Record{}
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := batches[r.Topic]; !ok {
				order = append(order, r.Topic)
			}
			batches[r.Topic] = append(batches[r.Topic], r)
		})
		for _, topic := range order {
			src, ok := bySource[topic]
			if !ok {
				continue // not subscribed; cannot happen
			}
			if !k.handle(ctx, work, e, src, batches[topic]) {
				return // stopped while retrying: left uncommitted
			}
		}
		if err := k.commit(work); err != nil {
			// Kept pending: the next commit retries it.
			k.record(fmt.Errorf("commit Kafka offsets: %w", err))
		}
		k.cl.AllowRebalance()
		if perr != nil {
			k.fail(ctx, perr)
		}
	}
}

// handle dead-letters the malformed records of one source's batch and
// applies the rest, retrying after failures until both are done (true)
// or stop ends (false). Only then are the records marked for commit.
func (k *Kafka) handle(stop, work context.Context, e *feature.Engine, src kafkaSource, recs []*kgo.Record) bool {
	var (
		evs     []feature.Event
		rejects []feature.Rejection
	)
	for _, r := range recs {
		ev, err := src.dec.DecodeJSON(bytes.TrimSpace(r.Value))
		if err != nil {
			rejects = append(rejects, feature.Rejection{Source: src.name, Line: int(r.Offset), Reason: err.Error(), Raw: string(r.Value)})
			continue
		}
		evs = append(evs, ev)
	}
	for {
		var errs []error
		if len(rejects) > 0 {
			if err := feature.DeadLetter(e.DeadLetterDir(), src.name, rejects); err != nil {
				errs = append(errs, fmt.Errorf("dead-letter %d malformed events of %s from Kafka: %w", len(rejects), src.name, err))
			} else {
				e.Metrics.Rejected.WithLabelValues(src.name).Add(float64(len(rejects)))
				rejects = nil
			}
		}
		if len(evs) > 0 {
			if _, err := e.Apply(work, src.name, evs); err != nil {
				errs = append(errs, fmt.Errorf("apply %d events of %s from Kafka (retrying): %w", len(evs), src.name, err))
			} else {
				evs = nil
			}
		}
		if len(errs) == 0 {
			k.finished(recs)
			return true
		}
		k.fail(stop, errors.Join(errs...))
		if stop.Err() != nil {
			return false
		}
	}
}

// finished marks recs to be committed.
func (k *Kafka) finished(recs []*kgo.Record) {
	k.pmu.Lock()
	defer k.pmu.Unlock()
	for _, r := range recs {
		tp := kafkaPartition{r.Topic, r.Partition}
		if p := k.pending[tp]; p == nil || p.Offset < r.Offset {
			k.pending[tp] = r
		}
	}
}

// commit commits the finished records; those it fails to commit stay
// pending.
func (k *Kafka) commit(ctx context.Context) error {
	k.pmu.Lock()
	recs := make([]*kgo.Record, 0, len(k.pending))
	for _, r := range k.pending {
		recs = append(recs, r)
	}
	k.pmu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, kafkaCommitTimeout)
	defer cancel()
	if err := k.cl.CommitRecords(ctx, recs...); err != nil {
		return err
	}
	k.pmu.Lock()
	defer k.pmu.Unlock()
	for _, r := range recs {
		tp := kafkaPartition{r.Topic, r.Partition}
		if k.pending[tp] == r {
			delete(k.pending, tp)
		}
	}
	return nil
}

// revoked commits what was finished of partitions leaving this member,
// before another member starts on them.
func (k *Kafka) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	recs := k.take(parts)
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, kafkaCommitTimeout)
	defer cancel()
	if err := cl.CommitRecords(ctx, recs...); err != nil {
		k.record(fmt.Errorf("commit Kafka offsets of revoked partitions (their records will be consumed again): %w", err))
	}
}

// lost drops what was finished of partitions this member lost: it may no
// longer commit them.
func (k *Kafka) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	k.take(parts)
}

// take removes and returns the pending records of parts.
func (k *Kafka) take(parts map[string][]int32) []*kgo.Record {
	k.pmu.Lock()
	defer k.pmu.Unlock()
	var out []*kgo.Record
	for topic, ps := range parts {
		for _, p := range ps {
			tp := kafkaPartition{topic, p}
			if r := k.pending[tp]; r != nil {
				out = append(out, r)
				delete(k.pending, tp)
			}
		}
	}
	return out
}

func (k *Kafka) record(err error) {
	k.mu.Lock()
	k.err = err
	k.mu.Unlock()
}

// fail records err and pauses, so a persistent failure (the brokers gone,
// a full disk) neither spins nor floods.
func (k *Kafka) fail(ctx context.Context, err error) {
	k.record(err)
	t := time.NewTimer(kafkaRetryWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Err returns the latest error of the consumer, or nil. It retries after
// errors, so an error here may be past.
func (k *Kafka) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Close stops the poll loop, waits for the batch in hand, commits the
// offsets of what was applied, leaves the group and closes the client.
func (k *Kafka) Close() error {
	k.once.Do(func() {
		k.cancel()
		<-k.done
		// Polls block rebalances until allowed, and leaving the group is
		// one.
		k.cl.CloseAllowingRebalance()
	})
	return k.closeErr
}
