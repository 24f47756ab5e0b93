package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

const genUsage = `Usage: go run ./bench gen -o FILE [-size 1G] [-kind mixed] [-seed 1] [-data 64M] [-qcow2=true]

Writes a deterministic disk image: the same flags give the same bytes.
Kinds: mixed (30%% random, 35%% text, 10%% written zeros, 25%% holes, in
1 MiB runs), dense (mixed without holes), sparse (all hole), sparse-data
(a hole of -size holding -data bytes of dense data in a few places).
With qemu-img installed it also writes FILE's base name .qcow2 (zlib, -c)
and -plain.qcow2 (uncompressed).

`

// runGen is the gen subcommand.
func runGen(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, genUsage)
		fs.PrintDefaults()
	}
	size := fs.String("size", "1G", "image size: 64M, 1G, 64G, ...")
	kind := fs.String("kind", kindMixed, "image kind: "+strings.Join(imageKinds, ", "))
	seed := fs.Uint64("seed", 1, "RNG seed")
	data := fs.String("data", "64M", "sparse-data: bytes of data inside the hole")
	out := fs.String("o", "", "output file (required)")
	withQcow2 := fs.Bool("qcow2", true, "also write zlib and plain qcow2 copies when qemu-img is installed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	spec := genSpec{Kind: *kind, Seed: *seed}
	var err error
	if spec.Size, err = parseSize(*size); err != nil {
		return err
	}
	if spec.Kind == kindSparseData {
		if spec.Data, err = parseSize(*data); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := generate(*out, spec); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: %s %s, %s allocated, in %s\n", *out, formatBytes(spec.Size), spec.Kind,
		formatBytes(allocatedBytes(*out)), time.Since(start).Round(time.Millisecond))
	if !*withQcow2 {
		return nil
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		fmt.Fprintln(stderr, "qemu-img not installed: no qcow2 copies")
		return nil
	}
	zlib, plain := qcow2Paths(*out)
	if zlib == *out || plain == *out {
		return fmt.Errorf("-o %s: the qcow2 copies would overwrite it; name the raw image .raw or use -qcow2=false", *out)
	}
	for _, q := range []struct {
		path       string
		compressed bool
	}{{zlib, true}, {plain, false}} {
		start := time.Now()
		if err := makeQcow2(*out, q.path, q.compressed); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s: %s, in %s\n", q.path, formatBytes(fileSize(q.path)), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
