package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmatool/vmatool/internal/recipe"
	"github.com/vmatool/vmatool/qcow2"
)

// recipeError makes a mistake in the disk arguments a usage error, and
// adds to an image that did not open the option that helps.
func recipeError(err error) error {
	var se *recipe.SpecError
	var de *recipe.DiskError
	switch {
	case errors.As(err, &se):
		return usageError{se.Msg}
	case errors.Is(err, qcow2.ErrBackingRefused):
		return fmt.Errorf("%w (--no-backing)", err)
	case errors.Is(err, recipe.ErrRawDataFile) && errors.As(err, &de):
		return fmt.Errorf("%s: --data-file is for qcow2 images", de.Path)
	case errors.Is(err, qcow2.ErrNoDataFile) && errors.As(err, &de):
		return fmt.Errorf("%w (name it with --data-file %s=PATH)", err, de.Path)
	}
	return err
}

// chainPrinter shows a backing chain on standard error.
func chainPrinter(s *streams) func(string) {
	return func(line string) { fmt.Fprintln(s.err, "vmatool: "+line) }
}

// dataFiles applies --data-file values, IMAGE=PATH or, with one disk, PATH.
func dataFiles(values []string, disks []recipe.Disk) error {
	paths := make([]string, len(disks))
	for i, d := range disks {
		paths[i] = d.Path
	}
	for _, v := range values {
		img, file, ok := strings.Cut(v, "=")
		if !ok {
			if len(disks) != 1 {
				return usagef("--data-file %q: with several disks, say which image it belongs to: IMAGE=PATH", v)
			}
			img, file = paths[0], v
		}
		if !slices.Contains(paths, img) {
			return usagef("--data-file %q: %s is not one of the disks", v, img)
		}
		for i := range disks {
			if disks[i].Path == img {
				disks[i].DataFile = file
			}
		}
	}
	return nil
}
