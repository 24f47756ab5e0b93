//go:build !unix

package main

import "os"

// peakRSS is unknown where rusage is not available; the bound is then not checked.
func peakRSS(*os.ProcessState) int64 { return 0 }

func resetPeakRSS() {}
