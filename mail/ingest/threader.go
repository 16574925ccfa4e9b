package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// DecisionThreader places messages with threading.Decide, running its
// lookups inside the delivery transaction.
type DecisionThreader struct {
	Config threading.Config
}

// Place implements Threader.
func (t DecisionThreader) Place(ctx context.Context, m *Message, tx *storage.Tx) (storage.Placement, error) {
	tm := threading.FromFields(m.Fields, m.Env.To)
	tm.IsBounce = m.Classified.Class == vocab.ClassBounce
	if m.Derived {
		tm.MessageID = ""
	}
	d, err := threading.Decide(ctx, t.Config, tm, lookup{tx})
	if err != nil {
		return storage.Placement{}, err
	}
	p := storage.Placement{Ticket: d.Ticket, NoTicket: d.NoTicket}
	if m.Classified.Class == vocab.ClassOwnMail && d.Reply == nil && !d.NoTicket {
		// Our own mail came back (a loop header, our Message-ID domain):
		// keep it, but never let it open or feed a ticket.
		d.Evidence = append(d.Evidence, threading.Evidence{Kind: threading.EvidenceLoop, Detail: "our own mail came back: " + strings.Join(m.Classified.Reasons, "; "), Accepted: true})
		p.Ticket, p.NoTicket = 0, true
	}
	if m.Classified.Class == vocab.ClassBounce && d.Reply == nil && !p.NoTicket {
		// A delivery report is about our mail, not a customer's word: it
		// is kept off the ticket it references and handled as a bounce
		// (the outbox row it reports on is marked failed, on that ticket's
		// timeline), never answered or shown as customer mail.
		d.Evidence = append(d.Evidence, threading.Evidence{Kind: threading.EvidenceBounce, Ticket: p.Ticket,
			Detail: fmt.Sprintf("delivery status notification about ticket #%d: handled as a bounce, not as customer mail", p.Ticket), Accepted: true})
		p.Ticket, p.NoTicket = 0, true
	}
	if d.Reply != nil {
		p.AgentID, p.Note, p.Role = d.Reply.Agent, d.Reply.Purpose == threading.PurposeNote, "agent"
	} else if !p.NoTicket && (m.Classified.Class == vocab.ClassHuman || m.Classified.Class == vocab.ClassList) {
		// A reply-all's other recipients join the ticket. So does the
		// list address of a list thread: it is what lets the next
		// subscriber's reply (To: the list) thread by its reference to a
		// customer's mail (see threading.Decide, rule 3).
		p.Participants = t.others(m)
		if d.Ticket != 0 && m.From != "" && !t.own(m.From) {
			// Whoever writes into a ticket on evidence strong enough to
			// join takes part from then on (a colleague answering our
			// forwarded mail), as threading's Lookup expects; on a new
			// ticket the sender is its customer already.
			p.Participants = append([]string{m.From}, p.Participants...)
		}
		if d.Ticket != 0 && len(p.Participants) > 0 && !mayWiden(d, m.Auth) {
			d.Evidence = append(d.Evidence, threading.Evidence{Kind: threading.EvidenceSenderAuth, Ticket: d.Ticket,
				Detail: fmt.Sprintf("sender not verified (%s) and joined on weak evidence: %s not added to ticket %d", describeAuth(m.Auth), strings.Join(p.Participants, ", "), d.Ticket)})
			p.Participants = nil
		}
	}
	p.Evidence, p.Summary = evidence(d)
	return p, nil
}

// mayWiden is the audience rule: a message brings new people onto an
// existing ticket only on strong evidence (a reference to our signed
// mail, which only someone we wrote to has) or from an authenticated
// sender. A subject tag or a subject is known to anyone who saw one mail
// of the thread, and a From field is written by the sender: a stranger
// writing "From: <the customer>" with "Re: [#4]" and a Cc of their own
// would otherwise receive the agent's next answer.
func mayWiden(d threading.Decision, v senderauth.Verdict) bool {
	return d.Strong() || v.Authenticated()
}

// describeAuth is the verdict in a few words, for the timeline.
func describeAuth(v senderauth.Verdict) string {
	if !v.Checked() {
		return "no verification configured"
	}
	return fmt.Sprintf("dkim=%s spf=%s dmarc=%s for %s", v.DKIM, v.SPF, v.DMARC, nonEmptyOr(v.FromDomain, "no From domain"))
}

func nonEmptyOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}

// others are the To and Cc addresses of m that are not ours.
func (t DecisionThreader) others(m *Message) []string {
	var out []string
	for _, a := range append(append([]string{}, m.To...), m.Cc...) {
		if a == m.From || t.own(a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

func (t DecisionThreader) own(addr string) bool {
	for _, o := range t.Config.OwnAddresses {
		if addr == o {
			return true
		}
	}
	dom := threading.Domain(addr)
	for _, d := range t.Config.OwnDomains {
		if dom == d {
			return true
		}
	}
	return false
}

// evidence renders the decision for the message row (JSON) and the
// timeline (the accepted clue first, then what was rejected and why).
func evidence(d threading.Decision) (string, string) {
	type row struct {
		Kind     string `json:"kind"`
		Ticket   int64  `json:"ticket,omitempty"`
		Detail   string `json:"detail"`
		Accepted bool   `json:"accepted"`
	}
	rows := make([]row, len(d.Evidence))
	var accepted, rejected []string
	for i, e := range d.Evidence {
		rows[i] = row{string(e.Kind), e.Ticket, e.Detail, e.Accepted}
		if e.Accepted {
			accepted = append(accepted, e.Detail)
		} else {
			rejected = append(rejected, e.Detail)
		}
	}
	b, _ := json.Marshal(rows) // plain structs: cannot fail
	return string(b), strings.Join(append(accepted, rejected...), "; ")
}

// lookup adapts the delivery transaction to threading.Lookup.
type lookup struct{ tx *storage.Tx }

func (l lookup) TicketsByMessageIDs(ctx context.Context, ids []string) ([]threading.StoredMessage, error) {
	refs, err := l.tx.TicketsByMessageIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]threading.StoredMessage, len(refs))
	for i, r := range refs {
		out[i] = threading.StoredMessage{MessageID: r.MessageID, Ticket: r.Ticket, Outbound: r.Outbound}
	}
	return out, nil
}

func (l lookup) Ticket(ctx context.Context, number int64) (threading.TicketInfo, bool, error) {
	info, ok, err := l.tx.Ticket(ctx, number)
	if err != nil || !ok {
		return threading.TicketInfo{}, ok, err
	}
	out := threading.TicketInfo{Number: info.Number, State: info.State, Customer: info.Customer, UpdatedAt: info.UpdatedAt}
	if info.ResolvedAt != nil {
		out.ResolvedAt = *info.ResolvedAt
	}
	return out, true, nil
}

func (l lookup) IsParticipant(ctx context.Context, ticket int64, addrs []string) (bool, error) {
	return l.tx.IsParticipant(ctx, ticket, addrs)
}

func (l lookup) TicketByThreadIndex(ctx context.Context, root string) (int64, bool, error) {
	return l.tx.TicketByThreadRoot(ctx, root)
}

func (l lookup) RecentTicketBySubject(ctx context.Context, customer, normSubject string, since time.Time) (int64, bool, error) {
	return l.tx.RecentTicketBySubject(ctx, customer, normSubject, since)
}
