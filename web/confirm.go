package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// The customer's confirmation links open a page with a button rather than
// acting on GET: mail security scanners follow every link in a mail, and
// must not resolve a ticket on the customer's behalf. The signed token is
// the credential; the page needs no login.

// Purposes of the customer's links, as the executor signs them
// (followup): the two confirmation answers and rate_1 … rate_5.
const (
	linkSolved    = "solved"
	linkNotSolved = "not_solved"
	linkRate      = "rate_"
)

// customerPage is what the confirmation and satisfaction pages show. A
// customer arrives from a mail and may have several tickets with several
// companies: the page names whose it is, the ticket and its subject.
type customerPage struct {
	Company string
	Ticket  int64
	Subject string
	Token   string
	// Purpose is what the link was issued for, when the page could read
	// it ("" when it could not: the page then names no answer).
	Purpose string
	Score   int
	Done    bool
	Yes     bool
	Error   string
}

// Asks says which answer the page's button gives, for the wording.
func (p customerPage) Asks() string {
	switch p.Purpose {
	case linkSolved:
		return "yes"
	case linkNotSolved:
		return "no"
	}
	return ""
}

// LinkScore is the score a satisfaction link gives, 0 when unknown.
func (p customerPage) LinkScore() int {
	s, ok := strings.CutPrefix(p.Purpose, linkRate)
	n, err := strconv.Atoi(s)
	if !ok || err != nil || n < 1 || n > 5 {
		return 0
	}
	return n
}

// customerPageFor fills in the company, ticket and subject of ticket n.
// What cannot be read is left out rather than failing the page: the
// customer's answer matters more than its decoration.
func (s *Server) customerPageFor(ctx context.Context, n int64, p customerPage) customerPage {
	p.Company = s.opts.Company
	if n <= 0 {
		return p
	}
	// GetTicket follows a merge: the customer's old number leads to the
	// ticket that carries the conversation now.
	t, err := s.store.GetTicket(ctx, n)
	if err != nil {
		if !clientGone(ctx, err) {
			s.log.Warn("customer page: ticket not read", "ticket", n, "err", err)
		}
		return p
	}
	p.Ticket, p.Subject = t.Number, t.Subject
	if p.Company == "" {
		inboxes, err := s.store.Inboxes(ctx)
		if err != nil {
			s.log.Warn("customer page: inboxes not read", "err", err)
		}
		for _, in := range inboxes {
			if in.Address == t.Inbox {
				p.Company = in.Name
			}
		}
	}
	return p
}

// peekLink reads the token of a customer's link without acting on it. ok
// is false when the token is known to be bad; with no verifier every
// token is taken as it comes (the button's POST checks it).
func (s *Server) peekLink(tok string) (purpose string, ticket int64, ok bool) {
	if s.opts.Links == nil {
		return "", 0, true
	}
	purpose, ticket, err := s.opts.Links.VerifyLinkToken(tok, s.opts.Clock.Now())
	if err != nil {
		s.log.Info("customer link refused", "err", err)
		return "", 0, false
	}
	return purpose, ticket, true
}

const confirmInvalid = "This link is not valid any more. Just reply to our last mail instead."

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	if s.opts.Confirm == nil || tok == "" {
		http.NotFound(w, r)
		return
	}
	purpose, n, ok := s.peekLink(tok)
	if !ok || (purpose != "" && purpose != linkSolved && purpose != linkNotSolved) {
		s.render(w, "confirm.html", http.StatusForbidden, s.customerPageFor(r.Context(), 0, customerPage{Error: confirmInvalid}))
		return
	}
	s.render(w, "confirm.html", http.StatusOK, s.customerPageFor(r.Context(), n, customerPage{Token: tok, Purpose: purpose}))
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	if s.opts.Confirm == nil {
		http.NotFound(w, r)
		return
	}
	ticket, answer, err := s.opts.Confirm(r.Context(), r.PostFormValue("t"))
	if err != nil {
		s.log.Info("confirmation link refused", "err", err)
		s.render(w, "confirm.html", http.StatusForbidden, s.customerPageFor(r.Context(), 0, customerPage{Error: confirmInvalid}))
		return
	}
	s.render(w, "confirm.html", http.StatusOK, s.customerPageFor(r.Context(), ticket, customerPage{Done: true, Yes: answer == "yes"}))
}
