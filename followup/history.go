package followup

import (
	"fmt"
	"time"

	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// history is the customer's other tickets, open first, loaded once per
// event (one indexed query).
func (x *Executor) history(sc *scope) ([]storage.HistoryTicket, error) {
	if sc.historyLoaded {
		return sc.history, nil
	}
	all, err := sc.tx.CustomerHistory(sc.ctx, sc.v.Customer.Email, 20)
	if err != nil {
		return nil, err
	}
	sc.history = sc.history[:0]
	for _, h := range all {
		if h.Number != sc.v.ID {
			sc.history = append(sc.history, h)
		}
	}
	sc.historyLoaded = true
	return sc.history, nil
}

// customerLoad fills the rules' view of the customer's other tickets: how
// many still wait for us, and how often the customer wrote again on them.
func (x *Executor) customerLoad(sc *scope, t *rules.Ticket) error {
	hs, err := x.history(sc)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.State == vocab.StateNew || h.State == vocab.StateOpen {
			t.CustomerWaitingTickets++
			t.CustomerRepeatContacts += h.RepeatContacts
		}
	}
	return nil
}

// historyData is the history as notifications show it.
func (x *Executor) historyData(sc *scope) ([]rules.HistoryData, error) {
	hs, err := x.history(sc)
	if err != nil {
		return nil, err
	}
	now := x.opts.Clock.Now()
	out := make([]rules.HistoryData, 0, len(hs))
	for _, h := range hs {
		out = append(out, rules.HistoryData{Number: h.Number, Subject: h.Subject, State: h.State, Open: h.Open, Age: describeAge(now.Sub(h.CreatedAt))})
	}
	return out, nil
}

// describeAge is a duration as a person says it: "just now", "5 minutes",
// "3 hours", "2 days", "3 weeks". Rounded down: a ticket opened 47 hours
// ago is "1 day" old, never older than it is.
func describeAge(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return unit(int64(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return unit(int64(d/time.Hour), "hour")
	case d < 14*24*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	}
	return unit(int64(d/(7*24*time.Hour)), "week")
}
