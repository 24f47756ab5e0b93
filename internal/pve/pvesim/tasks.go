package pvesim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// task is a simulated worker. It reports "running" for s.taskPolls status
// polls, then calls finish for its exit status and last log lines, and
// done to apply its effect.
type task struct {
	upid, typ, id string
	pid, pstart   int
	start         time.Time
	pollsLeft     int
	log           []string
	stopped       bool
	exitStatus    string
	finish        func() (exitStatus string, log []string)
	done          func(ok bool)
}

// newTask is called with s.mu held.
func (s *Server) newTask(typ, id string) *task {
	s.nextPID++
	t := &task{typ: typ, id: id, pid: s.nextPID, pstart: 123456, start: time.Now(), pollsLeft: s.taskPolls}
	t.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:",
		s.Node, t.pid, t.pstart, t.start.Unix(), typ, id, s.TokenID)
	s.tasks[t.upid] = t
	return t
}

// advance moves t one poll on, stopping it when its polls are used up.
// Called with s.mu held.
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
	t.log = append(t.log, lines...)
	if exit == "OK" {
		t.log = append(t.log, "TASK OK")
	} else {
		t.log = append(t.log, "TASK ERROR: "+exit)
	}
	t.stopped, t.exitStatus = true, exit
	if t.done != nil {
		t.done(exit == "OK")
	}
}

func (s *Server) lookupTask(upid string) (*task, *apiError) {
	if !strings.HasPrefix(upid, "UPID:") {
		return nil, errorf(http.StatusInternalServerError, "unable to parse worker upid '%s'", upid)
	}
	t, ok := s.tasks[upid]
	if !ok {
		return nil, errorf(http.StatusInternalServerError, "no such task")
	}
	return t, nil
}

func (s *Server) taskStatus(upid string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.lookupTask(upid)
	if aerr != nil {
		return nil, aerr
	}
	s.advance(t)
	st := map[string]any{
		"upid": t.upid, "node": s.Node, "pid": t.pid, "pstart": t.pstart,
		"starttime": t.start.Unix(), "type": t.typ, "id": t.id, "user": s.TokenID,
		"status": "running",
	}
	if t.stopped {
		st["status"], st["exitstatus"] = "stopped", t.exitStatus
	}
	return st, nil
}

// taskLog pages through the log as the real endpoint does: start is a
// 0-based line offset, limit defaults to 50, total is the line count.
func (s *Server) taskLog(upid string, p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, aerr := s.lookupTask(upid)
	if aerr != nil {
		return nil, aerr
	}
	start, _ := strconv.Atoi(p.Get("start"))
	limit := 50
	if v := p.Get("limit"); v != "" {
		limit, _ = strconv.Atoi(v)
	}
	lines := []map[string]any{}
	for i := start; i < len(t.log) && i < start+limit; i++ {
		lines = append(lines, map[string]any{"n": i + 1, "t": t.log[i]})
	}
	return withTotal{data: lines, total: len(t.log)}, nil
}
