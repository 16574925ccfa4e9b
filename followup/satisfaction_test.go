package followup_test

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

var rateRE = regexp.MustCompile(`https://support\.acme\.test/rate\?t=(\S+)`)

// rateLinks returns the five rating tokens in a mail, in order 1..5.
func rateLinks(t *testing.T, m captured) []string {
	t.Helper()
	var out []string
	for _, l := range rateRE.FindAllStringSubmatch(m.Env.Text, -1) {
		tok, err := url.QueryUnescape(l[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tok)
	}
	return out
}

// resolveAndConfirm has a lead propose resolution and the customer say
// yes by mail; it returns the thank-you.
func (w *world) resolveAndConfirm(step string) captured {
	w.t.Helper()
	if err := w.exec.Resolve(context.Background(), 1, lena); err != nil {
		w.t.Fatal(err)
	}
	w.settle()
	ask := to(w.expect(step+": resolve", map[string]int{customer: 1}), customer)[0]
	w.clock.Advance(time.Hour)
	w.mustSend(customer, []string{inbox}, replyToUs(w.t, ask, step+"-yes@example.com", "Yes, solved, thank you!"))
	got := to(w.expect(step+": confirmed", map[string]int{customer: 1}), customer)
	w.state(step, vocab.StateResolved)
	return got[0]
}

// TestSatisfactionByReply: the thank-you after a confirmation asks once;
// a digit reply is the score (and the rest a comment), keeps the ticket
// resolved and pages nobody; the question is never asked again on the
// ticket.
func TestSatisfactionByReply(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		w.mustSend(customer, []string{inbox}, customerMail("s1@example.com", "Export stuck", "The export hangs."))
		w.capture.take()
		thanks := w.resolveAndConfirm("first")
		if !strings.Contains(thanks.Env.Text, "how did we do?") || len(rateLinks(t, thanks)) != 5 {
			t.Fatalf("thank-you does not ask once with five links:\n%s", thanks.Env.Text)
		}
		w.clock.Advance(time.Hour)
		w.mustSend(customer, []string{inbox}, replyToUs(t, thanks, "s2@example.com", "4 - quick and friendly"))
		w.expect("rated", map[string]int{customer: 0, alice: 0, lena: 0})
		d := w.state("rated", vocab.StateResolved)
		if d.SatisfactionScore != 4 || d.SatisfactionComment != "quick and friendly" {
			t.Errorf("satisfaction %d %q, want 4 \"quick and friendly\"", d.SatisfactionScore, d.SatisfactionComment)
		}

		// The problem comes back and is solved again: no second question.
		w.clock.Advance(time.Hour)
		w.mustSend(customer, []string{inbox}, replyToUs(t, thanks, "s3@example.com", "The export hangs again since this morning."))
		w.state("reopened", vocab.StateOpen)
		w.clock.Advance(3 * time.Hour)
		w.capture.take()
		again := w.resolveAndConfirm("second")
		if strings.Contains(again.Env.Text, "how did we do") || len(rateLinks(t, again)) != 0 {
			t.Errorf("asked twice on one ticket:\n%s", again.Env.Text)
		}
		stats, err := w.store.SatisfactionStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if stats.Asked != 1 || stats.Rated != 1 || stats.Average != 4 || stats.ByScore[4] != 1 {
			t.Errorf("stats %+v", stats)
		}
	})
}

// TestSatisfactionByLink: the solved link's thank-you asks too; a rating
// link records its score once (a second click changes nothing), is no
// confirmation link, and an auto-reply with a digit is no rating.
func TestSatisfactionByLink(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		w.mustSend(customer, []string{inbox}, customerMail("s4@example.com", "Login fails", "I cannot log in."))
		w.capture.take()
		if err := w.exec.Resolve(context.Background(), 1, lena); err != nil {
			t.Fatal(err)
		}
		w.settle()
		ask := to(w.expect("resolve", map[string]int{customer: 1}), customer)[0]
		tok, _ := url.QueryUnescape(linkRE.FindStringSubmatch(ask.Env.Text)[1])
		if _, _, err := w.exec.Confirm(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		w.settle()
		thanks := to(w.expect("clicked solved", map[string]int{customer: 1}), customer)[0]
		links := rateLinks(t, thanks)
		if len(links) != 5 {
			t.Fatalf("thank-you after the solved link has %d rating links:\n%s", len(links), thanks.Env.Text)
		}
		if _, _, err := w.exec.Confirm(context.Background(), links[4]); err == nil {
			t.Error("a rating link was taken as a confirmation")
		}
		if _, _, err := w.exec.Rate(context.Background(), tok, ""); err == nil {
			t.Error("a confirmation link was taken as a rating")
		}

		// An out-of-office that starts with a digit is not the customer's rating.
		w.clock.Advance(time.Hour)
		ooo := strings.Replace(replyToUs(t, thanks, "s5@example.com", "5 days out of office, back on Monday."),
			"Content-Type:", "Auto-Submitted: auto-replied\r\nContent-Type:", 1)
		w.mustSend(customer, []string{inbox}, ooo)
		if d := w.ticket(1); d.SatisfactionScore != 0 {
			t.Fatalf("an auto-reply rated the ticket %d", d.SatisfactionScore)
		}

		n, score, err := w.exec.Rate(context.Background(), links[1], "slow, but it works")
		if err != nil || n != 1 || score != 2 {
			t.Fatalf("Rate(2) = %d, %d, %v", n, score, err)
		}
		if _, score, err := w.exec.Rate(context.Background(), links[4], ""); err != nil || score != 2 {
			t.Errorf("second click: score %d, %v; want the first answer, 2", score, err)
		}
		d := w.state("rated by link", vocab.StateResolved)
		if d.SatisfactionScore != 2 || d.SatisfactionComment != "slow, but it works" {
			t.Errorf("satisfaction %d %q", d.SatisfactionScore, d.SatisfactionComment)
		}
	})
}

// TestNoSatisfactionWithoutConfirmation: a lead's close, and an
// unconfirmed resolution the customer never answered, never ask.
func TestNoSatisfactionWithoutConfirmation(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		w.mustSend(customer, []string{inbox}, customerMail("s6@example.com", "Cancel my plan", "Please cancel."))
		w.capture.take()
		if err := w.exec.Close(context.Background(), 1, "no response", lena); err != nil {
			t.Fatal(err)
		}
		w.settle()
		for _, m := range to(w.capture.take(), customer) {
			if strings.Contains(m.Env.Text, "how did we do") || rateRE.MatchString(m.Env.Text) {
				t.Errorf("a close without confirmation asked for a rating:\n%s", m.Env.Text)
			}
		}
		if d := w.ticket(1); d.SatisfactionScore != 0 {
			t.Errorf("score %d", d.SatisfactionScore)
		}
		stats, err := w.store.SatisfactionStats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if stats.Asked != 0 {
			t.Errorf("asked %d times", stats.Asked)
		}
	})
}
