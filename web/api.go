package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

type ctxKey int

const (
	tokenKey ctxKey = iota
	sessionKey
)

// api wraps a JSON handler with Bearer token authentication.
func (s *Server) api(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		secret, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tend"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing bearer token"})
			return
		}
		tok, err := s.store.CheckToken(r.Context(), strings.TrimSpace(secret))
		if err != nil && clientGone(r.Context(), err) {
			s.internalError(w, r, "api token", err)
			return
		}
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tend", error="invalid_token"`)
			writeJSON(w, httpStatus(err), map[string]string{"error": "invalid token"})
			return
		}
		viewer, err := s.tokenViewer(r.Context(), tok)
		if err == nil {
			r = r.WithContext(context.WithValue(context.WithValue(r.Context(), tokenKey, tok), viewerKey, viewer))
			err = s.mayOpen(r)
		}
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			code := httpStatus(err)
			if code == http.StatusInternalServerError {
				if clientGone(r.Context(), err) {
					s.log.Debug("api: client gone", "path", r.URL.Path, "err", err)
					w.WriteHeader(statusClientGone)
					return
				}
				s.log.Error("api", "path", r.URL.Path, "err", err)
				writeJSON(w, code, map[string]string{"error": "internal error"})
				return
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
		}
	})
}

// apiNoRoute answers, in JSON as every API error is, a path under /api/
// that no endpoint serves: 405 with Allow when another method would be
// served there, else 404. (The mux's own answers are text/plain.)
func (s *Server) apiNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		other := r.Clone(r.Context())
		other.Method = m
		if _, pattern := s.mux.Handler(other); pattern != "/api/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " is not allowed here"})
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such API endpoint"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type badRequest string

func (e badRequest) Error() string { return string(e) }

// filterFromQuery reads the API list's filter: the queue's filters (state,
// inbox, assignee, customer, tag), a limit and the cursor of a previous
// page's next_cursor.
func filterFromQuery(r *http.Request) (storage.QueueFilter, error) {
	v := r.URL.Query()
	q, err := parseQueueQuery(url.Values{
		"state": {v.Get("state")}, "inbox": {v.Get("inbox")}, "assignee": {v.Get("assignee")},
		"customer": {v.Get("customer")}, "tag": {v.Get("tag")}, "after": {v.Get("cursor")}, "q": {v.Get("q")},
	})
	if err != nil {
		return storage.QueueFilter{}, err
	}
	f := q.filter(nil, 50)
	// The API lists tickets put aside too: a script wants every open one.
	f.Snoozed = true
	if v := v.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, badRequest("limit must be 1..500")
		}
		f.Limit = n
	}
	return f, nil
}

// TicketJSON is a ticket in the API.
type TicketJSON struct {
	Number         int64       `json:"number"`
	Subject        string      `json:"subject"`
	State          vocab.State `json:"state"`
	Priority       string      `json:"priority"`
	Customer       string      `json:"customer"`
	CustomerName   string      `json:"customer_name,omitempty"`
	Assignee       string      `json:"assignee,omitempty"`
	Inbox          string      `json:"inbox"`
	Breached       bool        `json:"breached"`
	RepeatContacts int         `json:"repeat_contacts"`
	Tags           []string    `json:"tags"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
	LastCustomerAt *time.Time  `json:"last_customer_at,omitempty"`
	LastAgentAt    *time.Time  `json:"last_agent_at,omitempty"`
	// MailHeldSince is set while the ticket's mail fuse holds its mail.
	MailHeldSince *time.Time `json:"mail_held_since,omitempty"`
	// WaitingSince is the customer's oldest unanswered message.
	WaitingSince *time.Time `json:"waiting_since,omitempty"`
	SnoozedUntil *time.Time `json:"snoozed_until,omitempty"`
	LinkedTo     *int64     `json:"linked_to,omitempty"`
	Language     string     `json:"language,omitempty"`
	// Satisfaction is the customer's rating, when they gave one.
	Satisfaction *SatisfactionJSON `json:"satisfaction,omitempty"`
}

// SatisfactionJSON is a customer's answer to "how did we do?".
type SatisfactionJSON struct {
	Score   int    `json:"score"`
	Comment string `json:"comment,omitempty"`
}

func ticketJSON(t storage.TicketRow) TicketJSON {
	j := TicketJSON{
		Number: t.Number, Subject: t.Subject, State: t.State, Priority: t.Priority, Customer: t.Customer,
		CustomerName: t.CustomerName, Assignee: t.Assignee, Inbox: t.Inbox, Breached: t.Breached,
		RepeatContacts: t.RepeatContacts, Tags: strings.Fields(t.Tags), CreatedAt: t.CreatedAt,
		UpdatedAt: t.UpdatedAt, LastCustomerAt: t.LastCustomerAt, LastAgentAt: t.LastAgentAt,
		WaitingSince: t.WaitingSince, SnoozedUntil: t.SnoozedUntil, LinkedTo: t.LinkedTo, Language: t.Language,
		MailHeldSince: t.MailHeldSince,
	}
	if t.SatisfactionScore > 0 {
		j.Satisfaction = &SatisfactionJSON{Score: t.SatisfactionScore, Comment: t.SatisfactionComment}
	}
	return j
}

func (s *Server) apiTickets(w http.ResponseWriter, r *http.Request) error {
	f, err := filterFromQuery(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return nil
	}
	if f.Visible, err = s.visibleInboxes(r.Context()); err != nil {
		return err
	}
	rows, more, err := s.store.Queue(r.Context(), f)
	if err != nil {
		return err
	}
	out := struct {
		Tickets    []TicketJSON `json:"tickets"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{Tickets: make([]TicketJSON, len(rows))}
	for i, t := range rows {
		out.Tickets[i] = ticketJSON(t.TicketRow)
	}
	if more {
		out.NextCursor = rows[len(rows)-1].Cursor().String()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// MessageJSON is a message in the API.
type MessageJSON struct {
	ID         int64           `json:"id"`
	Ticket     int64           `json:"ticket,omitempty"`
	MessageID  string          `json:"message_id"`
	From       string          `json:"from"`
	FromName   string          `json:"from_name,omitempty"`
	To         []string        `json:"to"`
	Cc         []string        `json:"cc"`
	Subject    string          `json:"subject"`
	Date       *time.Time      `json:"date,omitempty"`
	ReceivedAt time.Time       `json:"received_at"`
	Direction  string          `json:"direction"`
	Class      vocab.Class     `json:"class"`
	Imported   bool            `json:"imported,omitempty"`
	Text       string          `json:"text"`
	Parsed     bool            `json:"parsed"`
	ParseError string          `json:"parse_error,omitempty"`
	Evidence   json.RawMessage `json:"evidence,omitempty"`
	// SenderAuth is the sender authentication verdict of a received
	// message; absent on mail we sent.
	SenderAuth  *SenderAuthJSON  `json:"sender_auth,omitempty"`
	Attachments []AttachmentJSON `json:"attachments"`
}

// SenderAuthJSON is a received message's sender verdict in the API:
// results as in Authentication-Results. Checked is false when nothing was
// verified (sender_auth.verify off and no trusted Authentication-Results,
// or mail stored before verification existed).
type SenderAuthJSON struct {
	Checked       bool   `json:"checked"`
	Authenticated bool   `json:"authenticated"`
	Method        string `json:"method,omitempty"`
	AuthServID    string `json:"authserv_id,omitempty"`
	DKIM          string `json:"dkim,omitempty"`
	DKIMDomain    string `json:"dkim_domain,omitempty"`
	SPF           string `json:"spf,omitempty"`
	SPFDomain     string `json:"spf_domain,omitempty"`
	DMARC         string `json:"dmarc,omitempty"`
	FromDomain    string `json:"from_domain,omitempty"`
	Aligned       bool   `json:"aligned"`
}

// AttachmentJSON is an attachment's metadata in the API.
type AttachmentJSON struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func messageJSON(m storage.Message, atts []storage.Attachment) MessageJSON {
	out := MessageJSON{
		ID: m.ID, MessageID: m.MessageID, From: m.FromAddr, FromName: m.FromName, To: splitList(m.ToAddrs),
		Cc: splitList(m.CcAddrs), Subject: m.Subject, Date: m.Date, ReceivedAt: m.ReceivedAt,
		Direction: m.Direction, Class: m.Class, Imported: m.Imported, Text: m.Text, Parsed: m.Parsed, ParseError: m.ParseError,
		Attachments: []AttachmentJSON{},
	}
	if m.TicketID != nil {
		out.Ticket = *m.TicketID
	}
	if json.Valid([]byte(m.Evidence)) {
		out.Evidence = json.RawMessage(m.Evidence)
	}
	if m.Direction == storage.DirectionIn {
		a := m.Auth
		out.SenderAuth = &SenderAuthJSON{Checked: a.Method != "", Authenticated: a.Authenticated(), Method: a.Method, AuthServID: a.ServID,
			DKIM: a.DKIM, DKIMDomain: a.DKIMDomain, SPF: a.SPF, SPFDomain: a.SPFDomain, DMARC: a.DMARC, FromDomain: a.FromDomain, Aligned: a.Aligned}
	}
	for _, a := range atts {
		out.Attachments = append(out.Attachments, AttachmentJSON{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size})
	}
	return out
}

// EventJSON is a timeline entry in the API.
type EventJSON struct {
	Kind      vocab.EventKind `json:"kind"`
	Actor     string          `json:"actor,omitempty"`
	Detail    string          `json:"detail,omitempty"`
	Message   int64           `json:"message,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

func pathNumber(r *http.Request, name string) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || n < 1 {
		return 0, badRequest("bad " + name)
	}
	return n, nil
}

func (s *Server) apiTicket(w http.ResponseWriter, r *http.Request) error {
	n, err := pathNumber(r, "number")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return nil
	}
	d, err := s.store.GetTicket(r.Context(), n)
	if err != nil {
		return err
	}
	ids := make([]int64, len(d.Messages))
	for i, m := range d.Messages {
		ids[i] = m.ID
	}
	atts, err := s.store.Attachments(r.Context(), ids)
	if err != nil {
		return err
	}
	out := struct {
		TicketJSON
		Inboxes  []string      `json:"inboxes"`
		Messages []MessageJSON `json:"messages"`
		Events   []EventJSON   `json:"events"`
	}{TicketJSON: ticketJSON(d.TicketRow), Inboxes: d.Inboxes, Messages: []MessageJSON{}, Events: []EventJSON{}}
	for _, m := range d.Messages {
		out.Messages = append(out.Messages, messageJSON(m, atts[m.ID]))
	}
	for _, e := range d.Events {
		ej := EventJSON{Kind: e.Kind, Actor: e.Actor, Detail: e.Detail, CreatedAt: e.CreatedAt}
		if e.MessageRowID != nil {
			ej.Message = *e.MessageRowID
		}
		out.Events = append(out.Events, ej)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) apiMessage(w http.ResponseWriter, r *http.Request) error {
	n, err := pathNumber(r, "id")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return nil
	}
	m, err := s.store.GetMessage(r.Context(), n)
	if err != nil {
		return err
	}
	atts, err := s.store.Attachments(r.Context(), []int64{m.ID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, messageJSON(m, atts[m.ID]))
	return nil
}
