package pipeline

import (
	"sync"
	"sync/atomic"
)

// ForEach calls fn(i) for every i in [0, n) on up to workers goroutines,
// the calling one included, so a batch of one starts no goroutine. Work
// stops being handed out after the first failure, and the error of the
// lowest failing index is returned: the one a serial loop would report.
func ForEach(n, workers int, fn func(i int) error) error {
	if n <= 0 {
		return nil
	}
	var (
		next     atomic.Int64
		failed   atomic.Bool
		mu       sync.Mutex
		firstIdx = n
		firstErr error
	)
	run := func() {
		for !failed.Load() {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if err := fn(i); err != nil {
				mu.Lock()
				if i < firstIdx {
					firstIdx, firstErr = i, err
				}
				mu.Unlock()
				failed.Store(true)
			}
		}
	}
	var wg sync.WaitGroup
	for range min(max(workers, 1), n) - 1 {
		wg.Go(run)
	}
	run()
	wg.Wait()
	return firstErr
}
