package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/vmatool/vmatool/internal/remote"
	"github.com/vmatool/vmatool/vma"
)

// ViaSSHStream stores nothing on the node: the archive goes over SSH
// zstd-compressed into "zstd -dc | qmrestore - VMID", since qmrestore
// reads only an uncompressed VMA from standard input (qemu-server
// src/PVE/CLI/qmrestore.pm). The node needs SSH and zstd, which Proxmox
// VE installs (vzdump compresses with it).
const ViaSSHStream Via = "ssh-stream"

func init() {
	register(ViaSSHStream, pathInfo{
		needs: needs{ssh: true},
		open:  func(j *job) restorePath { return &streamPath{j: j} },
		plan: func(tp *TargetPlan, p *payload) {
			t := &tp.Target
			what := "send the archive " + p.src.Path
			switch {
			case p.pack != nil:
				what = "pack " + p.src.Path + " into a zstd-compressed archive"
			case p.src.Compression != vma.Zstd:
				what = fmt.Sprintf("recompress the archive %s (%s) with zstd", p.src.Path, p.src.Compression)
			}
			tp.Steps = append(tp.Steps, checkStep(t, "pvesh over SSH"), "check that the node has zstd",
				what+shareNote(tp)+" and stream it over SSH into: "+streamCommand(t))
			tp.Steps = append(tp.Steps, configureStep(t, p, "qm over SSH")...)
			tp.Steps = append(tp.Steps, renameSteps(tp)...)
			tp.Steps = append(tp.Steps, finishSteps(t, "qm over SSH")...)
		},
	})
}

// streamCommand is the remote pipeline.
func streamCommand(t *Target) string {
	return "zstd -dc | " + remote.ShellQuote(qmrestoreArgs(t, "-")...)
}

type streamPath struct{ j *job }

// prepare checks for zstd before anything is sent: without it the shell
// would hand qmrestore an empty stream, and qmrestore would leave an
// empty config behind.
func (s *streamPath) prepare(ctx context.Context) error {
	if err := s.j.ssh.Run(ctx, []string{"zstd", "--version"}, nil, io.Discard, io.Discard); err != nil {
		return fmt.Errorf("the node cannot run zstd, which --via ssh-stream decompresses with: %w", err)
	}
	return nil
}

// transfer does nothing: the data goes with the restore.
func (s *streamPath) transfer(ctx context.Context) error { return nil }

func (s *streamPath) restore(ctx context.Context) error {
	j := s.j
	cmd := streamCommand(j.t)
	return j.do(StepRestore, cmd, func() error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pr, wait := j.produce(ctx, vma.Zstd)
		stdout, stderr, withReason := j.restoreOutput()
		err := j.ssh.Run(ctx, []string{"sh", "-c", cmd}, sentCounter{pr, j}, stdout, stderr)
		if err != nil {
			cancel()
		}
		perr := wait()
		j.progress(true)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.TrimPrefix(cmd, "zstd -dc | "), j.qmrestoreOutcome(withReason(err)))
		}
		if perr != nil {
			// qmrestore succeeded on a stream that ended early, which the
			// VMA format's checks make impossible; report it all the same.
			j.created()
			return perr
		}
		j.created()
		return nil
	})
}

func (s *streamPath) finish(ctx context.Context) error { return s.j.finishVM(ctx) }

func (s *streamPath) cleanup(ctx context.Context) error { return nil }

// sentCounter counts the bytes handed to the connection.
type sentCounter struct {
	r io.Reader
	j *job
}

func (c sentCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.j.addSent(int64(n))
	return n, err
}
