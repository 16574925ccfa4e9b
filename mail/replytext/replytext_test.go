package replytext

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"

	"github.com/tendhq/tend/internal/testenv"
)

func readEnvelope(t testing.TB, path string) *enmime.Envelope {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env, err := enmime.ReadEnvelope(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return env
}

// TestClients checks replies as real clients write them, through both the
// plain-text and (where the client sends one) the HTML part.
func TestClients(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file string
		want string
	}{
		{"gmail_en_top.eml", "Thanks, the refund arrived this morning.\n\nCould you also send the corrected invoice?"},
		{"gmail_de_top.eml", "Hallo,\n\ndie Fotos hänge ich an. Der Karton war außen schon eingedrückt.\n\nGrüße\nJürgen"},
		{"outlook_desktop_de.eml", "Hallo Frau Fischer,\n\ndanke, der Zugang funktioniert wieder.\n\nMit freundlichen Grüßen\nAnna Weber"},
		{"outlook_web_fr.eml", "Bonjour,\n\nMerci, c'est bien reçu.\n\nClaire"},
		{"apple_mail_es.eml", "Perfecto, muchas gracias.\n\nMaría"},
		{"iphone_pt.eml", "Obrigado! Recebi a fatura."},
		{"thunderbird_nl_bottom.eml", "Het werkt nu, bedankt!"},
		{"thunderbird_en_interleaved.eml", "> Which browser do you use?\n\nFirefox 128 on Debian.\n\n> Did you clear the cache?\n\nYes, twice."},
		{"android_gmail_ru.eml", "Спасибо, посылку получила."},
		{"gmail_forward.eml", "Here is the confirmation I got, the price is wrong.\n\n---------- Forwarded message ---------\nFrom: Acme Shop <shop@acme.example>\nDate: Mon, Mar 9, 2026 at 9:00 AM\nSubject: Your order confirmation\nTo: <megan.stone@gmail.com>\n\nOrder 5531: 3 items, total 129.00 EUR"},
		{"outlook_mac_en_signature.eml", "Yes please raise it to 100 requests per second."},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			env := readEnvelope(t, filepath.Join("testdata", tc.file))
			if got := Extract(env.Text); got != tc.want {
				t.Errorf("Extract:\n got %q\nwant %q", got, tc.want)
			}
			if env.HTML == "" || strings.Contains(env.GetHeader("Content-Type"), "text/plain") {
				return
			}
			if got := ExtractHTML(env.HTML); normSpace(got) != normSpace(tc.want) {
				t.Errorf("ExtractHTML:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// normSpace compares HTML-derived text by words: html2text's paragraph
// spacing differs from what the plain part had.
func normSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestExtract(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"no quote", "Just text.\n\nSecond paragraph.\n", "Just text.\n\nSecond paragraph."},
		{"crlf", "Hi\r\n\r\nOn Mon, Apr 2, 2012 at 6:26 PM, Bob <b@x.example> wrote:\r\n> q\r\n", "Hi"},
		{"wrapped gmail attribution", "Hi\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan One <\nxxx@gmail.com> wrote:\n\n> Hi\n", "Hi"},
		{"attribution without quote cuts the rest", "Answer.\n\nOn Tue, 3 Mar 2026, Bob wrote:\nold text\nmore\n", "Answer."},
		{"original message separator", "Yes.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\nold", "Yes."},
		{"german separator", "Ja.\n\n-----Ursprüngliche Nachricht-----\nVon: Bob\nalt", "Ja."},
		{"yahoo separator", "Ok\n\n\n----- Original Message -----\nFrom: \"b\" <b@x>\nSent: Monday\n\nHi", "Ok"},
		{"outlook underscores", "Done\n\n________________________________\nFrom: Bob <b@x>\nSent: Monday\nTo: Me\n\nold", "Done"},
		{"bold outlook block", "Done\n\n*From:* Bob <b@x>\n*Sent:* Monday\n\nold", "Done"},
		{"spanish outlook block", "Listo\n\nDe: Bob <b@x>\nEnviado: lunes\nPara: Yo\nAsunto: x\n\nviejo", "Listo"},
		{"sig delimiter", "Thanks\n\n-- \nBob\nACME Corp", "Thanks"},
		{"sig delimiter without space", "Thanks\n--\nBob", "Thanks"},
		{"mobile signatures", "Ok\n\nVon meinem iPhone gesendet", "Ok"},
		{"french apple attribution", "Merci\n\n> Le 10 mars 2026 à 18:04, Acme <s@a.example> a écrit :\n>\n> Bonjour", "Merci"},
		{"french gmail unquoted", "Merci\n\nLe mar. 10 mars 2026 à 18:04, Acme <s@a.example> a écrit :\nBonjour\n", "Merci"},
		{"japanese gmail attribution", "ありがとうございます。\n\n2026年3月10日(火) 18:04 Acme Support <s@a.example>:\n\n> こんにちは\n", "ありがとうございます。"},
		{"interleaved keeps context", "> q1\na1\n> q2\na2\n> bye", "> q1\na1\n> q2\na2"},
		{"bottom post drops quote", "On Mon, Bob wrote:\n> q\n\nanswer", "answer"},
		{"hash lines are text", "#1 thing to check\nthe cable", "#1 thing to check\nthe cable"},
		{"text mentioning from is kept", "From: our side all is fine.\nThanks", "From: our side all is fine.\nThanks"},
		{"all quoted", "On Mon, Bob wrote:\n> q", ""},
		{"apple forward kept", "FYI\n\nBegin forwarded message:\n\nFrom: X <x@y>\nSubject: s\n\nbody", "FYI\n\nBegin forwarded message:\n\nFrom: X <x@y>\nSubject: s\n\nbody"},
		{"trailing spaces trimmed", "Hello \t\n\n\n\nWorld  ", "Hello\n\nWorld"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Extract(tc.in); got != tc.want {
				t.Errorf("Extract(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestExtractHTML(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
	}{
		{"blockquote", `<p>Yes</p><blockquote type="cite">old</blockquote>`, "Yes"},
		{"thunderbird", `<p>Works now.</p><div class="moz-cite-prefix">On 11/03/2026 Bob wrote:<br></div><blockquote type="cite">old</blockquote>`, "Works now."},
		{"yahoo", `<div>Fine</div><div class="yahoo_quoted"><div>On Monday, Bob wrote:</div><div>old</div></div>`, "Fine"},
		{"outlook desktop", `<div class=WordSection1><p class=MsoNormal>Danke<o:p></o:p></p><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p class=MsoNormal><b>Von:</b> Acme<br><b>Gesendet:</b> Montag</p></div><p class=MsoNormal>alt</p></div><p>auch alt</p>`, "Danke"},
		{"outlook message header", `<p>Ok</p><div class="OutlookMessageHeader">From: x</div><p>old</p>`, "Ok"},
		{"gmail forward kept", `<div>See below</div><div class="gmail_quote">---------- Forwarded message ---------<br>From: A &lt;a@b&gt;<br><br>body text</div>`, "See below ---------- Forwarded message --------- From: A <a@b> body text"},
		{"apple mail", `<html><body><div>Thanks!</div><div><br><blockquote type="cite"><div>On Apr 3, 2012, at 4:19 PM, bob wrote:</div><div>Hi</div></blockquote></div></body></html>`, "Thanks!"},
		{"broken html", `<p>Hi<blockquote>old`, "Hi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ExtractHTML(tc.in); normSpace(got) != normSpace(tc.want) {
				t.Errorf("ExtractHTML(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// corpusDir finds ../shared/corpus from this package (two levels below the
// worktree root). A missing corpus skips, except in CI (TEND_CI set).
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "corpus")
	if _, err := os.Stat(filepath.Join(dir, "index.tsv")); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("corpus not found at %s: %v", dir, err))
	}
	return dir
}

// TestTalonFixtures runs talon's own reply fixtures: every standard reply
// says "Hello" above its quote, and the share-block reply must keep its
// text and lose the quoted "From:" block (talon's test_reply_quotations_
// share_block).
func TestTalonFixtures(t *testing.T) {
	dir := corpusDir(t)
	f, err := os.Open(filepath.Join(dir, "index-basis.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		p, _, _ := strings.Cut(sc.Text(), "\t")
		if strings.HasPrefix(p, "talon/") {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		t.Fatal("no talon fixtures listed in index-basis.tsv")
	}
	textOK, htmlOK, htmlN := 0, 0, 0
	for _, p := range paths {
		env := readEnvelope(t, filepath.Join(dir, p))
		check := func(got string, html bool) bool {
			if html && strings.HasSuffix(p, "standard_replies/outlook.eml") {
				// This fixture's HTML part carries different new text
				// from its plain part; the quoted header below it is
				// the same.
				return got == "Allo! Follow up MIME!"
			}
			if strings.HasSuffix(p, "share-block.eml") {
				return strings.HasPrefix(got, "Hi Katharine.") && !strings.Contains(got, "From") && !strings.Contains(got, "wrote")
			}
			return got == "Hello"
		}
		if got := Extract(env.Text); check(got, false) {
			textOK++
		} else {
			t.Errorf("%s (text): got %q", p, got)
		}
		if env.HTML != "" && !strings.Contains(env.GetHeader("Content-Type"), "text/plain") {
			htmlN++
			if got := ExtractHTML(env.HTML); check(strings.TrimSpace(got), true) {
				htmlOK++
			} else {
				t.Errorf("%s (html): got %q", p, got)
			}
		}
	}
	t.Logf("talon fixtures: text %d/%d, html %d/%d", textOK, len(paths), htmlOK, htmlN)
}
