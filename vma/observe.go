package vma

import "fmt"

// OnCluster makes the reader call f for every cluster entry it reads, in
// archive order, as soon as the entry has passed its checks: those of
// skipped devices (SkipDevice, or devices without an Extract target)
// included, as they still pass through the stream. The Cluster has no
// Data. f runs on the goroutine that reads the stream, which for Extract
// may not be the caller's, and must return quickly. It lets a caller report
// progress in its own terms, such as Proxmox's "vma -v" figures, which
// count clusters and zero blocks. It must be called before the first Next.
func (r *Reader) OnCluster(f func(Cluster)) error {
	if r.started {
		return fmt.Errorf("vma: OnCluster after Next: %w", ErrOrder)
	}
	r.watch = f
	return nil
}

func (r *Reader) notify(id uint8, c uint32, mask uint16) {
	if r.watch != nil {
		r.watch(Cluster{Device: int(id), Index: c, Mask: mask})
	}
}

// OnCluster makes the writer call f for every cluster it adds to the
// archive, in archive order, with the mask of the blocks it stores (the
// Cluster has no Data). For WriteDisk it runs on the goroutine that
// assembles the output, and must return quickly. It lets a caller report
// progress per cluster, as "vma create -v" does. It must be called before
// the first cluster is written.
func (w *Writer) OnCluster(f func(Cluster)) error {
	if err := w.setupCheck(); err != nil {
		return err
	}
	w.watch = f
	return nil
}

func (w *Writer) notify(id int, c uint32, mask uint16) {
	if w.watch != nil {
		w.watch(Cluster{Device: id, Index: c, Mask: mask})
	}
}
