package deploy

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// ViaSSH uploads the archive over SSH into the node's dump folder and
// restores it with qmrestore. The node needs SSH for root (or a user who
// may run qmrestore and qm) and room for the archive in DumpDir.
const ViaSSH Via = "ssh"

func init() {
	register(ViaSSH, pathInfo{
		needs:        needs{ssh: true},
		keepsArchive: true,
		open:         func(j *job) restorePath { return &sshPath{j: j} },
		plan: func(tp *TargetPlan, p *payload) {
			t := &tp.Target
			name := p.archiveName(p.sendCompression())
			remote := path.Join(t.DumpDir, name)
			tp.Archive = name
			tp.Steps = append(tp.Steps, checkStep(t, "pvesh over SSH"),
				fmt.Sprintf("%s%s and upload it over SSH to %s (as .part, renamed when complete)", sendWhat(p), shareNote(tp), remote),
				"run "+strings.Join(qmrestoreArgs(t, remote), " "))
			tp.Steps = append(tp.Steps, configureStep(t, p, "qm over SSH")...)
			tp.Steps = append(tp.Steps, renameSteps(tp)...)
			tp.Steps = append(tp.Steps, finishSteps(t, "qm over SSH")...)
			if !t.KeepArchive {
				tp.Steps = append(tp.Steps, "delete the archive")
			}
		},
	})
}

// sendWhat says what goes out: a packed image or the archive itself.
func sendWhat(p *payload) string {
	if p.pack != nil {
		return "pack " + p.src.Path + " into a zstd-compressed archive"
	}
	return "send the archive " + p.src.Path
}

type sshPath struct {
	j        *job
	remote   string
	uploaded bool
	restored bool
}

func (s *sshPath) prepare(ctx context.Context) error { return nil }

func (s *sshPath) transfer(ctx context.Context) error {
	j := s.j
	c := j.pl.sendCompression()
	name := j.pl.archiveName(c)
	s.remote = path.Join(j.t.DumpDir, name)
	return j.do(StepTransfer, "upload "+s.remote, func() error {
		err := j.uploadArchive(ctx, j.t.DumpDir, name, c)
		s.uploaded = err == nil
		return err
	})
}

func (s *sshPath) restore(ctx context.Context) error {
	j := s.j
	args := qmrestoreArgs(j.t, s.remote)
	return j.do(StepRestore, strings.Join(args, " "), func() error {
		stdout, stderr, withReason := j.restoreOutput()
		if err := j.ssh.Run(ctx, args, nil, stdout, stderr); err != nil {
			err = j.qmrestoreOutcome(withReason(err))
			if j.touched {
				err = fmt.Errorf("%w (the archive stays at %s for inspection)", err, s.remote)
			}
			return err
		}
		j.created()
		s.restored = true
		return nil
	})
}

func (s *sshPath) finish(ctx context.Context) error { return s.j.finishVM(ctx) }

// cleanup deletes the archive, unless it is to be kept or a restore
// failed on it, which leaves it for inspection.
func (s *sshPath) cleanup(ctx context.Context) error {
	j := s.j
	switch {
	case !s.uploaded:
		return nil
	case j.t.KeepArchive, j.touched && !s.restored:
		j.archive = s.remote
		return nil
	}
	return j.do(StepCleanup, "delete "+s.remote, func() error { return j.ssh.Remove(ctx, s.remote) })
}
