package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// field is a piece of a status line. When the line is too wide, the
// field with the lowest keep goes first.
type field struct {
	text string
	keep int
}

// What stays longest on a narrow terminal: the step, then the
// percentage, the node's own restore progress, the rate, the ETA, the
// bytes done, the total, the bytes sent.
const (
	keepSent = 1 + iota
	keepTotal
	keepDone
	keepETA
	keepRate
	keepRestore
	keepPercent
	keepStep
)

// minLabel is the fewest characters a label is shortened to before the
// most important fields go.
const minLabel = 8

// fit makes the line label and fields into at most width-1 characters
// (the last column stays free: a character there leaves many terminals
// about to wrap). First fields below keepPercent go, lowest keep first
// and, among equals, the rightmost; then the label is shortened with
// "…", down to minLabel; then the other fields go; and what is still
// too long is cut. Characters are counted as runes, one column each.
func fit(label string, fields []field, width int) string {
	limit := width - 1
	fs := slices.Clone(fields)
	drop := func(below int) bool {
		i := -1
		for j, f := range fs {
			if f.keep < below && (i < 0 || f.keep <= fs[i].keep) {
				i = j
			}
		}
		if i < 0 {
			return false
		}
		fs = slices.Delete(fs, i, i+1)
		return true
	}
	for utf8.RuneCountInString(join(label, fs)) > limit && drop(keepPercent) {
	}
	for {
		line := join(label, fs)
		over := utf8.RuneCountInString(line) - limit
		if over <= 0 {
			return line
		}
		if room := utf8.RuneCountInString(label) - over; room >= minLabel {
			return join(shorten(label, room), fs)
		}
		if !drop(math.MaxInt) {
			return shorten(line, limit)
		}
	}
}

// join is a status line as it reads unfitted.
func join(label string, fields []field) string {
	parts := make([]string, 0, len(fields)+1)
	if label != "" {
		parts = append(parts, label)
	}
	for _, f := range fields {
		parts = append(parts, f.text)
	}
	return strings.Join(parts, " ")
}

// shorten cuts s to n runes, the last of them "…".
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// byteFields are the fields of a transfer: bytes done of the total, the
// percentage, the rate over elapsed and the ETA at that rate.
func byteFields(done, total int64, elapsed time.Duration) []field {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	var fs []field
	if total > 0 {
		fs = append(fs, field{humanBytes(done), keepDone}, field{"/ " + humanBytes(total), keepTotal},
			field{fmt.Sprintf("%d%%", min(done*100/total, 100)), keepPercent})
	} else {
		fs = append(fs, field{humanBytes(done), keepPercent})
	}
	fs = append(fs, field{humanBytes(int64(rate)) + "/s", keepRate})
	if total > 0 && rate > 0 && done < total {
		eta := time.Duration(float64(total-done) / rate * float64(time.Second))
		fs = append(fs, field{"ETA " + eta.Round(time.Second).String(), keepETA})
	}
	return fs
}
