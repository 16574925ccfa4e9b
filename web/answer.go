package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tendhq/tend/storage"
)

// Answer is what an agent writes on the ticket page or through the API:
// a reply to the customer or an internal note. Options.Answer takes it
// through the same path as the agent's mail (mail/webreply).
type Answer struct {
	Ticket  int64
	Inbox   string
	Subject string
	Agent   storage.Agent
	Text    string
	Note    bool
	// InReplyTo is the Message-ID of the newest message the page showed
	// (the collision warning compares); "" when unknown.
	InReplyTo string
}

// maxAnswer bounds an answer's text: a reply is a few paragraphs, and a
// mail's worth at most.
const maxAnswer = 256 << 10

// errNoAnswers answers replies and notes when no Options.Answer is set.
var errNoAnswers = errors.New("replies and notes from the web are not available on this server")

// errNotAgent is the refusal of an API token that stands for no agent.
var errNotAgent = errors.New("replies and notes need a token named after an agent (tend token create EMAIL)")

// answer checks an answer and hands it on.
func (s *Server) answer(ctx context.Context, a Answer) error {
	if s.opts.Answer == nil {
		return errNoAnswers
	}
	a.Text = strings.ReplaceAll(a.Text, "\r\n", "\n")
	if strings.TrimSpace(a.Text) == "" {
		return badRequest("the text is empty")
	}
	if len(a.Text) > maxAnswer {
		return badRequest(fmt.Sprintf("the text is longer than %d bytes", maxAnswer))
	}
	if len(a.InReplyTo) > 998 {
		return badRequest("in_reply_to is too long")
	}
	row, err := s.visibleTicket(ctx, a.Ticket)
	if err != nil {
		return err
	}
	a.Inbox, a.Subject = row.Inbox, row.Subject
	return s.opts.Answer(ctx, a)
}

// answerFlash is the ticket page's line after an answer.
func answerFlash(note bool) string {
	if note {
		return "Note added: it is internal, the customer does not see it."
	}
	return "Reply on its way: it goes out as your reply by mail would, and its commands run."
}

// ticketAnswer is the ticket page's reply and note form (any signed-in
// agent who may see the ticket).
func (s *Server) ticketAnswer(note bool) func(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	return func(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
		n, err := pathNumber(r, "number")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a := Answer{Ticket: n, Agent: sess.Agent, Text: r.PostFormValue("text"), Note: note, InReplyTo: r.PostFormValue("seen")}
		if err := s.answer(r.Context(), a); err != nil {
			if errors.Is(err, errNoAnswers) {
				http.Error(w, err.Error(), http.StatusNotImplemented)
				return
			}
			s.actionFailed(w, r, sess, n, err)
			return
		}
		done := "reply"
		if note {
			done = "note"
		}
		s.log.Info("web answer", "ticket", n, "kind", done, "by", sess.Agent.Email)
		http.Redirect(w, r, "/tickets/"+itoa(n)+"?done="+done, http.StatusSeeOther)
	}
}

// answerRequest is the body of POST /api/tickets/{n}/reply and …/note.
type answerRequest struct {
	Text string `json:"text"`
	// InReplyTo is the Message-ID of the newest message the caller has
	// read, for the collision warning; without it an answer by someone
	// else in the last two minutes holds this one, as for mail.
	InReplyTo string `json:"in_reply_to"`
}

// apiAnswer is POST /api/tickets/{n}/reply and …/note: an agent's or a
// lead's token named after an agent writes as that agent. 202: the answer
// is stored and is handled like the agent's mail right after.
func (s *Server) apiAnswer(note bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		n, err := pathNumber(r, "number")
		if err != nil {
			return err
		}
		var req answerRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAnswer+4<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return badRequest("bad JSON body: " + err.Error())
		}
		tok, _ := r.Context().Value(tokenKey).(storage.APIToken)
		ag, err := s.tokenAgent(r.Context(), tok)
		if err != nil {
			if errors.Is(err, errNotAgent) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": err.Error()})
				return nil
			}
			return err
		}
		err = s.answer(r.Context(), Answer{Ticket: n, Agent: ag, Text: req.Text, Note: note, InReplyTo: req.InReplyTo})
		if errors.Is(err, errNoAnswers) {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": err.Error()})
			return nil
		}
		if err != nil {
			return err
		}
		kind := "reply"
		if note {
			kind = "note"
		}
		s.log.Info("api answer", "ticket", n, "kind", kind, "by", ag.Email)
		writeJSON(w, http.StatusAccepted, map[string]any{"ticket": n, "kind": kind, "accepted": true})
		return nil
	}
}

// tokenAgent is the agent an API token is named after, with the
// viewer's restriction already applied by the api wrapper.
func (s *Server) tokenAgent(ctx context.Context, tok storage.APIToken) (storage.Agent, error) {
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return storage.Agent{}, err
	}
	for _, a := range agents {
		if strings.EqualFold(a.Email, tok.Name) {
			return a, nil
		}
	}
	return storage.Agent{}, errNotAgent
}

// visibleTicket is ticket n's row when it exists, is not merged away and
// the viewer may see it.
func (s *Server) visibleTicket(ctx context.Context, n int64) (storage.TicketRow, error) {
	visible, err := s.visibleInboxes(ctx)
	if err != nil {
		return storage.TicketRow{}, err
	}
	rows, _, err := s.store.ListTickets(ctx, storage.TicketFilter{State: "all", Visible: visible, Before: n + 1, Limit: 1})
	if err != nil {
		return storage.TicketRow{}, err
	}
	if len(rows) == 0 || rows[0].Number != n {
		return storage.TicketRow{}, fmt.Errorf("ticket %d: %w", n, storage.ErrNotFound)
	}
	return rows[0], nil
}
