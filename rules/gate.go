package rules

import (
	"strings"
	"time"

	"github.com/tendhq/tend/vocab"
)

// Gate is the loop and flood protection every automatic mail passes before
// it becomes an outbox row (RFC 3834 §2 and docs/design.md "Ticket Trick").
// It is pure: the executor applies it to each Action with Auto set and puts
// the reason of a refusal on the ticket's timeline, so the agent sees why
// the customer got nothing. Actions without Auto are always allowed.
//
// Refused: mail in answer to a message of any class but human (auto-reply,
// bounce, list, own mail, spam, report, and any class Gate does not know:
// it fails closed), to a message whose classification says NoAutoReply, to
// a Suspect message on any event but ticket.created (its first
// acknowledgement), or to one imported by IMAP backfill; mail to an empty,
// no-reply, postmaster, MAILER-DAEMON, list-robot (-request, owner-) or own
// address; mail to a bounce-suppressed address; more than
// opts.MaxAutoPerAddressPerHour to the address or opts.MaxAutoPerTicketPerDay
// on the ticket (the counts come from ev.Ticket). The two caps and the
// refusal for a suppressed address apply to mail that answers inbound mail
// (Action.Cause inbound); a notice a person's action caused is never
// capped, and to a suppressed address it is deferred (GateAll's Verdict
// says until when), never dropped.
func Gate(ev Event, a Action, opts Options) (allowed bool, reason string) {
	if !a.Auto {
		return true, ""
	}
	opts = opts.withDefaults()
	if m := ev.Message; m != nil {
		if m.Imported {
			return false, "not sent: the message was imported from the mailbox history"
		}
		if why := classRefusal(ev.Type, m); why != "" {
			return false, "not sent: " + why
		}
	}
	if a.To != ToCustomer {
		// Staff mail: the flood counters and the suppression are about the
		// customer, so only a concrete address set by the executor is checked.
		if a.Address == "" {
			return true, ""
		}
		if why := refusedAddress(a.Address, ev.Ticket.Inbox.Address, opts.OwnAddresses); why != "" {
			return false, "not sent: " + why
		}
		return true, ""
	}
	to := ev.Ticket.Customer.Address
	if why := refusedAddress(to, ev.Ticket.Inbox.Address, opts.OwnAddresses); why != "" {
		return false, "not sent: " + why
	}
	if until := ev.Ticket.CustomerSuppressedUntil; ev.Now.Before(until) {
		if a.Cause == CausePerson {
			return false, "held: " + to + " bounced; automatic mail is paused until " + until.UTC().Format("2006-01-02 15:04 MST")
		}
		return false, "not sent: " + to + " bounced; automatic mail is paused until " + until.UTC().Format("2006-01-02 15:04 MST")
	}
	if a.Cause == CausePerson {
		// A person's action: the customer must get it. The executor's
		// per-ticket fuse still bounds a loop.
		return true, ""
	}
	if ev.Ticket.AutoMailsToCustomerLastHour >= opts.MaxAutoPerAddressPerHour {
		return false, "not sent: " + to + " already got the maximum number of automatic mails this hour (flood protection)"
	}
	if ev.Ticket.AutoMailsOnTicketToday >= opts.MaxAutoPerTicketPerDay {
		return false, "not sent: this ticket already sent the maximum number of automatic mails today (flood protection)"
	}
	return true, ""
}

// classRefusal says why the classification of m forbids automatic mail in
// answer to it on event eventType, or "" when it allows it.
func classRefusal(eventType vocab.EventKind, m *Message) string {
	switch p, why := Permit(m.Classification()); p {
	case Permitted:
		return ""
	case FirstAcknowledgement:
		if eventType == vocab.EventTicketCreated {
			return ""
		}
		return why
	default:
		return why
	}
}

// Verdict is Gate's answer for one action of a batch. A notice that is not
// allowed now but must not be lost has Until set: it is deferred to then.
type Verdict struct {
	Allowed bool
	Reason  string
	Until   time.Time
}

// GateAll gates every action of one Evaluate result in order, counting the
// automatic mails it allows against the flood limits, so two automatic
// mails from one event cannot both slip under a limit of one.
func GateAll(ev Event, actions []Action, opts Options) []Verdict {
	out := make([]Verdict, len(actions))
	for i, a := range actions {
		ok, why := Gate(ev, a, opts)
		out[i] = Verdict{Allowed: ok, Reason: why}
		if !ok && a.Cause == CausePerson && a.To == ToCustomer && ev.Now.Before(ev.Ticket.CustomerSuppressedUntil) && strings.HasPrefix(why, "held: ") {
			out[i].Until = ev.Ticket.CustomerSuppressedUntil
		}
		if ok && a.Auto {
			ev.Ticket.AutoMailsToCustomerLastHour++
			ev.Ticket.AutoMailsOnTicketToday++
		}
	}
	return out
}

// refusedAddress says why an address must never get automatic mail, or ""
// when it may. The list follows docs/design.md: robots never read the answer,
// and answering our own addresses either loops or leaks the acknowledgement
// to whoever controls the mailbox ("Ticket Trick").
func refusedAddress(addr, inbox string, own []string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if addr == "" {
		return "the recipient address is empty"
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "the recipient address " + addr + " is not a mail address"
	}
	local, domain := addr[:at], addr[at+1:]
	inbox = strings.ToLower(strings.TrimSpace(inbox))
	if addr == inbox {
		return addr + " is this inbox's own address"
	}
	for _, o := range own {
		if strings.EqualFold(strings.TrimSpace(o), addr) {
			return addr + " is one of our own addresses"
		}
	}
	if i := strings.LastIndexByte(inbox, '@'); i >= 0 && inbox[i+1:] == domain &&
		strings.HasPrefix(local, "reply+") {
		return addr + " is one of our own reply addresses"
	}
	// Sub-addresses ("noreply+abc@") are judged by their base.
	base := local
	if i := strings.IndexByte(base, '+'); i > 0 {
		base = base[:i]
	}
	switch base {
	case "mailer-daemon", "postmaster", "noreply", "no-reply", "no_reply",
		"donotreply", "do-not-reply", "do_not_reply", "bounce", "bounces":
		return addr + " is a robot address that never reads replies"
	}
	if strings.HasSuffix(base, "-request") || strings.HasPrefix(base, "owner-") ||
		strings.HasSuffix(base, "-owner") {
		return addr + " is a mailing list robot"
	}
	return ""
}
