package web

import (
	"net/http"
)

// The customer's confirmation links open a page with a button rather than
// acting on GET: mail security scanners follow every link in a mail, and
// must not resolve a ticket on the customer's behalf. The signed token is
// the credential; the page needs no login.

func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	if s.opts.Confirm == nil || tok == "" {
		http.NotFound(w, r)
		return
	}
	s.render(w, "confirm.html", http.StatusOK, map[string]any{"Token": tok, "Done": false})
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	if s.opts.Confirm == nil {
		http.NotFound(w, r)
		return
	}
	ticket, answer, err := s.opts.Confirm(r.Context(), r.PostFormValue("t"))
	if err != nil {
		s.log.Info("confirmation link refused", "err", err)
		s.render(w, "confirm.html", http.StatusForbidden, map[string]any{"Error": "This link is not valid any more. Just reply to our last mail instead."})
		return
	}
	s.render(w, "confirm.html", http.StatusOK, map[string]any{"Done": true, "Ticket": ticket, "Yes": answer == "yes"})
}
