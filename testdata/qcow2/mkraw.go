//go:build ignore

// mkraw writes the raw disks the qcow2 fixtures are made from, with the
// same bytes every time:
//
//	go run mkraw.go small.raw odd.raw base2m.raw
//
// small.raw is 4 MiB: a little random data (it does not compress, and the
// fixtures are kept small), text, holes, written zeros and scattered
// sectors. odd.raw is small.raw plus 4608 bytes of text (an odd virtual
// size). base2m.raw is the first 2 MiB of small.raw, a backing file
// shorter than its overlay.
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

const (
	kiB = 1 << 10
	miB = 1 << 20
)

func main() {
	small := smallDisk()
	for _, name := range os.Args[1:] {
		var b []byte
		switch filepath.Base(name) {
		case "small.raw":
			b = small
		case "odd.raw":
			b = append(append([]byte{}, small...), text(4608, 99)...)
		case "base2m.raw":
			b = small[:2*miB]
		default:
			fmt.Fprintf(os.Stderr, "mkraw: unknown disk %s\n", name)
			os.Exit(2)
		}
		if err := os.WriteFile(name, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mkraw:", err)
			os.Exit(1)
		}
	}
}

// smallDisk lays out 4 MiB:
//
//	0-8K          random
//	8K-64K        text
//	64K-1M        hole
//	1M-1M+256K    text
//	1M+256K-1.5M  written zeros
//	1.5M-2M       512 random bytes at +8K of every 64 KiB
//	2M-3M         hole
//	3M-3M+4K      random
//	3M+4K-4M-4K   hole
//	4M-4K-4M      text
func smallDisk() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	d := make([]byte, 4*miB)
	random := func(off, n int) {
		for i := off; i < off+n; i++ {
			d[i] = byte(rng.Uint32())
		}
	}
	random(0, 8*kiB)
	copy(d[8*kiB:64*kiB], text(56*kiB, 1))
	copy(d[1*miB:], text(256*kiB, 2))
	for off := 3 * miB / 2; off < 2*miB; off += 64 * kiB {
		random(off+8*kiB, 512)
	}
	random(3*miB, 4*kiB)
	copy(d[4*miB-4*kiB:], text(4*kiB, 3))
	return d
}

// text is n bytes of numbered lines: compressible, and different for each
// seed.
func text(n, seed int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "%d/%06d: the quick brown fox jumps over the lazy dog\n", seed, i)
	}
	return b[:n]
}
