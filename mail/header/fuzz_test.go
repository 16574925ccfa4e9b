package header_test

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tendhq/tend/internal/fuzzseed"
	"github.com/tendhq/tend/mail/header"
)

// sharedCorpus is the real-world corpus beside the repository.
const sharedCorpus = "../../../shared/corpus"

// seedMessages are the repository's test mail and a sample of the shared
// corpus.
func seedMessages(f *testing.F) [][]byte {
	seeds := fuzzseed.Files(f, "../classify/testdata/*.eml", "../ingest/testdata/charset/*.eml", "../../threading/testdata/conversations/*/*.eml")
	return append(seeds, fuzzseed.Corpus(f, sharedCorpus, 20)...)
}

// seedValues adds the values of the named fields of every seed message.
func seedValues(f *testing.F, fields ...string) {
	for _, raw := range seedMessages(f) {
		h, _ := header.Read(raw)
		for _, name := range fields {
			for _, v := range h.Values(name) {
				f.Add(v)
			}
		}
	}
}

// storable: what PostgreSQL's text columns take (valid UTF-8, no NUL).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// FuzzRead: any bytes give a header block whose body offset is inside
// them, whose names are canonical and whose values are unfolded (no line
// end left), and reading the header block alone gives the same fields.
func FuzzRead(f *testing.F) {
	for _, raw := range seedMessages(f) {
		f.Add(raw)
	}
	f.Add([]byte("From x@y Mon Jan  1 00:00:00 2024\rSubject: a\r\r\nbody"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, off := header.Read(raw)
		if off < 0 || off > len(raw) {
			t.Fatalf("body offset %d of %d", off, len(raw))
		}
		for k, vs := range h {
			if k == "" {
				t.Fatal("empty field name")
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("%s: line end in value %q", k, v)
				}
			}
		}
	})
}

// FuzzNewlines: no CR is left, every line end becomes one LF, and a
// second pass changes nothing.
func FuzzNewlines(f *testing.F) {
	for _, raw := range seedMessages(f) {
		f.Add(raw)
	}
	f.Add([]byte("a\r\r\nb\rc\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := header.Newlines(in)
		if bytes.IndexByte(out, '\r') >= 0 {
			t.Fatalf("CR left in %q", out)
		}
		ends := bytes.Count(in, []byte("\n")) + bytes.Count(in, []byte("\r")) - bytes.Count(in, []byte("\r\n"))
		if n := bytes.Count(out, []byte("\n")); n != ends {
			t.Fatalf("%d line ends in, %d out", ends, n)
		}
		if again := header.Newlines(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q", out, again)
		}
	})
}

// FuzzIDs: what threading gets is valid, bracket-free and without
// duplicates; the stored id is storable; a value with a threading id
// always has a stored one (strict is a subset of lax).
func FuzzIDs(f *testing.F) {
	seedValues(f, "Message-Id", "In-Reply-To", "References")
	f.Add("<a@b> <a@b> a@b <\"x@y\"@z> <ü@x>")
	f.Fuzz(func(t *testing.T, v string) {
		ids := header.IDs(v)
		for i, id := range ids {
			if !header.ValidID(id) || strings.ContainsAny(id, "<> ") {
				t.Fatalf("IDs(%q) returned %q", v, id)
			}
			if slices.Contains(ids[:i], id) {
				t.Fatalf("IDs(%q) repeats %q", v, id)
			}
		}
		stored := header.StoredID(v)
		if !storable(stored) || strings.ContainsAny(stored, "<> \t\r\n") {
			t.Fatalf("StoredID(%q) = %q", v, stored)
		}
		if len(ids) > 0 && stored == "" {
			t.Fatalf("%q has ids %q but no stored id", v, ids)
		}
	})
}

// FuzzAddresses: every address is lowercase, storable, bounded and has
// an "@"; every name is storable.
func FuzzAddresses(f *testing.F) {
	seedValues(f, "From", "To", "Cc", "Reply-To")
	f.Add(`"Doe, John" <John@X>, Müller, J <j@y>; <<<bad@@x`)
	f.Fuzz(func(t *testing.T, v string) {
		for _, a := range header.Addresses(v) {
			if a.Address != strings.ToLower(a.Address) || !storable(a.Address) || len(a.Address) > 320 || !strings.Contains(a.Address, "@") {
				t.Fatalf("Addresses(%q): address %q", v, a.Address)
			}
			if !storable(a.Name) {
				t.Fatalf("Addresses(%q): name %q", v, a.Name)
			}
		}
		if a := header.Address(v); a != "" && !slices.Contains(header.AddressSpecs(v), a) {
			t.Fatalf("Address(%q) = %q, not among %q", v, a, header.AddressSpecs(v))
		}
	})
}

// FuzzDecode: the result is valid UTF-8, and text without an encoded
// word comes back as it was (made valid).
func FuzzDecode(f *testing.F) {
	seedValues(f, "Subject", "From", "Thread-Topic")
	f.Add("=?ks_c_5601-1987?B?vsiz5w==?= =?ibm850?Q?=81?= =?x?Q?y?=")
	f.Fuzz(func(t *testing.T, s string) {
		d := header.Decode(s)
		if !utf8.ValidString(d) {
			t.Fatalf("Decode(%q) = %q, not UTF-8", s, d)
		}
		if !strings.Contains(s, "=?") && d != strings.ToValidUTF8(s, "\uFFFD") {
			t.Fatalf("Decode(%q) = %q without an encoded word", s, d)
		}
	})
}

// FuzzParse: the fields of any header block are storable, the ids are
// threading-valid, and the parent is one of In-Reply-To.
func FuzzParse(f *testing.F) {
	for _, raw := range seedMessages(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, _ := header.Read(raw)
		p := header.Parse(h)
		for _, s := range append([]string{p.MessageID, p.From, p.FromName, p.Subject, p.ThreadTopic}, append(p.To, p.Cc...)...) {
			if !storable(s) {
				t.Fatalf("unstorable %q", s)
			}
		}
		for _, id := range append(slices.Clone(p.InReplyTo), p.References...) {
			if !header.ValidID(id) {
				t.Fatalf("invalid id %q", id)
			}
		}
		if par := p.Parent(); par != "" && !slices.Contains(p.InReplyTo, par) {
			t.Fatalf("parent %q not in %q", par, p.InReplyTo)
		}
	})
}

// FuzzParts: the numbering is a function of the bytes (ingest stores it,
// the web serves by it later, from another parse): two parses give the
// same parts with the same bytes, and so does the input with its line
// ends already normalised.
func FuzzParts(f *testing.F) {
	for _, raw := range seedMessages(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, errA := header.ParseMIME(raw)
		b, errB := header.ParseMIME(header.Newlines(raw))
		if (errA == nil) != (errB == nil) {
			t.Fatalf("errors differ: %v, %v", errA, errB)
		}
		if errA != nil {
			return
		}
		pa, pb := header.Parts(a), header.Parts(b)
		if len(pa) != len(pb) {
			t.Fatalf("%d parts, then %d", len(pa), len(pb))
		}
		for i := range pa {
			if sha256.Sum256(pa[i].Content) != sha256.Sum256(pb[i].Content) || pa[i].Inline != pb[i].Inline {
				t.Fatalf("part %d differs between parses", i)
			}
		}
	})
}
