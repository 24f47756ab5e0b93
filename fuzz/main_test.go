package fuzz

import (
	"flag"
	"os"
	"testing"
)

// minimizeTime is this package's default for -test.fuzzminimizetime (Go's
// is 60s). Go's minimiser tries O(n²) cuts of an n-byte input until it runs
// out of time, and neither a VMA archive (a 12 KiB fixed header under a
// checksum) nor a qcow2 image shrinks far, so every input that found new
// coverage held a worker for the whole minute; the executions made meanwhile
// were counted only when it returned, and a 60 s run ended first. Two
// seconds still cut the tail and most single bytes of a small input. A
// value given on the command line wins.
const minimizeTime = "2s"

func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		if err := flag.Set("test.fuzzminimizetime", minimizeTime); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
