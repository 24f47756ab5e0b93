package main

// Outputs appear whole or not at all, and never replace anything without
// --force.
//
// A single output (pack, create) is written to a temporary file in the
// target's folder, then linked into place (renamed over the old file with
// --force): one system call, so the name holds either the old content or
// the complete new one. A set of outputs (unpack, extract) goes through an
// outputSet, described below.
//
// Temporary names are tempPrefix and random hex, and are created with
// O_EXCL or mkdir, so they never take an existing name. A set's staging
// folder is also chosen unlike every name of the set, so an archive whose
// config is named like one cannot collide with it.
//
// After a signal, main's watchdog gives the command a moment to stop on its
// own, then calls abortOutputs. A command stuck in a system call is still
// running then, so every output takes its own lock around each step of its
// commit, and the abort waits for the step in progress before undoing it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errExists is returned when an output exists and --force was not given.
var errExists = errors.New("already exists (use --force to overwrite)")

// errIsDir is returned when --force would replace a folder: it replaces
// files only.
var errIsDir = errors.New("is a directory (--force replaces files, never folders)")

// errAbandoned is returned by a commit that the watchdog undid meanwhile.
var errAbandoned = errors.New("output abandoned after an interrupt")

type outputState int

const (
	outputOpen outputState = iota
	outputCommitted
	outputAborted
)

// pending outputs: everything abortOutputs must undo.
var pending = struct {
	sync.Mutex
	outputs map[pendingOutput]bool
}{outputs: map[pendingOutput]bool{}}

type pendingOutput interface{ abort() }

func track(p pendingOutput) {
	pending.Lock()
	pending.outputs[p] = true
	pending.Unlock()
}

func untrack(p pendingOutput) {
	pending.Lock()
	delete(pending.outputs, p)
	pending.Unlock()
}

// abortOutputs undoes every output not yet committed. The registry's lock
// is not held while aborting: an output holds its own lock and then takes
// the registry's to untrack itself.
func abortOutputs() {
	pending.Lock()
	var ps []pendingOutput
	for p := range pending.outputs {
		ps = append(ps, p)
	}
	pending.Unlock()
	for _, p := range ps {
		p.abort()
	}
}

// tempPrefix starts every temporary name.
const tempPrefix = ".vmatool-"

// tempName returns a candidate temporary name; tests replace it to force a
// clash.
var tempName = func() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return tempPrefix + hex.EncodeToString(b[:])
}

// freshName makes a new entry in dir under a temporary name that is not in
// avoid; mk creates it at the path given and fails if it exists.
func freshName(dir string, avoid map[string]bool, mk func(path string) error) (string, error) {
	for range 100 {
		n := tempName()
		if avoid[n] {
			continue
		}
		p := filepath.Join(dir, n)
		err := mk(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			// The error names the temporary entry, which never came to
			// be: name the folder instead.
			var pe *fs.PathError
			if errors.As(err, &pe) && pe.Path == p {
				return "", &fs.PathError{Op: "create in", Path: dir, Err: pe.Err}
			}
			return "", err
		}
	}
	return "", fmt.Errorf("%s: no free temporary name", dir)
}

// testPause, if set, is called at each step of a commit. main sets it from
// VMATOOL_TEST_PAUSE, for tests only.
var testPause func(step string)

func pauseAt(step string) {
	if testPause != nil {
		testPause(step)
	}
}

// newTestPause stops the command at the commit step named by spec
// ("<step>" or "<step>:hang"): it prints "vmatool: test pause at <step>" to
// w, so a test knows where the command is and can signal it, then waits for
// the signal. With ":hang" it then keeps waiting, as a command stuck in a
// system call would, and it is the watchdog that cleans up.
func newTestPause(ctx context.Context, spec string, w io.Writer) func(string) {
	step, mode, _ := strings.Cut(spec, ":")
	return func(at string) {
		if at != step {
			return
		}
		fmt.Fprintf(w, "vmatool: test pause at %s\n", at)
		<-ctx.Done()
		if mode == "hang" {
			time.Sleep(time.Hour)
		}
	}
}

// syncFile makes f's data durable. A filesystem that cannot sync says so
// with EINVAL or ENOTSUP; there is nothing more to do there.
func syncFile(f *os.File) error {
	err := f.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}

// moveNoReplace renames from to to, but fails with errExists rather than
// replace an existing to. A hard link does that atomically; for folders and
// on filesystems without hard links it checks and then renames, which
// leaves a short race with other processes.
func moveNoReplace(from, to string) error {
	err := os.Link(from, to)
	if err == nil {
		if err := os.Remove(from); err != nil {
			os.Remove(to)
			return err
		}
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w", to, errExists)
	}
	if _, serr := os.Lstat(to); !errors.Is(serr, fs.ErrNotExist) {
		if serr == nil {
			return fmt.Errorf("%s: %w", to, errExists)
		}
		return serr
	}
	return os.Rename(from, to)
}

// outFile is one output written under a temporary name in its final
// folder and moved into place only by Commit.
type outFile struct {
	*os.File
	final string
	tmp   string
	force bool

	mu    sync.Mutex
	state outputState
}

// createOutput creates a temporary file beside final. It is open for
// reading too: a qcow2 writer reads back what it wrote early.
func createOutput(final string, force bool) (*outFile, error) {
	if err := checkParent(final); err != nil {
		return nil, err
	}
	if !force {
		if _, err := os.Lstat(final); err == nil {
			return nil, fmt.Errorf("%s: %w", final, errExists)
		}
	}
	var f *os.File
	avoid := map[string]bool{filepath.Base(final): true}
	tmp, err := freshName(filepath.Dir(final), avoid, func(p string) (err error) {
		f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		return err
	})
	if err != nil {
		return nil, err
	}
	rememberTemp(tmp, final)
	o := &outFile{File: f, final: final, tmp: tmp, force: force}
	track(o)
	return o, nil
}

// Commit makes the data durable and moves it to its final name. Without
// force it links rather than renames, so a file that appeared meanwhile is
// still never overwritten; with force the rename replaces the old file in
// one step. The folder is then synced, so the name survives a crash; an
// error from that sync means the output is in place but may not be durable.
func (o *outFile) Commit() error {
	o.mu.Lock()
	state := o.state
	o.mu.Unlock()
	switch state {
	case outputCommitted:
		return nil
	case outputAborted:
		return errAbandoned
	}
	// The sync can take long and runs without the lock: an abort meanwhile
	// removes the temporary file, and the move below then sees the abort.
	err := syncFile(o.File)
	if cerr := o.File.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		o.Abort()
		return fmt.Errorf("%s: %w", o.final, err)
	}
	pauseAt("file-staged")
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state == outputAborted {
		return errAbandoned
	}
	if o.force {
		err = os.Rename(o.tmp, o.final)
	} else {
		err = moveNoReplace(o.tmp, o.final)
	}
	if err != nil {
		o.abortLocked()
		return err
	}
	o.state = outputCommitted
	untrack(o)
	return syncDir(filepath.Dir(o.final))
}

// Abort removes the temporary file. It is safe after Commit.
func (o *outFile) Abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.abortLocked()
}

func (o *outFile) abort() { o.Abort() }

func (o *outFile) abortLocked() {
	if o.state != outputOpen {
		return
	}
	o.File.Close()
	os.Remove(o.tmp)
	o.state = outputAborted
	untrack(o)
}

// outputSet is a set of files (an archive's configs and disks) that appear
// in the folder dir together, or not at all.
//
// The files are written into a staging folder, made fresh under a
// temporary name, and everything is synced before the first rename, so the
// moves that follow are quick and cannot fail half-way for lack of space.
//
//   - If dir does not exist, it is created (with any missing parents, each
//     remembered) as an empty placeholder that reserves the name, the
//     staging folder is made beside it, and commit renames the staging
//     folder over the placeholder. One rename: dir is empty until it is
//     complete, and no other process can have claimed the name meanwhile
//     (a rename only replaces an empty folder).
//   - If dir exists, the staging folder is made inside it (so it is on the
//     same filesystem even when dir is a mount point), with new/ holding the
//     outputs and old/ what --force replaces. Commit checks every name
//     before touching any: without --force nothing may exist, with it no
//     name may be a folder. Then it moves each old entry into old/, moves
//     each output into place without replacing anything that appeared
//     meanwhile, syncs dir, and only then deletes the staging folder with
//     the old content.
//
// Every move is journaled. Up to the last move into place, a failure, a
// signal seen between moves, or the watchdog's abort moves everything back
// and removes the staging folder and every folder the command created, so
// dir is as it was. After the last move and the sync, the set is committed
// and a signal no longer undoes it.
//
// Limits: several names cannot change in one system call, so while an
// existing dir is committed another process may glimpse a mix of old and
// new names, for the time of a few renames. A process killed outright
// (SIGKILL, power loss) cannot undo its journal: a staging folder is left
// behind (dir/.vmatool-*/old/ then holds replaced files, which can be
// moved back by hand). If an undo step fails, the staging folder is kept
// for the same reason, and a warning names it.
type outputSet struct {
	dir     string
	force   bool
	fresh   bool     // dir did not exist: the staging folder replaces the placeholder
	stage   string   // staging folder
	newDir  string   // where outputs are written: stage, or stage/new
	oldDir  string   // stage/old, for replaced entries, if dir exists
	created []string // folders made for dir, outermost first; dir itself is last
	warn    io.Writer

	mu      sync.Mutex
	state   outputState
	names   []string
	files   []*os.File
	journal []move
}

// move is one rename in the journal of a commit.
type move struct{ from, to string }

// newOutputSet prepares the set of outputs names in dir. With mustBeNew,
// as for Proxmox's extract, dir must not exist and its parent must.
// Warnings about an undo that failed go to warn.
func newOutputSet(dir string, names []string, mustBeNew, force bool, warn io.Writer) (*outputSet, error) {
	dir = filepath.Clean(dir) // "out/" has its staging folder beside it, not inside
	s := &outputSet{dir: dir, force: force, warn: warn}
	st, err := os.Stat(dir)
	switch {
	case mustBeNew:
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("unable to create target directory %s: %w", dir, err)
		}
		s.created = []string{dir}
		s.fresh = true
	case err == nil && !st.IsDir():
		return nil, fmt.Errorf("%s: not a directory", dir)
	case err == nil:
		// Refuse before writing gigabytes; commit checks again.
		for _, n := range names {
			if _, err := s.existing(n); err != nil {
				return nil, err
			}
		}
	case errors.Is(err, fs.ErrNotExist):
		if s.created, err = mkdirTracked(dir); err != nil {
			return nil, err
		}
		s.fresh = true
	default:
		return nil, err
	}
	if s.fresh {
		s.stage, err = freshName(filepath.Dir(dir), nil, func(p string) error { return os.Mkdir(p, 0o755) })
		s.newDir = s.stage
	} else {
		avoid := map[string]bool{}
		for _, n := range names {
			avoid[n] = true
		}
		s.stage, err = freshName(dir, avoid, func(p string) error { return os.Mkdir(p, 0o700) })
		s.newDir, s.oldDir = filepath.Join(s.stage, "new"), filepath.Join(s.stage, "old")
		if err == nil {
			err = os.Mkdir(s.newDir, 0o755)
		}
		if err == nil {
			err = os.Mkdir(s.oldDir, 0o700)
		}
	}
	track(s)
	if err != nil {
		s.abort()
		return nil, err
	}
	rememberTemp(s.newDir, dir)
	if s.oldDir != "" {
		rememberTemp(s.oldDir, dir)
	}
	return s, nil
}

// mkdirTracked creates dir and any missing parents, and returns the
// folders it made, outermost first. dir itself must be new.
func mkdirTracked(dir string) ([]string, error) {
	var missing []string
	for p := filepath.Dir(filepath.Clean(dir)); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	var created []string
	undo := func() {
		for i := len(created) - 1; i >= 0; i-- {
			os.Remove(created[i])
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue // made meanwhile by someone else: not ours to remove
		}
		if err != nil {
			undo()
			return nil, err
		}
		created = append(created, missing[i])
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		undo()
		return nil, err
	}
	return append(created, dir), nil
}

// existing reports whether the existing dir has an entry named name for
// --force to move aside, and refuses one it must not replace: any entry
// without --force, a folder with it.
func (s *outputSet) existing(name string) (bool, error) {
	p := filepath.Join(s.dir, name)
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !s.force:
		return false, &outputConflict{name, fmt.Errorf("%s: %w", p, errExists)}
	case st.IsDir():
		return false, &outputConflict{name, fmt.Errorf("%s: %w", p, errIsDir)}
	}
	return true, nil
}

// outputConflict is an output of a set that cannot be written because of
// what is already there; name lets the caller say which entry of its
// input the output comes from.
type outputConflict struct {
	name string
	err  error
}

func (e *outputConflict) Error() string { return e.err.Error() }
func (e *outputConflict) Unwrap() error { return e.err }

// path is where the output name is being written.
func (s *outputSet) path(name string) string { return filepath.Join(s.newDir, name) }

// create creates the output name in the staging folder, open for reading
// and writing, as createOutput's.
func (s *outputSet) create(name string) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != outputOpen {
		return nil, errAbandoned
	}
	f, err := os.OpenFile(s.path(name), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	s.names = append(s.names, name)
	s.files = append(s.files, f)
	// Disks are written with gaps where the archive has zeros.
	if err := makeSparse(f); err != nil {
		return nil, err
	}
	return f, nil
}

// commit moves the set into place; see outputSet. On failure, or when ctx
// is canceled before the commit point, it undoes everything and returns
// the reason.
func (s *outputSet) commit(ctx context.Context) error {
	if err := s.step(ctx, func() error { return nil }); err != nil {
		return err
	}
	// The syncs can take long and run without the lock: an abort meanwhile
	// removes the staging folder, and the next step sees the abort.
	for i, f := range s.files {
		err := syncFile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			s.abort()
			return fmt.Errorf("%s: %w", filepath.Join(s.dir, s.names[i]), err)
		}
	}
	if err := syncDir(s.newDir); err != nil {
		s.abort()
		return err
	}
	pauseAt("staged")
	if s.fresh {
		err := s.step(ctx, func() error { return s.move(s.stage, s.dir, renameOverEmpty) })
		if err != nil {
			return err
		}
		// The new entries: dir in its parent, and each folder made for it.
		err = s.finish(func() error {
			for _, d := range s.created {
				if err := syncDir(filepath.Dir(d)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		pauseAt("committed")
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.cleanUp()
	}
	var replace []string
	err := s.step(ctx, func() error {
		for _, n := range s.names {
			found, err := s.existing(n)
			if err != nil {
				return err
			}
			if found {
				replace = append(replace, n)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, n := range replace {
		err := s.step(ctx, func() error {
			return s.move(filepath.Join(s.dir, n), filepath.Join(s.oldDir, n), moveNoReplace)
		})
		if err != nil {
			return err
		}
		pauseAt(fmt.Sprintf("aside-%d", i+1))
	}
	for i, n := range s.names {
		err := s.step(ctx, func() error {
			return s.move(s.path(n), filepath.Join(s.dir, n), moveNoReplace)
		})
		if err != nil {
			return err
		}
		pauseAt(fmt.Sprintf("movein-%d", i+1))
	}
	if err := s.finish(func() error { return syncDir(s.dir) }); err != nil {
		return err
	}
	pauseAt("committed")
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cleanUp(); err != nil {
		s.warnf("the outputs are complete, but the replaced files could not be removed: %v", err)
	}
	return nil
}

// step runs one change of a commit under the lock, unless the set was
// abandoned or ctx canceled. On failure it undoes the whole commit.
func (s *outputSet) step(ctx context.Context, do func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == outputAborted {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errAbandoned
	}
	err := ctx.Err()
	if err == nil {
		err = do()
	}
	if err != nil {
		s.rollback()
	}
	return err
}

// finish ends a commit whose moves are done: sync runs under the lock and
// ignores a signal, as the set is complete; only its failure undoes the
// commit.
func (s *outputSet) finish(sync func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == outputAborted {
		return errAbandoned
	}
	if err := sync(); err != nil {
		s.rollback()
		return err
	}
	s.state = outputCommitted
	return nil
}

// cleanUp ends a committed set: it deletes what --force replaced, and the
// set no longer needs the watchdog.
func (s *outputSet) cleanUp() error {
	var err error
	if !s.fresh {
		err = os.RemoveAll(s.stage)
	}
	untrack(s)
	return err
}

// move renames from to to with rename, and journals it.
func (s *outputSet) move(from, to string, rename func(from, to string) error) error {
	if err := rename(from, to); err != nil {
		return err
	}
	s.journal = append(s.journal, move{from, to})
	return nil
}

// abort undoes everything not yet committed. It is safe after commit, and
// concurrently with it (from the watchdog).
func (s *outputSet) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case outputOpen:
		s.rollback()
	case outputCommitted:
		s.cleanUp() // commit was stopped before it removed the replaced files
	}
}

// rollback undoes the journal, newest move first, then removes the staging
// folder and the folders made for dir. Moves back never replace anything:
// if one fails, the staging folder may hold a user's file and is kept.
// The lock is held.
func (s *outputSet) rollback() {
	for _, f := range s.files {
		f.Close()
	}
	kept := false
	for i := len(s.journal) - 1; i >= 0; i-- {
		m := s.journal[i]
		if err := moveNoReplace(m.to, m.from); err != nil {
			s.warnf("undoing the move of %s to %s: %v", m.from, m.to, err)
			kept = true
		}
	}
	s.journal = nil
	if kept {
		s.warnf("left %s in place: it may hold files that could not be moved back", s.stage)
	} else {
		os.RemoveAll(s.stage)
	}
	for i := len(s.created) - 1; i >= 0; i-- {
		os.Remove(s.created[i]) // only empty folders go: never a user's files
	}
	s.state = outputAborted
	untrack(s)
}

func (s *outputSet) warnf(format string, args ...any) {
	if s.warn != nil {
		fmt.Fprintf(s.warn, "vmatool: warning: "+format+"\n", args...)
	}
}
