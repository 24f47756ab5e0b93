package deploy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/vma"
)

// This file makes one archive serve several targets: NewPlan groups the
// targets that would send the same archive, and Run packs it once and
// streams it to each of them through a fanout buffer (fanout.go).
//
// Which targets share. A target's archive depends on three per-target
// values that Proxmox does not take from it:
//   - the VM ID, in the generated config's volume names and default name:
//     qmrestore takes the ID on its command line, and rewrites every drive
//     line that a #qmdump#map line names to the volume it allocates
//     (qemu-server src/PVE/QemuServer.pm restore_update_config_line);
//   - the storage, in drive, map and cloud-init lines: deploy always
//     passes --storage, which overrides the map lines' storage and the
//     cloud-init drive's (parse_backup_hints);
//   - the VM's name, which qmrestore does take from the archive, and which
//     it cannot override (only the API's restore takes config overrides;
//     qmrestore's options are storage, force, unique, pool, bwlimit,
//     live-restore, start, ha-managed).
// So targets share when the archives they would send are identical once
// those three are set aside: the same source, opened the same way (data
// file, backing), the same configs otherwise (memory, cores, network,
// tags, a config file...), the same compression and level, on a path
// that streams the archive over SSH (ViaSSH, ViaSSHStream). The archive is
// packed with the first such target's settings, and every other target
// whose VM would be named differently is renamed after its restore with
// "qm set VMID --name NAME" (StepRename). A restore from a shared archive
// thus makes the same VM as a restore from the target's own; only an
// archive kept on a node (KeepArchive) holds the first target's config.
//
// Sharing needs the targets to run at once and a place to spill to:
// none happens with Parallel 1 or without Options.TempDir, and a group
// holds at most min(Parallel, shareMax) targets. Run admits a group's
// targets together, and the archive starts once each of them has reached
// its transfer or given up (failed, or fell back to ViaImport), or
// shareGrace after the first reached it: a target still connecting then
// (a node that does not answer takes the SSH timeout) reads what it
// missed from the spill file. A target that fails later is dropped from
// the stream and the others go on.

// shareMax bounds a group. The ring costs the same for any number of
// targets, but each upload has buffers of its own: a deploy to 16 targets
// sharing an archive was measured within the 64 MiB one deploy keeps to
// (bench BenchmarkDeployFanoutRSS), and a larger group packs once more.
const shareMax = 16

// shareGrace is how long the targets that reached their transfer wait
// for the others of their group (a variable for tests).
var shareGrace = 10 * time.Second

// StepRename gives a VM restored from an archive shared with other
// targets the name its own config would have given it; it comes after
// the restore, before template or start.
const StepRename Step = "rename"

// sharePlan is a target's part in a shared archive.
type sharePlan struct {
	group int // the group's number in the plan
	// c and level are how the archive is compressed.
	c     vma.Compression
	level int
	names string // the group's targets, for plans
	size  int
	// packed says the archive is an image packed with the first target's
	// settings, not a source archive sent to all alike.
	packed bool
	// named is the name the archive's config gives the VM, rename the
	// one this target's VM gets after its restore ("": the same).
	named, rename string
}

// planShares groups the targets of p that send the same archive (see
// above) and updates their plans: shared targets list each other in
// Shares, show the archive's config (the first target's), and renamed
// ones get the rename step.
func planShares(p *Plan, src *Source) error {
	limit := min(p.opts.Parallel, shareMax)
	if limit < 2 || p.opts.TempDir == "" {
		return nil
	}
	var groups [][]int
	open := map[string]int{} // key: the group still taking targets
	formats := map[int]sharePlan{}
	for i := range p.Targets {
		tp := &p.Targets[i]
		if tp.Via != ViaSSH && tp.Via != ViaSSHStream {
			continue
		}
		key, c, level, err := shareKey(src, tp, p.opts)
		if err != nil {
			return err
		}
		formats[i] = sharePlan{c: c, level: level}
		g, ok := open[key]
		if !ok || len(groups[g]) == limit {
			g = len(groups)
			groups = append(groups, nil)
			open[key] = g
		}
		groups[g] = append(groups[g], i)
	}
	for g, members := range groups {
		if len(members) < 2 {
			continue
		}
		lead := &p.Targets[members[0]]
		var names []string
		for _, i := range members {
			names = append(names, p.Targets[i].Target.Name)
		}
		named := configName(lead.Config)
		for _, i := range members {
			tp := &p.Targets[i]
			sp := &sharePlan{group: g, c: formats[members[0]].c, level: formats[members[0]].level,
				names: strings.Join(names, ", "), size: len(members), packed: !src.Archive(), named: named}
			if own := configName(tp.Config); own != named {
				sp.rename = own
			}
			if err := replan(tp, src, p.opts, sp); err != nil {
				return err
			}
			tp.Shares, tp.Config = names, lead.Config
		}
	}
	return nil
}

// Packs is the most archives (or, for ViaImport, converted images) Run
// writes at once: Parallel, but the targets that share an archive run
// together and write one between them. A caller that sizes its memory
// limit by the pipelines at work counts this many.
func (p *Plan) Packs() int {
	var sizes []int
	groups := map[int]int{}
	for _, tp := range p.Targets {
		if tp.share == nil {
			sizes = append(sizes, 1)
			continue
		}
		if _, ok := groups[tp.share.group]; !ok {
			groups[tp.share.group] = len(sizes)
			sizes = append(sizes, 0)
		}
		sizes[groups[tp.share.group]]++
	}
	// The most units that fit in Parallel slots at once: smallest first.
	slices.Sort(sizes)
	n, used := 0, 0
	for _, s := range sizes {
		if used+s > p.opts.Parallel {
			break
		}
		n, used = n+1, used+s
	}
	return max(n, 1)
}

// shareKey identifies the archive a target sends, with the VM ID, the
// storage and the VM name set aside, and says how it is compressed.
func shareKey(src *Source, tp *TargetPlan, opts Options) (key string, c vma.Compression, level int, err error) {
	t := tp.Target
	t.VMID, t.Storage, t.VMName = recipe.DefaultVMID, DefaultStorage, ""
	pl, err := openPayload(src, &t, opts.Now, nil)
	if err != nil {
		return "", "", 0, err
	}
	defer pl.close()
	c, level = sendFormat(tp.Via, pl, t.Level)
	h := sha256.New()
	field := func(s string) {
		binary.Write(h, binary.BigEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	field(string(c))
	field(strconv.Itoa(level))
	field(src.Path)
	field(t.DataFile)
	field(strconv.FormatBool(t.NoBacking))
	if pl.pack != nil {
		for _, cfg := range pl.pack.Configs {
			field(cfg.Name)
			field(string(cfg.Data))
		}
		for _, d := range pl.pack.Devices {
			field(fmt.Sprintf("%s %s %s %s %d %v", d.Name, d.Key, d.Path, d.Format, d.Disk.Size(), d.Backing))
		}
	}
	return string(h.Sum(nil)), c, level, nil
}

// sendFormat is the compression and level of what via streams: an
// image packed with zstd; an archive as it is over ViaSSH, in zstd over
// ViaSSHStream; the level matters only when something is compressed.
func sendFormat(via Via, pl *payload, level int) (vma.Compression, int) {
	c := pl.sendCompression()
	if via == ViaSSHStream {
		c = vma.Zstd
	}
	if pl.pack == nil && c == pl.src.Compression {
		level = 0
	}
	return c, level
}

// configName is the value of a config's name line, "" if it has none.
func configName(conf string) string {
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "name:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// replan rewrites the steps the target's path planned, now that it
// shares: its plan function is run without and with sp, and the steps of
// the first run are replaced by those of the second wherever they sit
// among the target's steps (or, should they not be found, the new ones
// are added at the end).
func replan(tp *TargetPlan, src *Source, opts Options, sp *sharePlan) error {
	pl, err := openPayload(src, &tp.Target, opts.Now, nil)
	if err != nil {
		return err
	}
	defer pl.close()
	before, after := TargetPlan{Target: tp.Target, Via: tp.Via}, TargetPlan{Target: tp.Target, Via: tp.Via, share: sp}
	paths[tp.Via].plan(&before, pl)
	paths[tp.Via].plan(&after, pl)
	tp.share = sp
	for i := 0; i+len(before.Steps) <= len(tp.Steps); i++ {
		if slices.Equal(tp.Steps[i:i+len(before.Steps)], before.Steps) {
			tp.Steps = slices.Concat(tp.Steps[:i], after.Steps, tp.Steps[i+len(before.Steps):])
			return nil
		}
	}
	for _, s := range after.Steps {
		if !slices.Contains(before.Steps, s) {
			tp.Steps = append(tp.Steps, s)
		}
	}
	return nil
}

// shareNote is what a shared target's plan adds to the step that packs
// and sends the archive.
func shareNote(tp *TargetPlan) string {
	if tp.share == nil {
		return ""
	}
	note := fmt.Sprintf(" once for the %d targets that share it (%s)", tp.share.size, tp.share.names)
	if lead, _, _ := strings.Cut(tp.share.names, ", "); tp.share.packed && lead != tp.Target.Name {
		note += fmt.Sprintf(", with %s's config, whose disks qmrestore makes VM %d's on %s,", lead, tp.Target.VMID, tp.Target.Storage)
	}
	return note
}

// renameSteps is the plan's rename step, if the target's VM needs one.
func renameSteps(tp *TargetPlan) []string {
	if tp.share == nil || tp.share.rename == "" {
		return nil
	}
	return []string{fmt.Sprintf("name VM %d %s with qm set over SSH (the shared archive's config names it %s)",
		tp.Target.VMID, tp.share.rename, tp.share.named)}
}

// rename is StepRename, for a VM restored from a shared archive whose
// config names it otherwise.
func (j *job) rename(ctx context.Context) error {
	if j.share == nil || !j.share.fed || j.tp.share.rename == "" {
		return nil
	}
	args := []string{"qm", "set", strconv.Itoa(j.t.VMID), "--name", j.tp.share.rename}
	detail := fmt.Sprintf("%s (the shared archive's config names it %s)", strings.Join(args, " "), j.tp.share.named)
	return j.do(StepRename, detail, func() error {
		if err := j.ssh.Run(ctx, args, nil, io.Discard, io.Discard); err != nil {
			return fmt.Errorf("naming VM %d %s: %w", j.t.VMID, j.tp.share.rename, err)
		}
		return nil
	})
}

// scheduler admits Run's targets Parallel at a time, in the order they
// ask, and the targets of a group together: the group's archive waits
// for all of them, so all must be running.
type scheduler struct {
	mu       sync.Mutex
	cond     sync.Cond
	free     int
	unit     []int // each target's unit: its group, or itself alone
	size     []int
	queued   []bool
	admitted []bool
	queue    []int
}

func newScheduler(plan *Plan) *scheduler {
	s := &scheduler{free: plan.opts.Parallel}
	s.cond.L = &s.mu
	groups := map[int]int{}
	for _, tp := range plan.Targets {
		u := len(s.size)
		if tp.share != nil {
			if g, ok := groups[tp.share.group]; ok {
				u = g
			} else {
				groups[tp.share.group] = u
			}
		}
		if u == len(s.size) {
			s.size = append(s.size, 0)
		}
		s.size[u]++
		s.unit = append(s.unit, u)
	}
	s.queued = make([]bool, len(s.size))
	s.admitted = make([]bool, len(s.size))
	return s
}

// enter waits until target i may run, and returns what to call when it
// is done.
func (s *scheduler) enter(i int) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.unit[i]
	if !s.queued[u] {
		s.queued[u] = true
		s.queue = append(s.queue, u)
	}
	for !s.admitted[u] {
		// The head of the queue goes first, so a group is not passed over
		// by single targets for ever.
		for len(s.queue) > 0 && s.size[s.queue[0]] <= s.free {
			s.free -= s.size[s.queue[0]]
			s.admitted[s.queue[0]] = true
			s.queue = s.queue[1:]
			s.cond.Broadcast()
		}
		if !s.admitted[u] {
			s.cond.Wait()
		}
	}
	return func() {
		s.mu.Lock()
		s.free++
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// shareGroup is a shared archive under way.
type shareGroup struct {
	ctx   context.Context
	lead  *TargetPlan
	src   *Source
	opts  *Options
	c     vma.Compression
	level int
	buf   *fanout

	mu      sync.Mutex
	pending int    // members that have neither joined nor left
	joined  int    // members that joined
	started bool   // the archive writer runs
	feeding []*job // members reading, whose progress the writer reports
	refs    int    // members and writer not yet done with buf
}

// shareMember is a target's place in a group.
type shareMember struct {
	g      *shareGroup
	r      *fanoutReader
	joined bool
	left   bool
	// fed says the target restores from the shared archive.
	fed bool
}

// ringSize is the budget and chunk of a group's ring; tests shrink it to
// make a small image overflow it.
var ringSize = [2]int{shareBudget, shareChunk}

// testHookShared, if set, sees the buffer of a group and the payload its
// archive is written from, before it is written.
var testHookShared func(*fanout, *payload)

// newShares makes the groups of plan's shared targets, and returns each
// target's member (nil for a target that shares nothing).
func newShares(ctx context.Context, plan *Plan, src *Source) []*shareMember {
	members := make([]*shareMember, len(plan.Targets))
	groups := map[int]*shareGroup{}
	for i := range plan.Targets {
		tp := &plan.Targets[i]
		if tp.share == nil {
			continue
		}
		g := groups[tp.share.group]
		if g == nil {
			g = &shareGroup{ctx: ctx, lead: tp, src: src, opts: &plan.opts, c: tp.share.c, level: tp.share.level,
				buf: newFanout(ringSize[0], ringSize[1], plan.opts.TempDir)}
			groups[tp.share.group] = g
		}
		g.pending++
		g.refs++
		members[i] = &shareMember{g: g, r: g.buf.newReader()}
	}
	return members
}

// join makes the target a reader of the shared archive, compressed with
// c, and returns what produce returns. ok is false if the target cannot
// join (it already left, or wants another compression): it then sends
// its own archive.
func (m *shareMember) join(ctx context.Context, j *job, c vma.Compression) (r io.Reader, wait func() error, ok bool) {
	g := m.g
	if c != g.c {
		m.leave()
	}
	g.mu.Lock()
	if m.left || m.joined {
		g.mu.Unlock()
		return nil, nil, false
	}
	m.joined, m.fed = true, true
	g.pending--
	g.joined++
	g.feeding = append(g.feeding, j)
	start := g.startable()
	if g.joined == 1 && !start {
		time.AfterFunc(shareGrace, g.startLate)
	}
	g.mu.Unlock()
	if start {
		go g.write()
	}
	stop := context.AfterFunc(ctx, func() { m.r.CloseWithError(context.Cause(ctx)) })
	return m.r, func() error {
		stop()
		return m.finish(j)
	}, true
}

// startable says the writer may start now, and marks it started; call
// with g.mu held.
func (g *shareGroup) startable() bool {
	if g.started || g.pending > 0 || g.joined == 0 {
		return false
	}
	g.started = true
	g.refs++
	return true
}

// startLate starts the writer, if it has not started yet, without the
// targets still on their way.
func (g *shareGroup) startLate() {
	g.mu.Lock()
	start := !g.started
	if start {
		g.started = true
		g.refs++
	}
	g.mu.Unlock()
	if start {
		go g.write()
	}
}

// finish ends a joined target's reading: what the archive writer's end
// means for it, and a warning if it was served from the spill file.
func (m *shareMember) finish(j *job) error {
	eof, err, spilled := m.r.state()
	j.spilled.Store(spilled)
	if !eof && err == nil {
		err = errors.New("the node stopped reading the archive before its end")
	}
	m.r.Close()
	g := m.g
	// A target that read a little from the spill file lagged for a moment,
	// as any may on a loaded machine; one that read a tenth of the archive
	// there is slower than the others, and its disk use worth knowing.
	if eof && spilled > 0 && spilled*10 >= g.buf.stats().written {
		j.warn(fmt.Sprintf("fell behind the other targets sharing the archive: %s of its %s came from a spill file in %s",
			formatMiB(spilled), formatMiB(g.buf.stats().written), j.opts.TempDir))
	}
	g.mu.Lock()
	g.feeding = slices.DeleteFunc(g.feeding, func(o *job) bool { return o == j })
	g.mu.Unlock()
	g.release()
	if eof {
		return nil
	}
	return err
}

// leave takes a target that will not read the shared archive out of its
// group (it failed before its transfer, or takes another path), so that
// the archive does not wait for it. It does nothing once the target
// joined.
func (m *shareMember) leave() {
	if m == nil {
		return
	}
	g := m.g
	g.mu.Lock()
	if m.left || m.joined {
		g.mu.Unlock()
		return
	}
	m.left = true
	g.pending--
	start := g.startable()
	g.mu.Unlock()
	m.r.Close()
	if start {
		go g.write()
	}
	g.release()
}

// keep leaves the group unless via streams the shared archive: a target
// that fell back to ViaImport sends disk images of its own.
func (m *shareMember) keep(via Via) {
	if via != ViaSSH && via != ViaSSHStream {
		m.leave()
	}
}

// write packs the archive once, with the first target's settings, into
// the fanout buffer.
func (g *shareGroup) write() {
	defer g.release()
	pl, err := openPayload(g.src, &g.lead.Target, g.opts.Now, nil)
	if err == nil {
		if testHookShared != nil {
			testHookShared(g.buf, pl)
		}
		err = pl.writeArchive(g.ctx, g.buf, g.c, g.level, g)
		pl.close()
	}
	g.buf.CloseWrite(err)
}

// Update reports the source bytes the writer read to every target
// reading the archive: a shared archive is the vma.Progress of each.
func (g *shareGroup) Update(n int64) {
	g.mu.Lock()
	feeding := slices.Clone(g.feeding)
	g.mu.Unlock()
	for _, j := range feeding {
		j.Update(n)
	}
}

// release drops a reference to the buffer; the last frees its spill
// file.
func (g *shareGroup) release() {
	g.mu.Lock()
	g.refs--
	last := g.refs == 0
	g.mu.Unlock()
	if last {
		g.buf.Close()
	}
}
