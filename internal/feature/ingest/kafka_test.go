package ingest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/featuretest"
	"github.com/baton-ml/baton/internal/testwait"
)

// There is no Kafka broker on the test machines: these tests run against
// kfake, franz-go's in-process implementation of the Kafka protocol
// (produce, fetch, consumer groups, offset commits), one cluster per test.

const kafkaTestTopic = "baton_events.plays"

// kafkaTest is a fake cluster with topic baton_events.plays (two
// partitions) and a producer writing numbered plays events to it.
type kafkaTest struct {
	t       *testing.T
	cluster *kfake.Cluster
	prod    *kgo.Client
	adm     *kadm.Client
	base    time.Time
	keys    []string

	mu   sync.Mutex
	sent int             // good events produced
	ends map[int32]int64 // per partition, the offset after the last record produced
}

func newKafkaTest(t *testing.T) *kafkaTest {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, kafkaTestTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.DefaultProduceTopic(kafkaTestTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &kafkaTest{t: t, cluster: c, prod: prod, adm: kadm.NewClient(prod),
		base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), keys: []string{"m1", "m2", "m3"}, ends: map[int32]int64{}}
}

func (k *kafkaTest) brokers() []string { return k.cluster.ListenAddrs() }

// produce writes bodies, alternating partitions, and returns their records
// (with offsets).
func (k *kafkaTest) produce(bodies ...string) []*kgo.Record {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	recs := make([]*kgo.Record, len(bodies))
	for i, b := range bodies {
		recs[i] = &kgo.Record{Value: []byte(b), Partition: int32(i % 2)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := k.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		k.t.Fatalf("produce to the fake cluster: %v", err)
	}
	for _, r := range recs {
		k.ends[r.Partition] = max(k.ends[r.Partition], r.Offset+1)
	}
	return recs
}

// events produces n well-formed events.
func (k *kafkaTest) events(n int) {
	k.t.Helper()
	k.mu.Lock()
	bodies := make([]string, n)
	for i := range bodies {
		s := k.sent + i
		bodies[i] = fmt.Sprintf(`{"member_id":%q,"ts":%q,"secs":%d}`, k.keys[s%len(k.keys)],
			k.base.Add(time.Duration(s)*time.Second).Format(time.RFC3339), s%50)
	}
	k.sent += n
	k.mu.Unlock()
	k.produce(bodies...)
}

func (k *kafkaTest) total() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sent
}

// counted checks that the engine counts every event produced.
func (k *kafkaTest) counted(e *feature.Engine, ing *Kafka) func() (bool, string) {
	feats, err := e.Catalog().Select([]string{"plays_1h"})
	if err != nil {
		k.t.Fatal(err)
	}
	asOf := k.base.Add(30 * time.Minute)
	return func() (bool, string) {
		total := 0.0
		for _, key := range k.keys {
			v, err := e.Get(context.Background(), key, feats, asOf)
			if err != nil {
				return false, err.Error()
			}
			total += v.Features["plays_1h"].(float64)
		}
		return int(total) == k.total(), fmt.Sprintf("%v of %d events counted (ingest error: %v)", total, k.total(), ing.Err())
	}
}

// committed checks that group has committed every record produced.
func (k *kafkaTest) committed(group string) func() (bool, string) {
	return func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := k.adm.FetchOffsets(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		var state []string
		ok := true
		for p, end := range k.ends {
			at := int64(-1)
			if o, found := offs.Lookup(kafkaTestTopic, p); found && o.Err == nil {
				at = o.At
			}
			ok = ok && at == end
			state = append(state, fmt.Sprintf("partition %d committed %d of %d", p, at, end))
		}
		slices.Sort(state)
		return ok, strings.Join(state, ", ")
	}
}

func readDeadLetters(t *testing.T, e *feature.Engine) []feature.Rejection {
	t.Helper()
	f, err := os.Open(filepath.Join(e.DeadLetterDir(), "plays.deadletter.jsonl"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []feature.Rejection
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r feature.Rejection
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestKafkaIngest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKafkaTest(t)
	e := feature.NewEngine(featuretest.PlaysCatalog(), t.TempDir(), feature.NewMemory(), nil)
	t.Cleanup(func() { e.Close() })

	// The default prefix (baton_events) and group (baton).
	ing, err := StartKafka(ctx, e, k.brokers(), "", "", []string{"plays"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })

	malformed := []string{
		`not json`,
		`{"ts":"2026-03-01T12:00:00Z"}`,
		`{"member_id":"m1","ts":"noon"}`,
		`{"member_id":"m1","ts":"2026-03-01T12:00:00Z","secs":"many"}`,
		``,
	}
	k.events(150)
	bad := k.produce(malformed...)
	k.events(150)
	testwait.Until(t, 10*time.Second, k.counted(e, ing), "the produced events online")

	testwait.Until(t, 10*time.Second, func() (bool, string) {
		n := len(readDeadLetters(t, e))
		return n == len(malformed), fmt.Sprintf("%d of %d dead-lettered", n, len(malformed))
	}, "the malformed events dead-lettered")
	offsetOf := map[string]int{}
	for _, r := range bad {
		offsetOf[string(r.Value)] = int(r.Offset)
	}
	var raws []string
	for _, r := range readDeadLetters(t, e) {
		if r.Source != "plays" || r.Reason == "" {
			t.Errorf("dead letter %+v: want the source and a reason", r)
		}
		if off, ok := offsetOf[r.Raw]; !ok || r.Line != off {
			t.Errorf("dead letter %+v: want line = the record's offset %d", r, off)
		}
		raws = append(raws, r.Raw)
	}
	slices.Sort(raws)
	if want := slices.Sorted(slices.Values(malformed)); !slices.Equal(raws, want) {
		t.Errorf("dead-lettered %q, want %q", raws, want)
	}
	if got := counterValue(t, e.Metrics.Rejected.WithLabelValues("plays")); got != float64(len(malformed)) {
		t.Errorf("rejected metric = %v, want %d", got, len(malformed))
	}
	// Malformed records are committed too.
	testwait.Until(t, 10*time.Second, k.committed("baton"), "the group to commit every record")

	// Events produced while no consumer runs are waiting when it is back,
	// and those applied before the stop are not consumed again.
	if err := ing.Close(); err != nil {
		t.Fatal(err)
	}
	k.events(100)
	ing, err = StartKafka(ctx, e, k.brokers(), "baton_events", "baton", []string{"plays"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	k.events(50)
	testwait.Until(t, 10*time.Second, k.committed("baton"), "the group to commit every record after a restart")
	if err := ing.Close(); err != nil {
		t.Fatal(err)
	}
	// Every record is committed and the consumer stopped: what is counted
	// now is final.
	if ok, state := k.counted(e, ing)(); !ok {
		t.Errorf("after a restart: %s", state)
	}
	if got := counterValue(t, e.Metrics.Events.WithLabelValues("plays")); got != float64(k.total()) {
		t.Errorf("events metric = %v, want %d: events were lost or applied twice", got, k.total())
	}
	if got := counterValue(t, e.Metrics.Rejected.WithLabelValues("plays")); got != float64(len(malformed)) {
		t.Errorf("rejected metric after a restart = %v, want %d: malformed records consumed again", got, len(malformed))
	}
	if err := ing.Err(); err != nil {
		t.Errorf("ingest error: %v", err)
	}
}

// A batch that cannot be applied is retried, and not committed meanwhile.
func TestKafkaIngestRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newKafkaTest(t)
	// The engine's folder is a file: logging (and dead-lettering) fails
	// until it is removed.
	dir := filepath.Join(t.TempDir(), "features")
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := feature.NewEngine(featuretest.PlaysCatalog(), dir, feature.NewMemory(), nil)
	t.Cleanup(func() { e.Close() })
	ing, err := StartKafka(ctx, e, k.brokers(), "", "retry", []string{"plays"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })

	k.events(20)
	k.produce(`not json`)
	testwait.Until(t, 10*time.Second, func() (bool, string) {
		return ing.Err() != nil, "no error yet"
	}, "the apply error")
	if !strings.Contains(ing.Err().Error(), "apply") {
		t.Errorf("ingest error %q: want the failed apply", ing.Err())
	}
	if ok, state := k.committed("retry")(); ok {
		t.Errorf("offsets committed while the batch fails: %s", state)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, k.counted(e, ing), "the events online once logging works")
	testwait.Until(t, 10*time.Second, k.committed("retry"), "the group to commit every record")
	if err := ing.Close(); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, e.Metrics.Events.WithLabelValues("plays")); got != float64(k.total()) {
		t.Errorf("events metric = %v, want %d", got, k.total())
	}
	if n := len(readDeadLetters(t, e)); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

func TestStartKafkaErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := feature.NewEngine(featuretest.PlaysCatalog(), t.TempDir(), feature.NewMemory(), nil)
	t.Cleanup(func() { e.Close() })
	if _, err := StartKafka(ctx, e, []string{"127.0.0.1:9092"}, "", "", []string{"nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown source: %v; want an error naming it", err)
	}
	if _, err := StartKafka(ctx, e, nil, "", "", []string{"plays"}); err == nil || !strings.Contains(err.Error(), "broker") {
		t.Errorf("no brokers: %v; want an error asking for them", err)
	}
	if _, err := StartKafka(ctx, e, []string{"127.0.0.1:1", "127.0.0.1:2"}, "", "", []string{"plays"}); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:1,127.0.0.1:2") {
		t.Errorf("dead brokers: %v; want an error naming their addresses", err)
	}
}
