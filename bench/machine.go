package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// machine records what the numbers were measured on. Load averages at the
// start and end tell a reader how much other work shared the cores.
type machine struct {
	Cores      int               `json:"cores"`
	GOMAXPROCS int               `json:"gomaxprocs"`
	CPU        string            `json:"cpu,omitempty"`
	OS         string            `json:"os"`
	Kernel     string            `json:"kernel,omitempty"`
	Go         string            `json:"go"`
	VMATool    string            `json:"vmatool_revision,omitempty"`
	Tools      map[string]string `json:"tools"`
	LoadStart  string            `json:"load_average_start,omitempty"`
	LoadEnd    string            `json:"load_average_end,omitempty"`
}

func probeMachine() machine {
	m := machine{
		Cores:      runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPU:        cpuModel(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		Kernel:     readTrimmed("/proc/sys/kernel/osrelease"),
		Go:         runtime.Version(),
		Tools:      map[string]string{},
		LoadStart:  loadAverage(),
	}
	for tool, args := range map[string][]string{"qemu-img": {"--version"}, "zstd": {"--version"}} {
		if out, err := exec.Command(tool, args...).Output(); err == nil {
			// zstd decorates its banner: "*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***".
			m.Tools[tool] = strings.Trim(firstLine(string(out)), "* ")
		} else {
			m.Tools[tool] = "not installed"
		}
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// loadAverage is the 1, 5 and 15 minute load from /proc/loadavg.
func loadAverage() string {
	f := strings.Fields(readTrimmed("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// vmatoolRevision names the commit the binary was built from, marked
// "+changes" when the checkout differs from it, as it usually will while
// people work in it.
func vmatoolRevision() string {
	rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(rev))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		s += "+changes"
	}
	return s
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
