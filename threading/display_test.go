package threading

import (
	"strings"
	"testing"
)

func TestDisplaySubject(t *testing.T) {
	tests := []struct{ in, prefix, want string }{
		{"Printer on fire", "", "Printer on fire"},
		{"Re: Re: [#1] Printer on fire", "", "Printer on fire"},
		{"Re: Printer on fire [#1]", "", "Printer on fire"},
		{"AW: WG: [Acme #12] Rechnung", "Acme", "Rechnung"},
		{"[EXTERNAL] Re: Invoice", "", "[EXTERNAL] Re: Invoice"},
		{"Fwd: [users] list thing", "", "[users] list thing"},
		{"=?utf-8?q?Re=3A_Caf=C3=A9?=", "", "Café"},
		{"Re:", "", ""},
		{"Order #12 missing", "", "Order #12 missing"},
	}
	for _, tc := range tests {
		if got := DisplaySubject(tc.in, tc.prefix); got != tc.want {
			t.Errorf("DisplaySubject(%q, %q) = %q, want %q", tc.in, tc.prefix, got, tc.want)
		}
	}
}

// FuzzDisplaySubject: any subject (untrusted) gives a subject without our
// tag, and tagging it gives exactly one tag for the ticket.
func FuzzDisplaySubject(f *testing.F) {
	for _, s := range []string{"Re: Re: [#1] Printer [#2]", "AW: [Acme #12] x", "[[#3]]", "=?utf-8?q?Re=3A_x?="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := DisplaySubject(s, "")
		if _, _, ok := leadingTag(d, ""); ok {
			t.Fatalf("DisplaySubject(%q) = %q still has a ticket tag", s, d)
		}
		tagged := TagSubject(d, 7, "")
		if n := strings.Count(tagged, "[#7]"); n != 1 && !strings.Contains(d, "[#7") {
			t.Fatalf("TagSubject(DisplaySubject(%q)) = %q has %d tags", s, tagged, n)
		}
	})
}
