package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// maxSuggestDistance is how far a mistyped name may be from a real one
// for "did you mean" to name it: two edits catch a swapped pair of letters
// ("pakc") or a dropped one ("--compres") without guessing wildly.
const maxSuggestDistance = 2

// suggest returns the candidates nearest to name, at most
// maxSuggestDistance edits away, in sorted order; several when they tie.
func suggest(name string, candidates []string) []string {
	best := maxSuggestDistance + 1
	var near []string
	for _, c := range candidates {
		d := editDistance(name, c)
		switch {
		case d < best:
			best, near = d, []string{c}
		case d == best && d <= maxSuggestDistance:
			near = append(near, c)
		}
	}
	sort.Strings(near)
	return near
}

// didYouMean is "; did you mean X?" (or "X or Y") for the candidates
// near name, or "" when none is near.
func didYouMean(name string, candidates []string, prefix string) string {
	near := suggest(name, candidates)
	if len(near) == 0 {
		return ""
	}
	for i := range near {
		near[i] = prefix + near[i]
	}
	return "; did you mean " + strings.Join(near, " or ") + "?"
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// unknownCommandError says a command does not exist, naming the nearest
// one.
func unknownCommandError(name string, names []string) string {
	return fmt.Sprintf("unknown command %s%s", name, didYouMean(name, names, ""))
}

// flagError rewrites pflag's "unknown flag: --compres" as "unknown flag
// --compres; did you mean --compress?"; other parse errors are returned
// as they are.
func flagError(fs *pflag.FlagSet, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return err
	}
	name := ne.GetSpecifiedName()
	if ne.GetSpecifiedShortnames() != "" {
		var shorts []string
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Shorthand != "" {
				shorts = append(shorts, f.Shorthand)
			}
		})
		sort.Strings(shorts)
		for i := range shorts {
			shorts[i] = "-" + shorts[i]
		}
		where := ""
		if group := ne.GetSpecifiedShortnames(); group != name {
			where = " in -" + group
		}
		return fmt.Errorf("unknown flag -%s%s (the short flags of this command: %s)", name, where, strings.Join(shorts, " "))
	}
	var longs []string
	fs.VisitAll(func(f *pflag.Flag) { longs = append(longs, f.Name) })
	return fmt.Errorf("unknown flag --%s%s", name, didYouMean(name, longs, "--"))
}
