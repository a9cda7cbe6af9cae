package search

import (
	"context"
	"runtime"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/fault"
)

// BenchOptions size RunBench.
type BenchOptions struct {
	Titles  int // default 10,000
	Queries int // timed queries; default 2,000
	N       int // hits per answer; default 20
	Seed    uint64
}

// BenchResult is what RunBench measured: the index build, the training,
// and each query's latency (retrieval of DefaultCandidates + re-rank).
type BenchResult struct {
	Titles  int           `json:"titles"`
	Queries int           `json:"queries"`
	Index   time.Duration `json:"index_ns"`
	Train   time.Duration `json:"train_ns"`
	P50     time.Duration `json:"p50_ns"`
	P99     time.Duration `json:"p99_ns"`
	Max     time.Duration `json:"max_ns"`
	// CPU is the process's CPU time (user + system, garbage collection
	// included) per query: on a shared machine, what a query costs when
	// wall-clock latency is mostly waiting for a core.
	CPU time.Duration `json:"cpu_per_query_ns"`
	// CPUP50 and CPUP99 are quantiles of the querying thread's own CPU
	// time per query (the goroutine is locked to its thread): the
	// latency without the waits for a core that a loaded machine adds.
	CPUP50    time.Duration `json:"thread_cpu_p50_ns"`
	CPUP99    time.Duration `json:"thread_cpu_p99_ns"`
	Reranked  int           `json:"reranked"`
	MRRBM25   float64       `json:"mrr_bm25"`
	MRRRerank float64       `json:"mrr_rerank"`
}

// RunBench indexes a synthetic catalog in memory, trains the re-ranker on
// its click log and times queries one after another (vocabulary words
// drawn as the click log draws them, members in turn).
func RunBench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	if o.Titles == 0 {
		o.Titles = 10000
	}
	if o.Queries == 0 {
		o.Queries = 2000
	}
	if o.N == 0 {
		o.N = 20
	}
	if o.Titles < 10 || o.Queries < 1 || o.N < 1 {
		return BenchResult{}, fault.Invalidf("bench", "titles %d (≥ 10), queries %d and n %d (≥ 1)", o.Titles, o.Queries, o.N)
	}
	members := max(10, o.Titles/5)
	s := Synthesize(SynthOptions{Titles: o.Titles, Members: members, Sessions: 2 * members, Seed: o.Seed})
	r := BenchResult{Titles: o.Titles, Queries: o.Queries}
	t0 := time.Now()
	ix, err := NewIndex(ctx, s.Titles, "")
	if err != nil {
		return r, err
	}
	defer ix.Close()
	r.Index = time.Since(t0)
	t0 = time.Now()
	m, err := Train(ctx, ix, s.Interactions, s.Clicks, TrainOptions{})
	if err != nil {
		return r, err
	}
	r.Train = time.Since(t0)
	r.MRRBM25, r.MRRRerank = m.Metrics.MRRBM25, m.Metrics.MRRRerank
	srch, err := NewSearcher(ix, m, 0)
	if err != nil {
		return r, err
	}
	lat := make([]time.Duration, o.Queries)
	tcpu := make([]time.Duration, o.Queries)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := cpuTime()
	for i := range o.Queries {
		// The click log's queries: the same Zipf over words.
		q := s.Clicks[(i*7919)%len(s.Clicks)].Query
		c0 := threadCPU()
		t0 := time.Now()
		hits, err := srch.Search(ctx, q, memberID(i%members), o.N)
		lat[i] = time.Since(t0)
		tcpu[i] = threadCPU() - c0
		if err != nil {
			return r, err
		}
		if len(hits) > 0 && hits[0].Path == PathRerank {
			r.Reranked++
		}
	}
	r.CPU = (cpuTime() - cpu0) / time.Duration(o.Queries)
	slices.Sort(lat)
	r.P50 = lat[len(lat)/2]
	r.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	r.Max = lat[len(lat)-1]
	slices.Sort(tcpu)
	r.CPUP50 = tcpu[len(tcpu)/2]
	r.CPUP99 = tcpu[min(len(tcpu)-1, len(tcpu)*99/100)]
	return r, nil
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threadCPU is the calling thread's CPU time (0 if unavailable).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
