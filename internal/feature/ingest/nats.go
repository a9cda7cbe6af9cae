// Package ingest feeds a feature.Engine from message brokers: NATS
// JetStream and Kafka. It is apart from package feature so that what
// imports features does not link their clients.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/baton-ml/baton/internal/feature"
)

// NATS feeds an feature.Engine from NATS JetStream: for each source, a
// durable pull consumer "baton_SOURCE" on subject STREAM.SOURCE, each
// message one JSON event.
//
// Delivery is at least once. A batch is applied (logged with an fsync,
// then applied online) before its messages are acked, so an event is never
// acked without being logged; but a crash between the two redelivers the
// batch after the consumer's ack wait (30s), and its events are then
// logged and counted twice. Malformed messages are dead-lettered, then
// terminated so they are not redelivered.
type NATS struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu  sync.Mutex
	err error
}

const (
	// natsFetchMax bounds one batch (one fsync) of a consumer.
	natsFetchMax = 1024
	// natsPollWait is how long one pull request waits for messages. Close
	// waits for the current one to expire rather than cancel it, so no
	// message is left delivered but unacked (and stuck until the ack wait).
	natsPollWait = time.Second
	// natsRetryWait is the pause after a failure, before a failed batch
	// is redelivered or the next pull.
	natsRetryWait = time.Second
)

// StartNATS starts consuming the sources' subjects of stream (created with
// subjects STREAM.> when missing) at url into e. The consumers run until
// Close or until ctx is done; an in-flight batch is finished either way.
func StartNATS(ctx context.Context, e *feature.Engine, url, stream string, sources []string) (*NATS, error) {
	if len(sources) == 0 {
		return nil, errors.New("no feature source to consume: apply a features file with a source first")
	}
	decs := make([]*feature.Decoder, len(sources))
	for i, name := range sources {
		src := e.Catalog().Sources[name]
		if src == nil {
			return nil, fmt.Errorf("NATS ingest of unknown source %q; baton feature list shows the registered ones", name)
		}
		// Made here, before any consumer runs: a decoder settles the
		// source's field order, which Get reads concurrently.
		decs[i] = feature.NewDecoder(src, e.Catalog().KeyOf(src))
	}
	nc, err := nats.Connect(url, nats.Name("baton feature ingest"))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w; start nats-server -js or fix the URL", url, err)
	}
	consumers, err := natsConsumers(ctx, nc, stream, sources)
	if err != nil {
		nc.Close()
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(ctx)
	n := &NATS{nc: nc, cancel: cancel}
	for i, name := range sources {
		n.wg.Add(1)
		go n.consume(loopCtx, e, name, consumers[i], decs[i])
	}
	return n, nil
}

// natsConsumers makes (or updates) the stream's durable consumer of each
// source.
func natsConsumers(ctx context.Context, nc *nats.Conn, stream string, sources []string) ([]jetstream.Consumer, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream at %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	st, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another process created it first.
			st, err = js.Stream(ctx, stream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("JetStream stream %s at %s: %w; is the server running with JetStream (nats-server -js)?", stream, nc.ConnectedUrlRedacted(), err)
	}
	out := make([]jetstream.Consumer, len(sources))
	for i, name := range sources {
		subject := stream + "." + name
		out[i], err = st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       "baton_" + name,
			FilterSubject: subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			// Room for a batch in flight and failed ones waiting to return.
			MaxAckPending: 4 * natsFetchMax,
		})
		if err != nil {
			return nil, fmt.Errorf("JetStream consumer of %s on stream %s: %w; the stream's subjects must include %s", subject, stream, err, subject)
		}
	}
	return out, nil
}

// consume pulls, applies and acks batches of one source until ctx is done.
func (n *NATS) consume(ctx context.Context, e *feature.Engine, source string, cons jetstream.Consumer, dec *feature.Decoder) {
	defer n.wg.Done()
	// A batch already pulled is finished even when ctx ends, so a stop
	// does not leave messages waiting for redelivery.
	work := context.WithoutCancel(ctx)
	batch := make([]jetstream.Msg, 0, natsFetchMax)
	for ctx.Err() == nil {
		mb, err := cons.Fetch(natsFetchMax, jetstream.FetchMaxWait(natsPollWait))
		if err != nil {
			n.fail(ctx, fmt.Errorf("pull events of %s from NATS: %w", source, err))
			continue
		}
		// Messages arrive one by one while the pull lasts: apply what has
		// arrived rather than wait for a full batch, so a trickle of
		// events stays fresh and a flood still shares fsyncs.
		msgs := mb.Messages()
		for m := range msgs {
			batch = append(batch[:0], m)
		more:
			for len(batch) < natsFetchMax {
				select {
				case m, ok := <-msgs:
					if !ok {
						break more
					}
					batch = append(batch, m)
				default:
					break more
				}
			}
			if err := n.handle(work, e, source, dec, batch); err != nil {
				n.fail(ctx, err)
			}
		}
		if err := mb.Error(); err != nil {
			n.fail(ctx, fmt.Errorf("pull events of %s from NATS: %w", source, err))
		}
	}
}

// handle dead-letters the malformed messages of batch and applies the
// rest, acking each message only once its event is logged or
// dead-lettered; on failure the messages come back after natsRetryWait.
func (n *NATS) handle(ctx context.Context, e *feature.Engine, source string, dec *feature.Decoder, batch []jetstream.Msg) error {
	var (
		evs     []feature.Event
		good    []jetstream.Msg
		rejects []feature.Rejection
		bad     []jetstream.Msg
	)
	for _, m := range batch {
		ev, err := dec.DecodeJSON(bytes.TrimSpace(m.Data()))
		if err == nil {
			evs, good = append(evs, ev), append(good, m)
			continue
		}
		rj := feature.Rejection{Source: source, Reason: err.Error(), Raw: string(m.Data())}
		// There are no lines: the stream sequence locates the message
		// (nats stream get STREAM SEQ).
		if md, err := m.Metadata(); err == nil {
			rj.Line = int(md.Sequence.Stream)
		}
		rejects, bad = append(rejects, rj), append(bad, m)
	}
	var errs []error
	if len(rejects) > 0 {
		if err := feature.DeadLetter(e.DeadLetterDir(), source, rejects); err != nil {
			errs = append(errs, fmt.Errorf("dead-letter %d malformed events of %s from NATS: %w", len(rejects), source, err))
			errs = append(errs, settle(bad, jetstream.Msg.NakWithDelay))
		} else {
			e.Metrics.Rejected.WithLabelValues(source).Add(float64(len(rejects)))
			errs = append(errs, settle(bad, func(m jetstream.Msg, _ time.Duration) error { return m.Term() }))
		}
	}
	if len(evs) > 0 {
		if _, err := e.Apply(ctx, source, evs); err != nil {
			errs = append(errs, fmt.Errorf("apply %d events of %s from NATS: %w", len(evs), source, err))
			errs = append(errs, settle(good, jetstream.Msg.NakWithDelay))
		} else {
			errs = append(errs, settle(good, func(m jetstream.Msg, _ time.Duration) error { return m.Ack() }))
		}
	}
	return errors.Join(errs...)
}

// settle acks, naks or terminates msgs; a failure leaves the message to
// be redelivered after the ack wait.
func settle(msgs []jetstream.Msg, fn func(jetstream.Msg, time.Duration) error) error {
	for _, m := range msgs {
		if err := fn(m, natsRetryWait); err != nil {
			return fmt.Errorf("settle a NATS message (it will be redelivered): %w", err)
		}
	}
	return nil
}

// fail records err and pauses, so a persistent failure (the server gone,
// a full disk) neither spins nor floods.
func (n *NATS) fail(ctx context.Context, err error) {
	n.mu.Lock()
	n.err = err
	n.mu.Unlock()
	t := time.NewTimer(natsRetryWait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Err returns the latest error of a consumer, or nil. Consumers retry
// after errors, so an error here may be past.
func (n *NATS) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// Close stops the consumers, waits for their batches to finish, and
// closes the connection once their acks are sent.
func (n *NATS) Close() error {
	var err error
	n.once.Do(func() {
		n.cancel()
		n.wg.Wait()
		if ferr := n.nc.FlushTimeout(5 * time.Second); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("send the last acks to NATS (their messages will be redelivered): %w", ferr)
		}
		n.nc.Close()
	})
	return err
}
