package header

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// The tables below hold the cases on which the parsers this package
// replaced disagreed; "was" says what each old one did.

func TestIDs(t *testing.T) {
	long := strings.Repeat("x", 300) + "@y"
	tests := []struct {
		name   string
		in     string
		ids    []string // IDs: what threading may match on
		stored string   // StoredID: the message's own id as stored
	}{
		{"one", "<a@b>", []string{"a@b"}, "a@b"},
		{"folded list", "<a@b> <c@d>\r\n <e@f>", []string{"a@b", "c@d", "e@f"}, "a@b"},
		// was: ingest kept both copies.
		{"duplicate", "<a@b> (comment) <a@b>", []string{"a@b"}, "a@b"},
		{"bare", "a@b", []string{"a@b"}, "a@b"},
		{"bare list", "r1@x r2@x", []string{"r1@x", "r2@x"}, "r1@x"},
		{"empty brackets", "<>", nil, ""},
		{"only at", "<@>", nil, ""},
		{"space inside", "<a b@c>", nil, ""},
		{"no at", "<noat>", nil, ""},
		{"empty right", "<a@>", nil, ""},
		{"empty left", "<@b>", nil, ""},
		{"word", "foo", nil, ""},
		{"empty", "", nil, ""},
		{"unterminated", "<unterminated@x", nil, ""},
		{"junk around", "junk <ok@host> junk", []string{"ok@host"}, "ok@host"},
		{"junk first", "<not an id> <ok@host>", []string{"ok@host"}, "ok@host"},
		{"quoted left", `<"a@b"@x.example>`, []string{`"a@b"@x.example`}, `"a@b"@x.example`},
		// was: ingest (up to 900 octets) used it for threading; threading
		// refused it. Now stored, never matched.
		{"300 octets", "<" + long + ">", nil, long},
		// was: ingest threaded on it (any UTF-8); threading refused it.
		{"utf-8", "<ünï@x.example>", nil, "ünï@x.example"},
		// was: ingest and the DSN reader took it; threading refused it.
		{"two at", "<a@b@c>", nil, "a@b@c"},
		{"parentheses", "<a(b)@x>", nil, "a(b)@x"},
		{"comma", "<a,b@x>", nil, "a,b@x"},
		{"nul", "<a\x00@x>", nil, ""},
		{"invalid utf-8", "<a\xff@x>", nil, ""},
		{"postmaster note", "<valid@valid.example> (added by postmaster@some.example)", []string{"valid@valid.example"}, "valid@valid.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IDs(tt.in); !slices.Equal(got, tt.ids) {
				t.Errorf("IDs(%q) = %q, want %q", tt.in, got, tt.ids)
			}
			if got := StoredID(tt.in); got != tt.stored {
				t.Errorf("StoredID(%q) = %q, want %q", tt.in, got, tt.stored)
			}
		})
	}
}

func TestNewlines(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"lf", "a\nb\n", "a\nb\n"},
		// was: ingest and the web kept CRLF, classify made it LF.
		{"crlf", "a\r\nb\r\n", "a\nb\n"},
		{"cr only", "a\rb\r", "a\nb\n"},
		// was: ingest and the web left a lone CR in CRLF mail alone, so
		// the header reader and enmime saw different header blocks.
		{"mixed", "Subject: x\rX-Y: z\r\n\r\nbody", "Subject: x\nX-Y: z\n\nbody"},
		{"cr cr lf", "a\r\r\nb", "a\n\nb"},
		{"trailing cr", "a\r", "a\n"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Newlines([]byte(tt.in))); got != tt.want {
				t.Errorf("Newlines(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	// Without a CR the input itself comes back, not a copy.
	in := []byte("no carriage return\n")
	if out := Newlines(in); &out[0] != &in[0] {
		t.Error("Newlines copied input without CR")
	}
}

func TestDecode(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "Hello", "Hello"},
		{"utf-8 b", "=?utf-8?B?w6k=?=", "é"},
		{"latin-1 q", "=?iso-8859-1?Q?AW:_Drucker_f=E4llt_aus?=", "AW: Drucker fällt aus"},
		{"adjacent words", "=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"},
		// was: classify (IANA index) kept it encoded; ingest and
		// threading (WHATWG) decoded it.
		{"ks_c_5601-1987", "=?ks_c_5601-1987?B?vsiz5w==?=", "안녕"},
		{"windows-1252 alias", "=?cp1252?Q?=93hi=94?=", "\u201chi\u201d"},
		// was: ingest and threading kept it encoded; classify decoded it.
		{"ibm850", "=?ibm850?Q?=81ber?=", "über"},
		{"unknown charset kept", "=?x-unknown?Q?abc?=", "=?x-unknown?Q?abc?="},
		{"broken word kept", "=?utf-8?B?!!!?=", "=?utf-8?B?!!!?="},
		// was: classify returned invalid UTF-8 as it came.
		{"8-bit", "caf\xe9", "caf\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decode(tt.in); got != tt.want {
				t.Errorf("Decode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	type addr struct{ name, address string }
	tests := []struct {
		name string
		in   []string
		want []addr
	}{
		{"mailbox", []string{"Jana <Jana.Novak@Gmail.com>"}, []addr{{"Jana", "jana.novak@gmail.com"}}},
		{"bare", []string{"jana@example.org"}, []addr{{"", "jana@example.org"}}},
		{"encoded name", []string{"=?UTF-8?Q?J=C3=BCrgen?= <j@w.example>"}, []addr{{"Jürgen", "j@w.example"}}},
		{"quoted comma", []string{`"Doe, John" <john@x.example>, jane@y.example`}, []addr{{"Doe, John", "john@x.example"}, {"", "jane@y.example"}}},
		// was: ingest scraped the address without a name; threading
		// kept the address only.
		{"unquoted comma in name", []string{"Müller, Jürgen <j.mueller@x.example>"}, []addr{{"Jürgen", "j.mueller@x.example"}}},
		{"semicolons", []string{"a@x.example; b@y.example"}, []addr{{"", "a@x.example"}, {"", "b@y.example"}}},
		// was: threading joined all To fields and fell back for all of
		// them when one was broken; now one field at a time.
		{"two fields", []string{"a@x.example", "Müller, J <b@y.example>"}, []addr{{"", "a@x.example"}, {"J", "b@y.example"}}},
		{"dots", []string{"<weird..dots.@x.example>"}, []addr{{"", "weird..dots.@x.example"}}},
		{"broken", []string{"<<<bad@@example.com"}, nil},
		{"no address", []string{"no address"}, nil},
		{"empty", []string{"", "  "}, nil},
		{"at only", []string{"@x"}, nil},
		{"too long", []string{strings.Repeat("a", 330) + "@x.example"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []addr
			for _, a := range Addresses(tt.in...) {
				got = append(got, addr{a.Name, a.Address})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Addresses(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := Address(" Support <Support@Acme.Example> "); got != "support@acme.example" {
		t.Errorf("Address = %q", got)
	}
}

func TestParse(t *testing.T) {
	raw := "From: =?UTF-8?Q?J=C3=BCrgen?= <J.Wagner@Bau.example>\r\n" +
		"To: support@acme.example, \"Lena\" <lena@acme.example>\r\n" +
		"Cc: a@x.example; b@y.example\r\n" +
		"Subject: =?UTF-8?Q?AW:_Rechnung?=\r\n" +
		"Message-ID:\r\n <AM0PR07MB1@AM0PR07MB1.eurprd07.prod.outlook.com>\r\n" +
		"In-Reply-To: <x@y> <p@y>\r\n" +
		"References: <r1@y>\r\n <r2@y>\r\n" +
		"Thread-Index: AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnA==\r\n" +
		"Thread-Topic: =?UTF-8?Q?Rechnung_f=C3=BCr?=\r\n" +
		"Date: Tue, 17 Oct 2023 19:10:11 +0200\r\n\r\nbody\r\n"
	h, off := Read([]byte(raw))
	f := Parse(h)
	checks := []struct {
		name string
		ok   bool
	}{
		{"body offset", raw[off:] == "body\r\n"},
		{"from", f.From == "j.wagner@bau.example" && f.FromName == "Jürgen"},
		{"to", slices.Equal(f.To, []string{"support@acme.example", "lena@acme.example"})},
		{"cc lax", slices.Equal(f.Cc, []string{"a@x.example", "b@y.example"})},
		{"message-id", f.MessageID == "AM0PR07MB1@AM0PR07MB1.eurprd07.prod.outlook.com"},
		{"in-reply-to", slices.Equal(f.InReplyTo, []string{"x@y", "p@y"}) && f.Parent() == "p@y"},
		{"references", slices.Equal(f.References, []string{"r1@y", "r2@y"})},
		{"thread-index", f.ThreadIndex == "AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnA=="},
		{"thread-topic", f.ThreadTopic == "Rechnung für"},
		{"date utc", f.Date != nil && f.Date.Hour() == 17 && f.Date.Location().String() == "UTC"},
		{"subject", f.Subject == "AW: Rechnung" && f.RawSubject == "=?UTF-8?Q?AW:_Rechnung?="},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("%+v", f)
			}
		})
	}
}

// TestParts checks the numbering ingest stores and the web serves by:
// attachments, then inlines, then other parts, whatever their order in
// the message.
func TestParts(t *testing.T) {
	raw := strings.Join([]string{
		"Content-Type: multipart/mixed; boundary=m",
		"",
		"--m",
		"Content-Type: multipart/related; boundary=r",
		"",
		"--r",
		"Content-Type: text/html; charset=utf-8",
		"",
		"<p>hi <img src=cid:logo></p>",
		"--r",
		"Content-Type: image/png",
		"Content-ID: <logo>",
		"Content-Disposition: inline; filename=logo.png",
		"Content-Transfer-Encoding: base64",
		"",
		"iVBORw0KGgo=",
		"--r--",
		"--m",
		"Content-Type: text/csv; name=a.csv",
		"Content-Disposition: attachment; filename=a.csv",
		"",
		"a,b",
		"c,d",
		"--m",
		"Content-Type: application/pdf; name=b.pdf",
		"Content-Disposition: attachment; filename=b.pdf",
		"Content-Transfer-Encoding: base64",
		"",
		"JVBERi0=",
		"--m--",
		"",
	}, "\r\n")
	env, err := ParseMIME([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range Parts(env) {
		got = append(got, p.FileName+map[bool]string{true: " inline", false: ""}[p.Inline])
	}
	if want := []string{"a.csv", "b.pdf", "logo.png inline"}; !slices.Equal(got, want) {
		t.Errorf("parts %q, want %q", got, want)
	}
	// Line ends are LF in what a part yields (Newlines), whatever the
	// message used.
	if c := Parts(env)[0].Content; !bytes.Equal(c, []byte("a,b\nc,d")) {
		t.Errorf("csv content %q", c)
	}
}

// TestParseMIMECharset checks which text ParseMIME reads how: UTF-8 with
// a stray byte stays UTF-8 (the byte becomes U+FFFD, its letters are
// kept), text in an 8-bit charset declared or read as UTF-8 goes to
// detection.
func TestParseMIMECharset(t *testing.T) {
	mail := func(ctype, body string) []byte {
		return []byte("From: a@b.example\r\nTo: s@acme.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: " + ctype + "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n")
	}
	latin1 := strings.Repeat("Le colis pr\xe9c\xe9dent est arriv\xe9 ab\xeem\xe9, merci de le remplacer d\xe8s que possible. ", 3)
	for _, tc := range []struct {
		name, ctype, body, want string
	}{
		{"utf-8 with a stray byte", "text/plain; charset=utf-8", "Señor, la piñata \x91 está rota.", "Señor, la piñata \uFFFD está rota.\n"},
		{"undeclared utf-8 with a stray byte", "text/plain", "Grüße aus Köln \x96 Ende", "Grüße aus Köln \uFFFD Ende\n"},
		{"valid utf-8", "text/plain; charset=utf-8", "Привет, 東京", "Привет, 東京\n"},
		{"latin-1 declared utf-8", "text/plain; charset=utf-8", latin1, strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(latin1, "\xe9", "é"), "\xee", "î"), "\xe8", "è"), "\xe0", "à") + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := ParseMIME(mail(tc.ctype, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if env.Text != tc.want {
				t.Errorf("text %q, want %q", env.Text, tc.want)
			}
		})
	}
}

func TestMostlyUTF8(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"", true},
		{"ascii", true},
		{"piñata \x91", true},
		{"ascii \x91", false},
		{"pr\xe9c\xe9dent caf\xe9 \xe0 ñ", false},
	} {
		if got := mostlyUTF8(tc.s); got != tc.want {
			t.Errorf("mostlyUTF8(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
