package feature

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/baton-ml/baton/internal/testwait"
)

// testNATS returns the server's URL, a JetStream client, and a stream name
// of the test's own, deleted afterwards.
func testNATS(t *testing.T) (string, jetstream.JetStream, string) {
	t.Helper()
	url := cmp.Or(os.Getenv("BATON_TEST_NATS_URL"), "nats://127.0.0.1:4222")
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		needService(t, "NATS at "+url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		needService(t, "JetStream at "+url, err)
	}
	stream := fmt.Sprintf("baton_test_%016x", rand.Uint64())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete test stream %s: %v", stream, err)
		}
	})
	return url, js, stream
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// waitFor is testwait.Until with what first, as the NATS and Kafka tests
// read.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testwait.Until(t, within, cond, "%s", what)
}

func TestNATSIngest(t *testing.T) {
	ctx := context.Background()
	url, js, stream := testNATS(t)
	e := NewEngine(playsTestCatalog(), t.TempDir(), NewMemory(), nil)
	t.Cleanup(func() { e.Close() })
	feats, err := e.Catalog().Select([]string{"plays_1h"})
	if err != nil {
		t.Fatal(err)
	}

	ing, err := StartNATS(ctx, e, url, stream, []string{"plays"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })

	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	keys := []string{"m1", "m2", "m3"}
	subject := stream + ".plays"
	sent := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			body := fmt.Sprintf(`{"member_id":%q,"ts":%q,"secs":%d}`, keys[sent%len(keys)],
				base.Add(time.Duration(sent)*time.Second).Format(time.RFC3339), sent%50)
			if _, err := js.Publish(ctx, subject, []byte(body)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	asOf := base.Add(30 * time.Minute)
	count := func() (bool, string) {
		total := 0.0
		for _, k := range keys {
			v, err := e.Get(ctx, k, feats, asOf)
			if err != nil {
				return false, err.Error()
			}
			total += v.Features["plays_1h"].(float64)
		}
		return int(total) == sent, fmt.Sprintf("%v of %d events counted (ingest error: %v)", total, sent, ing.Err())
	}

	malformed := []string{
		`not json`,
		`{"ts":"2026-03-01T12:00:00Z"}`,
		`{"member_id":"m1","ts":"noon"}`,
		`{"member_id":"m1","ts":"2026-03-01T12:00:00Z","secs":"many"}`,
		``,
	}
	publish(150)
	for _, body := range malformed {
		if _, err := js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	publish(150)
	waitFor(t, 10*time.Second, "the published events online", count)

	deadLetters := func() []Rejection {
		f, err := os.Open(filepath.Join(e.DeadLetterDir(), "plays.deadletter.jsonl"))
		if err != nil {
			return nil
		}
		defer f.Close()
		var out []Rejection
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r Rejection
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
			}
			out = append(out, r)
		}
		return out
	}
	waitFor(t, 10*time.Second, "the malformed events dead-lettered", func() (bool, string) {
		n := len(deadLetters())
		return n == len(malformed), fmt.Sprintf("%d of %d dead-lettered", n, len(malformed))
	})
	var raws []string
	for _, r := range deadLetters() {
		if r.Source != "plays" || r.Reason == "" || r.Line <= 0 {
			t.Errorf("dead letter %+v: want the source, a reason and the stream sequence", r)
		}
		raws = append(raws, r.Raw)
	}
	slices.Sort(raws)
	want := slices.Sorted(slices.Values(malformed))
	if !slices.Equal(raws, want) {
		t.Errorf("dead-lettered %q, want %q", raws, want)
	}
	if got := counterValue(t, e.Metrics.Rejected.WithLabelValues("plays")); got != float64(len(malformed)) {
		t.Errorf("rejected metric = %v, want %d", got, len(malformed))
	}

	// Events published while no consumer runs are waiting when it is back.
	if err := ing.Close(); err != nil {
		t.Fatal(err)
	}
	publish(100)
	ing, err = StartNATS(ctx, e, url, stream, []string{"plays"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ing.Close() })
	publish(50)
	waitFor(t, 10*time.Second, "the events published around a restart online", count)

	// A clean stop acks everything it applied: nothing is left to redeliver,
	// so nothing is counted twice.
	cons, err := js.Consumer(ctx, stream, "baton_plays")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the consumer to have nothing pending", func() (bool, string) {
		ci, err := cons.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return ci.NumPending == 0 && ci.NumAckPending == 0 && ci.NumRedelivered == 0,
			fmt.Sprintf("%d pending, %d unacked, %d redelivered", ci.NumPending, ci.NumAckPending, ci.NumRedelivered)
	})
	if ok, state := count(); !ok {
		t.Errorf("after the consumer drained: %s", state)
	}
	if got := counterValue(t, e.Metrics.Events.WithLabelValues("plays")); got != float64(sent) {
		t.Errorf("events metric = %v, want %d: events were applied twice", got, sent)
	}
	if err := ing.Err(); err != nil {
		t.Errorf("ingest error: %v", err)
	}
}

func TestStartNATSErrors(t *testing.T) {
	ctx := context.Background()
	e := NewEngine(playsTestCatalog(), t.TempDir(), NewMemory(), nil)
	t.Cleanup(func() { e.Close() })
	if _, err := StartNATS(ctx, e, "nats://127.0.0.1:4222", "s", []string{"nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown source: %v; want an error naming it", err)
	}
	if _, err := StartNATS(ctx, e, "nats://127.0.0.1:1", "s", []string{"plays"}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("dead server: %v; want an error naming its address", err)
	}
}
