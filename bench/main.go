// Command bench generates deterministic disk images and times vmatool
// against the tools people use today (cat, zstd, qemu-img, cp) on the same
// files, alternating runs so that a busy machine slows both sides alike.
//
//	go run ./bench -smoke                 # every row once on a tiny image
//	go run ./bench -size 1G -runs 5       # the comparison table
//	go run ./bench gen -size 1G -o img.raw
//
// See bench/README.md for what each row measures.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// errUsage is a command-line mistake whose explanation is already printed.
var errUsage = errors.New("usage error")

// config is the runner's flags, resolved.
type config struct {
	size       int64
	runs       int
	dir        string // parent of the per-run directory
	vmatool    string // binary under test; "" builds ./cmd/vmatool
	only       *regexp.Regexp
	smoke      bool
	keep       bool
	json       bool
	seed       uint64
	sparseSize int64 // pack-sparse row: hole size ...
	sparseData int64 // ... and the data inside it
	argv       []string
}

const runUsage = `Usage: go run ./bench [flags]
       go run ./bench gen -o FILE [gen flags]   (go run ./bench gen -h)

Times vmatool against reference commands on generated images, alternating
runs, and prints medians and ratios as a markdown table (or JSON).

`

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "gen" {
		err = runGen(os.Args[2:], os.Stderr)
	} else {
		err = runBench(os.Args[1:])
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	size := fs.String("size", "1G", "size of the mixed image: 64M, 1G, 64G, ...")
	runs := fs.Int("runs", 5, "timed runs of each command; medians are reported")
	dir := fs.String("dir", defaultDir(), "work directory; each harness run uses a fresh subdirectory")
	vmatool := fs.String("vmatool", "", "vmatool binary to test (default: go build ./cmd/vmatool into the work directory)")
	only := fs.String("only", "", "run only rows whose id or name matches this regexp")
	smoke := fs.Bool("smoke", false, "tiny images, one run, every row: checks that everything runs, never judges timing")
	keep := fs.Bool("keep", false, "keep the work directory and its files")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a markdown table")
	seed := fs.Uint64("seed", 1, "seed of the generated images")
	sparseSize := fs.String("sparse-size", "64G", "size of the sparse image of the pack-sparse row")
	sparseData := fs.String("sparse-data", "64M", "data inside that sparse image, and size of its dense twin")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return nil, errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *smoke {
		// Small enough to finish in seconds; flags given explicitly win.
		for name, v := range map[string]string{"size": "64M", "runs": "1", "sparse-size": "4G", "sparse-data": "16M"} {
			if !set[name] {
				fs.Set(name, v)
			}
		}
	}
	c := &config{runs: *runs, dir: *dir, vmatool: *vmatool, smoke: *smoke, keep: *keep, json: *asJSON, seed: *seed, argv: args}
	var err error
	if c.size, err = parseSize(*size); err != nil {
		return nil, err
	}
	if c.sparseSize, err = parseSize(*sparseSize); err != nil {
		return nil, err
	}
	if c.sparseData, err = parseSize(*sparseData); err != nil {
		return nil, err
	}
	if c.sparseData > c.sparseSize {
		return nil, fmt.Errorf("-sparse-data %s is larger than -sparse-size %s", *sparseData, *sparseSize)
	}
	if c.runs < 1 {
		return nil, fmt.Errorf("-runs must be at least 1")
	}
	if *only != "" {
		if c.only, err = regexp.Compile(*only); err != nil {
			return nil, fmt.Errorf("-only: %w", err)
		}
	}
	return c, nil
}

// defaultDir prefers tmpfs, so that timings measure the tools and not the
// disk, and nothing depends on the page cache.
func defaultDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm/vmatool-bench"
	}
	return filepath.Join(os.TempDir(), "vmatool-bench")
}
