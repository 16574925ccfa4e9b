package web

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/tendhq/tend/mail/replytext"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// evidenceView is one threading clue, as shown under a message.
type evidenceView struct {
	Kind     string
	Ticket   int64
	Detail   string
	Accepted bool
}

// messageView is a message on the timeline.
type messageView struct {
	storage.Message
	To, Cc      []string
	Attachments []storage.Attachment
	// ShowHTML: the message has no text part, so its sanitized HTML is
	// shown; when it has one, the text is what the customer wrote and
	// the HTML is only decoration.
	ShowHTML bool
	// Threading is the one-line summary of how the message found its
	// ticket; Evidence every clue considered; EvidenceRaw the stored
	// evidence when it is not the expected JSON.
	Threading   string
	Evidence    []evidenceView
	EvidenceRaw string
	// Delivery is, for mail we send, where it stands: sent, queued, not
	// sent because no relay is configured, or failed and why.
	Delivery        string
	DeliveryProblem bool
	// Source is, on an agent's answer as the customer got it (the copy
	// tend relayed), the agent's own mail it was made from: what the
	// agent wrote, with the quotes and commands the copy left out. It is
	// shown folded under the copy instead of as a second message.
	Source *messageView
}

// AuthBadge is the sender verdict of a received message in a word or
// two, "" for mail we sent.
func (m *messageView) AuthBadge() string {
	switch {
	case m.Direction != storage.DirectionIn:
		return ""
	case m.Auth.Authenticated():
		return "sender verified: " + m.Auth.FromDomain
	case m.Auth.Method != "":
		return "sender not verified"
	}
	return "sender not checked"
}

// AuthWarn marks a received message whose sender was checked and not
// proven.
func (m *messageView) AuthWarn() bool {
	return m.Direction == storage.DirectionIn && m.Auth.Method != "" && !m.Auth.Authenticated()
}

// AuthDetail is the verdict in full, for the message's details.
func (m *messageView) AuthDetail() string {
	a := m.Auth
	if m.Direction != storage.DirectionIn || a.Method == "" {
		return ""
	}
	if a.Method == "web" {
		return "written in tend's web view by a signed-in agent"
	}
	with := func(res, dom string) string {
		if dom == "" {
			return res
		}
		return res + " (" + dom + ")"
	}
	by := "checked by tend"
	if a.Method == "authres" {
		by = "Authentication-Results of " + a.ServID
	}
	aligned := "no aligned pass"
	if a.Aligned {
		aligned = "aligned with " + a.FromDomain
	}
	return fmt.Sprintf("dkim=%s spf=%s dmarc=%s · %s · %s", with(a.DKIM, a.DKIMDomain), with(a.SPF, a.SPFDomain), a.DMARC, aligned, by)
}

// timelineItem is a message or an event, in time order.
type timelineItem struct {
	At      time.Time
	Message *messageView
	Event   *storage.Event
}

// ticketData is what ticket.html renders.
type ticketData struct {
	Agent    storage.Agent
	CSRF     string
	T        storage.TicketDetail
	Items    []timelineItem
	CanAct   bool
	Agents   []storage.Agent
	Flash    string
	Error    string
	Reasons  []string
	Verb     map[string]bool // which actions the ticket's state offers
	Attached int             // attachments on the whole ticket
	// History is the customer's other tickets, open first.
	History []storage.HistoryTicket
	// NotSolved: the customer's last answer to "is it solved?" was no
	// (by mail or by link), and the ticket is not done.
	NotSolved bool
	// CanAnswer shows the reply and note form; Newest is the Message-ID
	// of the newest message shown, which the form sends back (see
	// Answer.InReplyTo).
	CanAnswer bool
	Newest    string
	// RefreshMS is live.js's slow redraw period; Live: the server has
	// an event stream.
	RefreshMS int64
	Live      bool
}

// flash is the confirmation shown after an action. It is chosen by the
// action's name so that nothing from the URL is echoed into the page.
func flash(action string) string {
	switch action {
	case actionResolve:
		return "Resolution proposed: the customer is asked to confirm."
	case actionReopen:
		return "Ticket reopened."
	case actionClose:
		return "Ticket closed."
	case actionAssign:
		return "Assignee changed."
	case actionMerge:
		return "Merged: the other ticket's messages are now here, and its number leads here."
	case actionRelease:
		return "Held mail released: it is being sent."
	case "reply":
		return answerFlash(false)
	case "note":
		return answerFlash(true)
	}
	return ""
}

func (s *Server) ticketPage(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	n, err := pathNumber(r, "number")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d, err := s.store.GetTicket(r.Context(), n)
	if err != nil {
		s.fail(w, r, "ticket page", err)
		return
	}
	if d.Number != n {
		// A merged ticket's old number redirects to the surviving one.
		http.Redirect(w, r, "/tickets/"+itoa(d.Number), http.StatusMovedPermanently)
		return
	}
	s.showTicket(w, r, sess, d, http.StatusOK, flash(r.URL.Query().Get("done")), "")
}

// showTicket renders a loaded ticket with an optional confirmation or
// error line.
func (s *Server) showTicket(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo, d storage.TicketDetail, code int, flash, errMsg string) {
	data, err := s.ticketData(r.Context(), sess, d)
	if err != nil {
		s.internalError(w, r, "ticket page", err)
		return
	}
	data.Flash, data.Error = flash, errMsg
	s.render(w, "ticket.html", code, data)
}

func (s *Server) ticketData(ctx context.Context, sess storage.SessionInfo, d storage.TicketDetail) (ticketData, error) {
	ids := make([]int64, len(d.Messages))
	for i, m := range d.Messages {
		ids[i] = m.ID
	}
	atts, err := s.store.Attachments(ctx, ids)
	if err != nil {
		return ticketData{}, err
	}
	var newest time.Time
	out := ticketData{Agent: sess.Agent, CSRF: sess.CSRF, T: d, Items: timeline(d, atts), Reasons: []string{reasonSpam, reasonNoResponse, reasonDuplicate}}
	outbox, err := s.store.Outbox(ctx, d.Number)
	if err != nil {
		return ticketData{}, err
	}
	byID := make(map[int64]storage.OutboxMail, len(outbox))
	for _, o := range outbox {
		byID[o.ID] = o
	}
	for _, it := range out.Items {
		if m := it.Message; m != nil && m.OutboxID != nil {
			m.Delivery, m.DeliveryProblem = s.delivery(byID[*m.OutboxID])
		}
	}
	out.Items = foldAnswers(d, out.Items, func(m *messageView) bool {
		o, ok := byID[*m.OutboxID]
		return ok && o.Kind == storage.OutboxToCustomer && o.Template == ""
	})
	for _, a := range atts {
		out.Attached += len(a)
	}
	hist, err := s.store.CustomerHistory(ctx, d.Customer, 0)
	if err != nil {
		return ticketData{}, err
	}
	for _, h := range hist {
		if h.Number != d.Number {
			out.History = append(out.History, h)
		}
	}
	out.NotSolved = customerSaysNotSolved(d)
	out.CanAnswer, out.RefreshMS, out.Live = s.opts.Answer != nil, s.opts.QueueRefresh.Milliseconds(), s.opts.Live != nil
	for _, m := range d.Messages {
		if out.Newest == "" || !m.ReceivedAt.Before(newest) {
			out.Newest, newest = m.MessageID, m.ReceivedAt
		}
	}
	out.CanAct = s.opts.Actions != nil && canAct(sess.Agent.Role)
	if out.CanAct {
		if out.Agents, err = s.store.Agents(ctx); err != nil {
			return ticketData{}, err
		}
		out.Verb = verbs(d.State)
		out.Verb[actionRelease] = d.MailHeldSince != nil
	}
	return out, nil
}

// customerSaysNotSolved reads the timeline: the customer's newest answer
// since resolution was last proposed is a no (a reply the executor read as
// no, or the not-solved link), and the ticket is still being worked on.
func customerSaysNotSolved(d storage.TicketDetail) bool {
	if d.State == vocab.StateResolved || d.State == vocab.StateClosed {
		return false
	}
	no := false
	for _, e := range d.Events {
		switch e.Kind {
		case vocab.EventResolveRequested:
			no = false
		case vocab.EventConfirmationAnswered:
			no = strings.Contains(e.Detail, "not solved")
		case vocab.EventConfirmationClicked:
			no = strings.Contains(e.Detail, "not_solved")
		}
	}
	return no
}

// verbs lists the actions a ticket's state offers. The executor has the
// last word (it answers ErrNotAllowed); this only hides buttons that
// cannot work.
func verbs(state vocab.State) map[string]bool {
	done := state == vocab.StateResolved || state == vocab.StateClosed
	return map[string]bool{
		actionResolve: !done && state != vocab.StateProposed,
		actionReopen:  done || state == vocab.StateProposed || state == vocab.StateUnconfirmed,
		actionClose:   state != vocab.StateClosed,
		actionAssign:  true,
	}
}

// timeline interleaves messages and events by time. The event that
// records a message's arrival is folded into the message (it carries the
// threading summary); at equal times the ticket's creation comes first,
// then messages, then what they caused.
func timeline(d storage.TicketDetail, atts map[int64][]storage.Attachment) []timelineItem {
	threading := map[int64]string{}
	items := make([]timelineItem, 0, len(d.Messages)+len(d.Events))
	for i := range d.Events {
		e := &d.Events[i]
		// The ingest path writes message.received for each message; its
		// detail (how the message was threaded) is shown on the message
		// itself instead of as a separate line.
		if e.Kind == vocab.EventMessageReceived && e.MessageRowID != nil {
			threading[*e.MessageRowID] = e.Detail
			continue
		}
		items = append(items, timelineItem{At: e.CreatedAt, Event: e})
	}
	for _, m := range d.Messages {
		mv := &messageView{Message: m, To: splitList(m.ToAddrs), Cc: splitList(m.CcAddrs), Attachments: atts[m.ID], Threading: threading[m.ID]}
		mv.ShowHTML = m.HTML != "" && (m.Text == "" || strings.Contains(m.ParseError, enmime.ErrorPlainTextFromHTML))
		mv.Evidence, mv.EvidenceRaw = parseEvidence(m.Evidence)
		items = append(items, timelineItem{At: m.ReceivedAt, Message: mv})
	}
	order := func(it timelineItem) int {
		switch {
		case it.Event != nil && it.Event.Kind == vocab.EventTicketCreated:
			return 0
		case it.Message != nil:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(items, func(a, b timelineItem) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return order(a) - order(b)
	})
	return items
}

// answerEvents are the events the executor writes, pointing at the
// agent's mail, when it relays that mail's text to the customer (queued,
// or held by the ticket's fuse or a collision).
var answerEvents = map[vocab.EventKind]bool{vocab.EventReplyQueued: true, vocab.EventReplyHeld: true}

// foldAnswers shows each agent answer once. An agent answers by mail; tend
// relays the new text (without the quotes and the #commands) to the
// customer as a mail of its own, so the ticket holds both the agent's mail
// and the copy sent. The copy is what the customer got and stays on the
// timeline; the agent's mail moves under it (messageView.Source).
//
// Nothing in the rows links the two, so they are paired by what is known
// of how they are made: the agent's mail is named by a reply event
// (answerEvents), the copy (relayed reports it: outgoing to the customer,
// rendered from no template) comes after it, and every line of the copy's
// text is, in order, in the new text of the agent's mail. A copy pairs
// with the latest such mail not already paired; a mail or copy that pairs
// with nothing is shown as before, so a wrong guess can only fail to fold.
func foldAnswers(d storage.TicketDetail, items []timelineItem, relayed func(*messageView) bool) []timelineItem {
	answered := map[int64]bool{}
	for _, e := range d.Events {
		if answerEvents[e.Kind] && e.MessageRowID != nil {
			answered[*e.MessageRowID] = true
		}
	}
	if len(answered) == 0 {
		return items
	}
	var sources, copies []*messageView
	for _, it := range items {
		m := it.Message
		switch {
		case m == nil:
		case m.Direction == storage.DirectionIn && answered[m.ID]:
			sources = append(sources, m)
		case m.Direction == storage.DirectionOut && m.OutboxID != nil && relayed(m):
			copies = append(copies, m)
		}
	}
	byID := func(a, b *messageView) int { return cmp.Compare(a.ID, b.ID) }
	slices.SortFunc(sources, byID)
	slices.SortFunc(copies, byID)
	folded := map[int64]bool{}
	for _, c := range copies {
		want := contentLines(c.Text)
		for i := len(sources) - 1; i >= 0; i-- {
			src := sources[i]
			if src.ID > c.ID || folded[src.ID] || !isSubsequence(want, contentLines(newText(src.Message))) {
				continue
			}
			c.Source, folded[src.ID] = src, true
			if len(c.Attachments) == 0 {
				// The agent's attachments went out with the copy.
				c.Attachments = src.Attachments
			}
			break
		}
	}
	if len(folded) == 0 {
		return items
	}
	return slices.DeleteFunc(items, func(it timelineItem) bool { return it.Message != nil && folded[it.Message.ID] })
}

// newText is what an agent's mail adds to the conversation, as the
// executor reads it: the text without what it quotes.
func newText(m storage.Message) string {
	if m.Text != "" {
		return replytext.Extract(m.Text)
	}
	return replytext.ExtractHTML(m.HTML)
}

// contentLines are the non-blank lines of s, trimmed: what survives the
// relay's tidying of whitespace.
func contentLines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// isSubsequence reports whether every line of want occurs in have, in
// order; an empty want never matches (a copy with no text is no evidence).
func isSubsequence(want, have []string) bool {
	if len(want) == 0 {
		return false
	}
	i := 0
	for _, h := range have {
		if i < len(want) && h == want[i] {
			i++
		}
	}
	return i == len(want)
}

// parseEvidence reads a message's stored threading evidence: a JSON list
// of clues (threading.Evidence, marshalled without tags, or the same with
// lower-case keys). An empty list or null is no evidence. Anything else is
// returned as text to show verbatim, so that evidence is never hidden
// because its shape changed.
func parseEvidence(s string) ([]evidenceView, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ""
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, indentJSON(s)
	}
	out := make([]evidenceView, 0, len(raw))
	for _, m := range raw {
		var e evidenceView
		for k, v := range m {
			switch strings.ToLower(k) {
			case "kind":
				_ = json.Unmarshal(v, &e.Kind)
			case "ticket":
				_ = json.Unmarshal(v, &e.Ticket)
			case "detail":
				_ = json.Unmarshal(v, &e.Detail)
			case "accepted":
				_ = json.Unmarshal(v, &e.Accepted)
			}
		}
		if e.Kind == "" && e.Detail == "" {
			return nil, indentJSON(s)
		}
		out = append(out, e)
	}
	return out, ""
}

// indentJSON pretty-prints s when it is JSON, for the verbatim view.
func indentJSON(s string) string {
	var b bytes.Buffer
	if json.Indent(&b, []byte(s), "", "  ") != nil {
		return s
	}
	return b.String()
}

// delivery describes where an outgoing mail stands.
func (s *Server) delivery(o storage.OutboxMail) (string, bool) {
	switch o.Status {
	case storage.OutboxSent:
		return "sent", false
	case storage.OutboxFailed:
		return "failed: " + o.LastError, true
	case storage.OutboxPending:
		if !s.opts.RelayConfigured {
			return "not sent: no relay configured", true
		}
		if o.Attempts > 0 {
			return fmt.Sprintf("queued, %d attempts so far: %s", o.Attempts, o.LastError), true
		}
		return "queued", false
	}
	return o.Status, false
}
