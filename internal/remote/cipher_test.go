package remote_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmatool/vmatool/internal/remote/sshtest"
)

// TestCipherAndServerCPU: against OpenSSH the connection agrees on
// AES-128-GCM, x/crypto's first choice, which AES-NI makes the cheapest
// to seal and to open; and the stand-in server accounts the CPU time of
// the commands it ran once their connection has ended, which the deploy
// benchmarks report as the node's cost.
func TestCipherAndServerCPU(t *testing.T) {
	s := sshtest.Start(t)
	before, ok := s.CPU(5 * time.Second)
	if !ok {
		t.Fatal("no CPU time for a server without connections")
	}
	c := dial(t, s.Config())
	if got := c.Cipher(); got != "aes128-gcm@openssh.com" {
		t.Errorf("cipher %q, want aes128-gcm@openssh.com", got)
	}
	busy := []string{"sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"}
	start := time.Now()
	if err := c.Run(context.Background(), busy, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	if _, ok := s.CPU(100 * time.Millisecond); ok {
		t.Error("CPU answered while a connection was still open")
	}
	c.Close()
	after, ok := s.CPU(5 * time.Second)
	if !ok {
		t.Fatal("the connection's processes did not end")
	}
	// The loop keeps a core busy for most of its wall time; the clock
	// ticks are 10 ms.
	if used := after - before; used < wall/4 || used < 20*time.Millisecond {
		t.Errorf("server CPU went up by %v for a command that ran %v", used, wall)
	}
}
