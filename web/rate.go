package web

import (
	"net/http"
)

// The satisfaction links, like the confirmation links, open a page with a
// button: a mail scanner that follows every link rates nothing. The page
// also takes an optional comment. The signed token is the credential.

const rateInvalid = "This link is not valid any more. Just reply to our last mail with a digit from 1 to 5 instead."

func (s *Server) ratePage(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("t")
	if s.opts.Rate == nil || tok == "" {
		http.NotFound(w, r)
		return
	}
	purpose, n, ok := s.peekLink(tok)
	p := customerPage{Token: tok, Purpose: purpose}
	if !ok || (purpose != "" && p.LinkScore() == 0) {
		s.render(w, "rate.html", http.StatusForbidden, s.customerPageFor(r.Context(), 0, customerPage{Error: rateInvalid}))
		return
	}
	s.render(w, "rate.html", http.StatusOK, s.customerPageFor(r.Context(), n, p))
}

func (s *Server) rate(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rate == nil {
		http.NotFound(w, r)
		return
	}
	ticket, score, err := s.opts.Rate(r.Context(), r.PostFormValue("t"), r.PostFormValue("comment"))
	if err != nil {
		s.log.Info("satisfaction link refused", "err", err)
		s.render(w, "rate.html", http.StatusForbidden, s.customerPageFor(r.Context(), 0, customerPage{Error: rateInvalid}))
		return
	}
	s.render(w, "rate.html", http.StatusOK, s.customerPageFor(r.Context(), ticket, customerPage{Done: true, Score: score}))
}

// apiSatisfaction is the satisfaction figure: how often the question was
// asked, how many answered, the average and the count per score.
func (s *Server) apiSatisfaction(w http.ResponseWriter, r *http.Request) error {
	st, err := s.store.SatisfactionStats(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
