package pvesim

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// task is a simulated worker. It reports "running" for s.taskPolls status
// polls, then calls finish, with s.mu held, for its exit status and log.
type task struct {
	upid, node, typ, id string
	pid, pstart         int
	start               time.Time
	pollsLeft           int
	log                 []string
	stopped             bool
	exitStatus          string
	finish              func() (exitStatus string, log []string)
}

// newTask is called with s.mu held. The UPID's user is the full token
// name, as pve-common's fork_worker writes it.
func (s *Server) newTask(node, typ, id string) *task {
	s.nextPID++
	t := &task{node: node, typ: typ, id: id, pid: s.nextPID, pstart: 123456, start: time.Now(), pollsLeft: s.taskPolls}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, t.pid, t.pstart, t.start.Unix(), typ, id, s.TokenID)
	s.tasks[t.upid] = t
	return t
}

// advance moves t one poll on, stopping it when its polls are used up.
// The last log line and the exit status follow pve-common
// src/PVE/RESTEnvironment.pm fork_worker: "TASK OK", or "TASK ERROR: " and
// the error with its newlines turned into spaces. Called with s.mu held.
func (s *Server) advance(t *task) {
	if t.stopped {
		return
	}
	if t.pollsLeft > 0 {
		t.pollsLeft--
		return
	}
	exit, lines := "OK", []string(nil)
	if t.finish != nil {
		exit, lines = t.finish()
	}
	exit = strings.ReplaceAll(strings.TrimRight(exit, "\n"), "\n", " ")
	t.log = append(t.log, lines...)
	if exit == "OK" {
		t.log = append(t.log, "TASK OK")
	} else {
		t.log = append(t.log, "TASK ERROR: "+exit)
	}
	t.stopped, t.exitStatus = true, exit
}

// lookupTask answers as pve-manager PVE/API2/Tasks.pm does for a UPID it
// cannot parse or does not know: 400 on the upid parameter.
func (s *Server) lookupTask(upid string) (*task, *apiError) {
	if f := strings.Split(upid, ":"); len(f) != 9 || f[0] != "UPID" {
		return nil, paramError("upid", "unable to parse worker upid")
	}
	t, ok := s.tasks[upid]
	if !ok {
		return nil, paramError("upid", "no such task")
	}
	return t, nil
}

// taskStatus follows pve-manager PVE/API2/Tasks.pm read_task_status: the
// UPID's fields, "user" without the token and "tokenid" beside it, and
// "exitstatus" only once stopped.
func (s *Server) taskStatus(upid string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.lookupTask(upid)
	if aerr != nil {
		return nil, aerr
	}
	s.advance(t)
	user, tokenid, _ := strings.Cut(s.TokenID, "!")
	st := map[string]any{
		"upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart,
		"starttime": t.start.Unix(), "type": t.typ, "id": t.id, "user": user, "tokenid": tokenid,
		"status": "running",
	}
	if t.stopped {
		st["status"], st["exitstatus"] = "stopped", t.exitStatus
	}
	return st, nil
}

// taskLog pages through the log as pve-manager PVE/API2/Tasks.pm
// read_task_log does with pve-common src/PVE/Tools.pm dump_logfile: start
// is a 0-based line offset, limit defaults to 50 and 0 means all, "total"
// counts every line, and an empty log reads as one line "no content".
func (s *Server) taskLog(upid string, p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.lookupTask(upid)
	if aerr != nil {
		return nil, aerr
	}
	start, limit := 0, 50
	for name, dst := range map[string]*int{"start": &start, "limit": &limit} {
		if v := p.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, paramError(name, "type check ('integer') failed - got '"+v+"'")
			}
			*dst = n
		}
	}
	log := t.log
	if len(log) == 0 {
		log = []string{"no content"}
	}
	lines := []map[string]any{}
	for i := start; i < len(log) && (limit == 0 || i < start+limit); i++ {
		lines = append(lines, map[string]any{"n": i + 1, "t": log[i]})
	}
	return withTotal{data: lines, total: len(log)}, nil
}

// TaskInfo is a task as a test sees it.
type TaskInfo struct {
	UPID       string
	Node       string
	Type       string
	ID         string
	Stopped    bool
	ExitStatus string
	Log        []string
}

// Tasks returns every task started so far, in no particular order.
func (s *Server) Tasks() []TaskInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TaskInfo
	for _, t := range s.tasks {
		out = append(out, TaskInfo{UPID: t.upid, Node: t.node, Type: t.typ, ID: t.id, Stopped: t.stopped,
			ExitStatus: t.exitStatus, Log: append([]string(nil), t.log...)})
	}
	return out
}
