package deploy

import (
	"sync"
	"testing"
	"time"
)

// TestSchedulerAdmitsGroupsWhole: with room for four, two groups of four
// interleaved with single targets never hold slots half each (each
// group's archive waits for all its targets, so that would hang), and no
// more than four run at once.
func TestSchedulerAdmitsGroupsWhole(t *testing.T) {
	plan := &Plan{opts: Options{Parallel: 4}}
	group := []int{0, 1, -1, 0, 1, 0, -1, 1, 0, 1}
	for _, g := range group {
		tp := TargetPlan{}
		if g >= 0 {
			tp.share = &sharePlan{group: g}
		}
		plan.Targets = append(plan.Targets, tp)
	}
	s := newScheduler(plan)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	running, admitted := 0, map[int]int{}
	var wg sync.WaitGroup
	for i, g := range group {
		wg.Go(func() {
			done := s.enter(i)
			mu.Lock()
			running++
			if running > 4 {
				t.Errorf("%d targets run at once", running)
			}
			admitted[g]++
			cond.Broadcast()
			// A group's target waits for the whole group, as its archive
			// does; a deadline turns a hang into a failure.
			deadline := time.AfterFunc(10*time.Second, func() {
				mu.Lock()
				admitted[g] = 1 << 30
				cond.Broadcast()
				mu.Unlock()
			})
			for g >= 0 && admitted[g] < 4 {
				cond.Wait()
			}
			if admitted[g] >= 1<<30 {
				t.Errorf("target %d of group %d waited for its group in vain", i, g)
			}
			running--
			mu.Unlock()
			deadline.Stop()
			done()
		})
	}
	wg.Wait()
}
