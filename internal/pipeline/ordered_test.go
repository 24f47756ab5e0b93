package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

type testJob struct {
	seq  int
	buf  []byte
	hole bool
}

func jitter(seq int) {
	if seq%3 == 0 {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	}
}

func TestOrderedDeliversInOrder(t *testing.T) {
	for _, workers := range []int{1, 2, 7} {
		var working, peak atomic.Int64
		var got []int
		p := NewOrdered(context.Background(), Config{Workers: workers, InFlight: workers + 2},
			func(_ context.Context, v *testJob) error {
				n := working.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				jitter(v.seq)
				working.Add(-1)
				return nil
			},
			func(v *testJob) error {
				got = append(got, v.seq)
				return nil
			})
		allocs := 0
		for i := range 500 {
			j, err := p.Next()
			if err != nil {
				t.Fatal(err)
			}
			if j.V.buf == nil {
				j.V.buf = make([]byte, 16)
				allocs++
			}
			j.V.seq = i
			if i%5 == 0 {
				p.SubmitDone(j) // interleaved with worked jobs, still in order
			} else {
				p.Submit(j)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 500 {
			t.Fatalf("workers %d: delivered %d jobs, want 500", workers, len(got))
		}
		for i, s := range got {
			if s != i {
				t.Fatalf("workers %d: delivery %d was job %d", workers, i, s)
			}
		}
		if allocs > workers+2 {
			t.Errorf("workers %d: %d buffers allocated for 500 jobs, want at most InFlight=%d", workers, allocs, workers+2)
		}
		if peak.Load() > int64(workers) {
			t.Errorf("workers %d: %d jobs worked at once", workers, peak.Load())
		}
	}
}

func TestOrderedFirstErrorCancels(t *testing.T) {
	boom := errors.New("boom")
	var delivered, workedAfter atomic.Int64
	var failedAt atomic.Int64
	failedAt.Store(-1)
	p := NewOrdered(context.Background(), Config{Workers: 2},
		func(ctx context.Context, v *testJob) error {
			if v.seq == 10 {
				failedAt.Store(10)
				return boom
			}
			if failedAt.Load() >= 0 && v.seq > 20 {
				workedAfter.Add(1)
			}
			return nil
		},
		func(v *testJob) error {
			if v.seq >= 10 {
				t.Errorf("job %d delivered after job 10 failed", v.seq)
			}
			delivered.Add(1)
			return nil
		})
	var nextErr error
	for i := range 1000 {
		j, err := p.Next()
		if err != nil {
			nextErr = err
			break
		}
		j.V.seq = i
		p.Submit(j)
	}
	if !errors.Is(nextErr, boom) {
		t.Fatalf("Next after the failure: %v, want boom", nextErr)
	}
	if err := p.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: %v, want boom", err)
	}
	if delivered.Load() != 10 {
		t.Errorf("%d jobs delivered, want the 10 before the failure", delivered.Load())
	}
	if err := p.Close(); !errors.Is(err, boom) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOrderedDeliverErrorAndFail(t *testing.T) {
	sink := errors.New("disk full")
	p := NewOrdered(context.Background(), Config{Workers: 2},
		func(context.Context, *testJob) error { return nil },
		func(v *testJob) error {
			if v.seq == 3 {
				return sink
			}
			return nil
		})
	for i := 0; ; i++ {
		j, err := p.Next()
		if err != nil {
			if !errors.Is(err, sink) {
				t.Fatalf("Next: %v", err)
			}
			break
		}
		j.V.seq = i
		p.Submit(j)
	}
	if err := p.Close(); !errors.Is(err, sink) {
		t.Fatalf("Close: %v", err)
	}

	producer := errors.New("read error")
	p = NewOrdered(context.Background(), Config{Workers: 2},
		func(context.Context, *testJob) error { return nil },
		func(*testJob) error { return nil })
	j, _ := p.Next()
	p.Submit(j)
	p.Fail(producer)
	p.Fail(errors.New("later"))
	if err := p.Close(); !errors.Is(err, producer) {
		t.Fatalf("Close after Fail: %v", err)
	}
}

func TestOrderedContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	block := make(chan struct{})
	p := NewOrdered(ctx, Config{Workers: 1, InFlight: 2},
		func(ctx context.Context, v *testJob) error {
			<-block
			return nil
		},
		func(*testJob) error { return nil })
	for range 2 {
		j, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		p.Submit(j)
	}
	go func() { time.Sleep(10 * time.Millisecond); cancel(); close(block) }()
	if _, err := p.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with both jobs in flight and the context cancelled: %v", err)
	}
	if err := p.Close(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v", err)
	}
}

func TestForEach(t *testing.T) {
	out := make([]int, 1000)
	if err := ForEach(len(out), 4, func(i int) error { out[i] = i * 2; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if v != i*2 {
			t.Fatalf("out[%d] = %d", i, v)
		}
	}
	// The lowest failing index wins, whichever goroutine saw it first.
	for range 20 {
		err := ForEach(100, 4, func(i int) error {
			if i == 40 || i == 90 {
				jitter(i)
				return errors.New("bad " + string(rune('0'+i/10)))
			}
			return nil
		})
		if err == nil || err.Error() != "bad 4" {
			t.Fatalf("ForEach error %v, want the one of index 40", err)
		}
	}
	if err := ForEach(0, 4, func(int) error { t.Fatal("called"); return nil }); err != nil {
		t.Fatal(err)
	}
}
