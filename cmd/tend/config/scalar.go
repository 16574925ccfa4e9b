package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// setScalar parses text into a leaf value. The YAML decoder and the
// environment share it, so a value means the same wherever it is written.
func setScalar(v reflect.Value, s string) error {
	switch v.Type() {
	case reflect.TypeFor[time.Duration]():
		d, err := parseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case reflect.TypeFor[Size]():
		n, err := parseSize(s)
		if err != nil {
			return err
		}
		v.SetInt(n)
		return nil
	case reflect.TypeFor[FileMode]():
		m, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("invalid file mode %q (octal, e.g. 0660)", s)
		}
		v.SetUint(m)
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Slice:
		// Only the environment reaches here (YAML lists are decoded element
		// by element): a comma-separated list, "" for an empty one.
		if strings.TrimSpace(s) == "" {
			v.SetZero()
			return nil
		}
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := setScalar(out.Index(i), strings.TrimSpace(p)); err != nil {
				return err
			}
		}
		v.Set(out)
	default:
		// A programming error in the schema, not bad input: report it
		// rather than panic so a fuzzer or a user never crashes the loader.
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// parseBool accepts what strconv.ParseBool does plus YAML 1.1's yes/no
// and on/off, which people still write in config files.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("invalid boolean %q (want true or false)", s)
	}
	return b, nil
}

// parseDuration accepts Go durations (90s, 1m30s, 4h) plus a leading number
// of days (14d, 2d12h), since the follow-through windows are naturally
// counted in days and time.ParseDuration has no unit for them.
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q", s)
	var days int64
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/int64(24*time.Hour) || i == 0 || s[0] == '+' {
			return 0, bad
		}
		days, rest = n, s[i+1:]
		if rest == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil || (days > 0 && d < 0) {
		return 0, bad
	}
	total := time.Duration(days)*24*time.Hour + d
	if total < d {
		return 0, bad
	}
	return total, nil
}

// formatDuration is parseDuration's inverse, in the shortest form a person
// would write: 14d, 2d12h, 48h, 1m, 90s.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	day := 24 * time.Hour
	if d%day == 0 && d >= 10*day {
		// Long windows read better in days; shorter ones stay in hours
		// (48h, 120h, 168h) the way people say them.
		b.WriteString(strconv.FormatInt(int64(d/day), 10))
		b.WriteByte('d')
		return b.String()
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	b.WriteString(s)
	return b.String()
}

// parseSize accepts a byte count with an optional SI or IEC unit, using
// go-humanize rather than a home-made table.
func parseSize(s string) (int64, error) {
	n, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || n > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q (bytes, or with a unit: 25MB, 25MiB)", s)
	}
	return int64(n), nil
}

// suggest returns the candidate closest to got, if it is close enough to
// be a typo. Levenshtein distance is a dozen lines, written here rather
// than pulling in a module for one call.
func suggest(got string, candidates []string) string {
	best, bestDist := "", len(got)/3+1
	if bestDist > 3 {
		bestDist = 3
	}
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(got), strings.ToLower(c)); d <= bestDist && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean formats an unknown-name message with a suggestion when one is
// close.
func didYouMean(what, got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return fmt.Sprintf("unknown %s (did you mean %s?)", what, s)
	}
	return "unknown " + what
}
