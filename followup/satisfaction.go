package followup

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// linkRate prefixes the purpose of the five satisfaction links: rate_1 …
// rate_5. A /confirm link never carries it, and a rating link is refused
// by Confirm, so neither can stand in for the other.
const linkRate = "rate_"

// templateThankYou is the mail after a confirmed resolution: the only one
// that may ask "how did we do?".
const templateThankYou = "thank_you"

// satisfactionLinks decides whether this thank-you asks the one
// satisfaction question and, if so, records that it is asked and returns
// the five signed links. It asks only after the customer confirmed (a
// clear yes from a person, or the solved link), only on a resolved ticket,
// and never twice on a ticket. A close without confirmation never reaches
// here: it sends "closed", not the thank-you.
func (x *Executor) satisfactionLinks(sc *scope, ev rules.Event) ([]rules.RatingLink, error) {
	confirmed := false
	switch ev.Type {
	case vocab.EventConfirmationClicked:
		confirmed = ev.Answer == rules.AnswerYes
	case vocab.EventMessageReceived:
		m := ev.Message
		confirmed = m != nil && m.Role == rules.RoleCustomer && m.Class == vocab.ClassHuman && !m.Imported &&
			rules.ClassifyAnswer(m.Text) == rules.AnswerYes
	}
	if !confirmed || sc.v.State != vocab.StateResolved || sc.v.SatisfactionAskedAt != nil {
		return nil, nil
	}
	first, err := sc.tx.MarkSatisfactionAsked(sc.ctx, sc.v.ID)
	if err != nil || !first {
		return nil, err
	}
	now := x.opts.Clock.Now()
	sc.v.SatisfactionAskedAt = &now
	exp := now.Add(x.opts.LinkTTL)
	base := strings.TrimRight(x.opts.BaseURL, "/")
	out := make([]rules.RatingLink, 5)
	for i := range out {
		score := i + 1
		tok := x.opts.Signer.LinkToken(linkRate+strconv.Itoa(score), sc.v.ID, exp)
		out[i] = rules.RatingLink{Score: score, URL: base + "/rate?t=" + url.QueryEscape(tok)}
	}
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventSatisfactionAsked, "", "the thank-you asks how we did (1–5)", nil); err != nil {
		return nil, err
	}
	return out, nil
}

// ratingReply takes a customer's reply to the satisfaction question ("4",
// "5 stars", "2 - took a week"): the score and comment go on the ticket
// and the rules do not run, so a rating never reopens the ticket or pages
// anyone. A low score (1 or 2) that comes with words is also handed to the
// rules, which reopen the ticket: such a reply needs a person. done says
// whether the message is fully handled.
func (x *Executor) ratingReply(sc *scope, msg *storage.Message, role string) (done bool, err error) {
	v := sc.v
	if role != rules.RoleCustomer || msg.Class != vocab.ClassHuman || msg.Imported || v.SatisfactionAskedAt == nil ||
		v.SatisfactionScore != 0 || v.State != vocab.StateResolved {
		return false, nil
	}
	score, comment, ok := rules.ParseRating(newText(msg))
	if !ok {
		return false, nil
	}
	if err := x.rate(sc, score, comment, "by reply", &msg.ID); err != nil {
		return false, err
	}
	return !(score <= 2 && comment != ""), nil
}

// rate records a score on the ticket and its timeline.
func (x *Executor) rate(sc *scope, score int, comment, how string, msgRow *int64) error {
	first, err := sc.tx.RecordSatisfaction(sc.ctx, sc.v.ID, score, comment)
	if err != nil || !first {
		return err
	}
	sc.v.SatisfactionScore, sc.v.SatisfactionComment = score, comment
	detail := fmt.Sprintf("customer rated %d/5 %s", score, how)
	if comment != "" {
		detail += ": " + comment
	}
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventSatisfactionRated, sc.v.Customer.Email, detail, msgRow)
}

// Rate applies a customer's click on a signed satisfaction link, with an
// optional comment from the landing page. The first answer stands; a
// second click changes nothing. It returns the ticket and the score on it.
func (x *Executor) Rate(ctx context.Context, token, comment string) (int64, int, error) {
	purpose, ticket, err := x.opts.Signer.VerifyLinkToken(token, x.opts.Clock.Now())
	if err != nil {
		return 0, 0, err
	}
	s, ok := strings.CutPrefix(purpose, linkRate)
	score, cerr := strconv.Atoi(s)
	if !ok || cerr != nil || score < 1 || score > 5 || strconv.Itoa(score) != s {
		return 0, 0, fmt.Errorf("rate: link purpose %q", purpose)
	}
	if len(comment) > 4000 {
		comment = comment[:4000]
	}
	var stored int
	err = x.onTicket(ctx, ticket, func(sc *scope) error {
		if err := x.rate(sc, score, strings.TrimSpace(comment), "by link", nil); err != nil {
			return err
		}
		stored = sc.v.SatisfactionScore
		return nil
	})
	return ticket, stored, err
}
