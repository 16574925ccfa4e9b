package followup

import (
	"fmt"
	"time"

	"github.com/tendhq/tend/mail/agentcmd"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// checkFollowUps resolves the follow-up commands against the clock before
// anything runs, so that "#waiting until 2020-01-01" is explained to the
// agent instead of half-applied after the reply went out.
func (x *Executor) checkFollowUps(sc *scope, cmds []command) []string {
	var problems []string
	now := x.opts.Clock.Now()
	for _, c := range cmds {
		if c.When == nil {
			continue
		}
		if at := c.When.At(now, x.location(sc)); !at.After(now) {
			problems = append(problems, fmt.Sprintf("%s: %s is in the past", c, x.localTime(sc, at)))
		}
	}
	return problems
}

// followUp applies "#waiting until …", "#remind …" or "#snooze …": the
// ticket leaves the queue until then, when the follow_up timer brings it
// back with a notification. #waiting also waits for the customer.
func (x *Executor) followUp(sc *scope, c command, w *agentcmd.When, by string) error {
	at := w.At(x.opts.Clock.Now(), x.location(sc))
	if c.Name == string(agentcmd.Waiting) {
		if err := x.setState(sc, vocab.StateWaiting, "", by); err != nil {
			return err
		}
	}
	if err := sc.tx.Snooze(sc.ctx, sc.v.ID, &at); err != nil {
		return err
	}
	sc.v.SnoozedUntil = &at
	if err := sc.tx.Schedule(sc.ctx, sc.v.ID, storage.TimerFollowUp, at); err != nil {
		return err
	}
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventFollowUpSet, by, fmt.Sprintf("%s: out of the queue until %s", c, x.localTime(sc, at)), nil)
}

// wake ends a follow-up early or on time: the ticket is back in the
// queue and its timer disarmed. why goes on the timeline.
func (x *Executor) wake(sc *scope, why string) error {
	if sc.v.SnoozedUntil == nil {
		return nil
	}
	if err := sc.tx.Snooze(sc.ctx, sc.v.ID, nil); err != nil {
		return err
	}
	sc.v.SnoozedUntil = nil
	if err := sc.tx.Cancel(sc.ctx, sc.v.ID, storage.TimerFollowUp); err != nil {
		return err
	}
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventFollowUpEnded, "", why, nil)
}

// followUpDue is the follow_up timer firing: the ticket is back, and a
// ticket still waiting for the customer is ours again. The rules then
// notify (rule follow-up-due).
func (x *Executor) followUpDue(sc *scope, t storage.Timer) error {
	if err := x.wake(sc, "follow-up due: back in the queue"); err != nil {
		return err
	}
	if sc.v.State == vocab.StateWaiting {
		return x.setState(sc, vocab.StateOpen, "no answer by the follow-up date", "follow-up")
	}
	return nil
}

// location is the time zone follow-ups and promises are read in.
func (x *Executor) location(sc *scope) *time.Location {
	if c := x.policy(sc).Calendar; c != nil && c.Loc != nil {
		return c.Loc
	}
	return time.UTC
}

// localTime formats t for people in the ticket's zone.
func (x *Executor) localTime(sc *scope, t time.Time) string {
	return t.In(x.location(sc)).Format("Mon 2 Jan 2006 15:04 MST")
}
