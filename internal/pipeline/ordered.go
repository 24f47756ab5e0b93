package pipeline

import (
	"context"
	"sync"
)

// Job is one unit of work travelling through an Ordered pipeline. V is the
// caller's state; it is kept when the job returns to the free list, so
// buffers held in V are reused by later jobs instead of reallocated.
type Job[T any] struct {
	V    T
	err  error
	done chan struct{} // capacity 1: a worker signals, the deliverer waits
}

// Ordered runs Work on submitted jobs on several goroutines and passes the
// jobs to Deliver one at a time in submission order. At most InFlight jobs
// exist, which bounds memory to InFlight times what one job holds.
//
// One goroutine submits (Next, Submit, SubmitDone, Close); Deliver runs on
// a goroutine of its own, never concurrently with itself. The first error
// from Work, Deliver or Fail cancels the pipeline: later Next calls return
// it, jobs not yet worked on are skipped, and Close reports it.
type Ordered[T any] struct {
	work    func(ctx context.Context, v *T) error
	deliver func(v *T) error

	ctx    context.Context
	cancel context.CancelFunc
	free   chan *Job[T]
	todo   chan *Job[T]
	order  chan *Job[T]

	workers   sync.WaitGroup
	delivered chan struct{}

	mu     sync.Mutex
	err    error
	closed bool
}

// Config sizes an Ordered pipeline.
type Config struct {
	// Workers is the number of goroutines running Work; below 1 means 1.
	Workers int
	// InFlight is the number of jobs that exist at once (being filled,
	// worked on, waiting for their turn, or being delivered); below
	// Workers+1 means Workers+1, enough to keep every worker busy while
	// the producer fills the next job.
	InFlight int
}

// NewOrdered starts the workers and the deliverer. work may be nil for a
// pipeline whose jobs are all submitted with SubmitDone. ctx cancels the
// pipeline from outside; its error is then reported by Next and Close.
func NewOrdered[T any](ctx context.Context, cfg Config, work func(ctx context.Context, v *T) error, deliver func(v *T) error) *Ordered[T] {
	workers := max(cfg.Workers, 1)
	inFlight := max(cfg.InFlight, workers+1)
	ctx, cancel := context.WithCancel(ctx)
	p := &Ordered[T]{
		work: work, deliver: deliver,
		ctx: ctx, cancel: cancel,
		free:      make(chan *Job[T], inFlight),
		todo:      make(chan *Job[T], inFlight),
		order:     make(chan *Job[T], inFlight),
		delivered: make(chan struct{}),
	}
	for range inFlight {
		p.free <- &Job[T]{done: make(chan struct{}, 1)}
	}
	for range workers {
		p.workers.Add(1)
		go p.runWorker()
	}
	go p.runDeliverer()
	return p
}

func (p *Ordered[T]) runWorker() {
	defer p.workers.Done()
	for j := range p.todo {
		if err := p.ctx.Err(); err != nil {
			j.err = err
		} else {
			j.err = p.work(p.ctx, &j.V)
		}
		j.done <- struct{}{}
	}
}

func (p *Ordered[T]) runDeliverer() {
	defer close(p.delivered)
	for j := range p.order {
		<-j.done
		err := j.err
		if err == nil && p.Err() == nil {
			err = p.deliver(&j.V)
		}
		if err != nil {
			p.Fail(err)
		}
		j.err = nil
		p.free <- j
	}
}

// Next returns a free job to fill, waiting while InFlight jobs exist. It
// fails once the pipeline has failed or its context is done.
func (p *Ordered[T]) Next() (*Job[T], error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	select {
	case j := <-p.free:
		if err := p.Err(); err != nil {
			p.free <- j
			return nil, err
		}
		return j, nil
	case <-p.ctx.Done():
		p.Fail(p.ctx.Err())
		return nil, p.Err()
	}
}

// Submit hands j, from Next, to the workers.
func (p *Ordered[T]) Submit(j *Job[T]) {
	p.order <- j
	p.todo <- j
}

// SubmitDone queues j, from Next, for delivery without Work: for jobs the
// producer could complete itself (a run of holes needs no reading), which
// saves a round trip through a worker while keeping their place in order.
func (p *Ordered[T]) SubmitDone(j *Job[T]) {
	j.done <- struct{}{}
	p.order <- j
}

// Fail cancels the pipeline with err unless it already failed; a producer
// calls it when it cannot make the next job.
func (p *Ordered[T]) Fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.cancel()
}

// Err returns the first failure, or nil.
func (p *Ordered[T]) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close waits until every submitted job has been delivered or skipped and
// returns the first failure. A second Close returns the same result.
func (p *Ordered[T]) Close() error {
	p.mu.Lock()
	closed := p.closed
	p.closed = true
	p.mu.Unlock()
	if !closed {
		close(p.todo)
		close(p.order)
		p.workers.Wait()
		<-p.delivered
		p.cancel()
	}
	return p.Err()
}

// Budgeted sizes a pipeline from a memory budget rather than from the core
// count alone: each job in flight holds perJob bytes, so at most
// budget/perJob jobs exist (never fewer than two, so that filling one job
// overlaps working on another), and no more workers run than can have a
// job. Memory then stays flat however many cores the machine has.
func Budgeted(budget, perJob int64, workers int) Config {
	inFlight := int(max(budget/max(perJob, 1), 2))
	workers = max(min(workers, inFlight-1), 1)
	return Config{Workers: workers, InFlight: min(inFlight, workers+1)}
}
