package rec

import (
	"context"
	"runtime"
	"sync"
)

// TopNAll calls emit with the top n of every member the model knows, in
// member order (seen titles excluded, each in their market). Members are
// scored in parallel, blocks at a time (ALS as one matrix product per
// block); emit runs on the caller's goroutine. A panic scoring a member
// ends it with a *PanicError.
func (r *Recommender) TopNAll(ctx context.Context, n int, emit func(member string, items []Item) error) error {
	const block = 128
	workers := runtime.GOMAXPROCS(0)
	nu := len(r.b.Members)
	round := block * workers * 2
	results := make([][]Item, round)
	bs, batched := r.s.(batchScorer)
	var p panics
	for lo := 0; lo < nu; lo += round {
		hi := min(lo+round, nu)
		var wg sync.WaitGroup
		jobs := make(chan int)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nt := len(r.b.Titles)
				flat := make([]float32, block*nt)
				bufs := make([][]float32, block)
				for i := range bufs {
					bufs[i] = flat[i*nt : (i+1)*nt]
				}
				us := make([]int, 0, block)
				for start := range jobs {
					if p.failed() {
						continue // drained, so that the sender does not wait on a dead worker
					}
					func() {
						defer p.catch()
						us = us[:0]
						for u := start; u < min(start+block, hi); u++ {
							us = append(us, u)
						}
						if batched {
							bs.scoreBatch(r.b, us, flat)
						} else {
							for i, u := range us {
								r.s.scores(r.b, u, bufs[i])
							}
						}
						for i, u := range us {
							mk := r.b.marketOf(u, "")
							if r.b.cold(u) {
								copy(bufs[i], r.b.popRow(mk))
							}
							results[u-lo] = r.top(u, mk, bufs[i], Options{N: n})
						}
					}()
				}
			}()
		}
		for start := lo; start < hi; start += block {
			if ctx.Err() != nil || p.failed() {
				break
			}
			jobs <- start
		}
		close(jobs)
		wg.Wait()
		if err := p.err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for u := lo; u < hi; u++ {
			if err := emit(r.b.Members[u].ID, results[u-lo]); err != nil {
				return err
			}
			results[u-lo] = nil
		}
	}
	return nil
}
