package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// Actions carries out a lead's decisions on a ticket. The web declares it
// and the rules executor implements it, so that a state change made in
// the browser runs the same rules (telling the customer, cancelling
// nudges, recording the event) as one made by mail. by names who acted:
// an agent's email, or "token:NAME" for the API.
type Actions interface {
	// Resolve proposes a resolution: the customer is asked to confirm
	// (docs/design.md, the follow-through state machine).
	Resolve(ctx context.Context, ticket int64, by string) error
	// Reopen puts a proposed, unconfirmed, resolved or closed ticket back
	// to open.
	Reopen(ctx context.Context, ticket int64, by string) error
	// Close closes a ticket with its reason: "spam", "no response" or
	// "duplicate of #N". A closed ticket always says why.
	Close(ctx context.Context, ticket int64, reason, by string) error
	// Assign gives the ticket to the agent with that address.
	Assign(ctx context.Context, ticket int64, agentEmail, by string) error
	// Merge moves ticket's messages, participants and timers into the
	// ticket into; the old number then redirects there.
	Merge(ctx context.Context, ticket, into int64, by string) error
	// Split moves one message off into a new ticket and returns its number.
	Split(ctx context.Context, messageRowID int64, by string) (int64, error)
	// ReleaseMail clears a ticket's tripped mail fuse and sends the mail
	// it held; it returns how many mails it released.
	ReleaseMail(ctx context.Context, ticket int64, by string) (int, error)
}

// ErrNotAllowed is what Actions implementations wrap when the ticket's
// state does not allow the action (resolving a closed ticket); it maps to
// 409 Conflict.
var ErrNotAllowed = errors.New("not allowed in the ticket's current state")

// errNoActions answers state changes when no Actions are configured.
var errNoActions = errors.New("state changes are not available on this server")

// The actions a lead can take.
const (
	actionResolve = "resolve"
	actionReopen  = "reopen"
	actionClose   = "close"
	actionAssign  = "assign"
	actionMerge   = "merge"
	// actionRelease releases the mail a tripped fuse holds.
	actionRelease = "release_mail"
)

// The reasons a ticket may be closed for.
const (
	reasonSpam       = "spam"
	reasonNoResponse = "no response"
	reasonDuplicate  = "duplicate"
)

// actionRequest is a lead's request, from the ticket page's form or the
// JSON API.
type actionRequest struct {
	Action string `json:"action"`
	// Reason is spam, "no response", duplicate (with Duplicate), or
	// "duplicate of #N".
	Reason    string `json:"reason"`
	Duplicate int64  `json:"duplicate"`
	Agent     string `json:"agent"`
	// Into is the ticket a merge goes into.
	Into int64 `json:"into"`
}

// closeReason turns a lead's choice into the reason recorded on the
// ticket, and the duplicated ticket's number when there is one. Input
// comes from a form or a JSON body: anything but the known reasons is
// refused.
func closeReason(reason string, dup int64) (string, int64, error) {
	r := strings.Join(strings.Fields(strings.ToLower(reason)), " ")
	switch r {
	case reasonSpam:
		return reasonSpam, 0, nil
	case reasonNoResponse, "no-response", "no_response":
		return reasonNoResponse, 0, nil
	case reasonDuplicate:
	default:
		rest, ok := strings.CutPrefix(r, reasonDuplicate)
		if !ok {
			return "", 0, badRequest("close reason must be spam, no response or duplicate of #N")
		}
		rest = strings.TrimPrefix(strings.TrimSpace(rest), "of")
		n, err := ticketRef(rest)
		if err != nil {
			return "", 0, err
		}
		if dup != 0 && dup != n {
			return "", 0, badRequest("two different duplicate tickets given")
		}
		dup = n
	}
	if dup < 1 {
		return "", 0, badRequest("a duplicate needs the number of the ticket it duplicates")
	}
	return fmt.Sprintf("duplicate of #%d", dup), dup, nil
}

// ticketRef reads a ticket number as a lead types it: "12" or "#12".
func ticketRef(s string) (int64, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "#")
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, badRequest("not a ticket number: " + strconv.Quote(s))
	}
	return n, nil
}

// act checks a request and hands it to Actions.
func (s *Server) act(ctx context.Context, ticket int64, req actionRequest, by string) error {
	if s.opts.Actions == nil {
		return errNoActions
	}
	if err := s.ticketExists(ctx, ticket); err != nil {
		return err
	}
	switch req.Action {
	case actionResolve:
		return s.opts.Actions.Resolve(ctx, ticket, by)
	case actionReopen:
		return s.opts.Actions.Reopen(ctx, ticket, by)
	case actionClose:
		reason, dup, err := closeReason(req.Reason, req.Duplicate)
		if err != nil {
			return err
		}
		if dup == ticket {
			return badRequest("a ticket cannot duplicate itself")
		}
		if dup != 0 {
			if err := s.ticketExists(ctx, dup); errors.Is(err, storage.ErrNotFound) {
				return badRequest(fmt.Sprintf("there is no ticket #%d", dup))
			} else if err != nil {
				return err
			}
		}
		return s.opts.Actions.Close(ctx, ticket, reason, by)
	case actionAssign:
		agents, err := s.store.Agents(ctx)
		if err != nil {
			return err
		}
		email := strings.ToLower(strings.TrimSpace(req.Agent))
		for _, a := range agents {
			if a.Email == email {
				return s.opts.Actions.Assign(ctx, ticket, email, by)
			}
		}
		return badRequest("no agent " + strconv.Quote(req.Agent))
	case actionMerge:
		if req.Into == ticket || req.Into < 1 {
			return badRequest("merge needs another ticket to merge into")
		}
		if err := s.ticketExists(ctx, req.Into); errors.Is(err, storage.ErrNotFound) {
			return badRequest(fmt.Sprintf("there is no ticket #%d", req.Into))
		} else if err != nil {
			return err
		}
		return s.opts.Actions.Merge(ctx, ticket, req.Into, by)
	case actionRelease:
		_, err := s.opts.Actions.ReleaseMail(ctx, ticket, by)
		return err
	}
	return badRequest("unknown action " + strconv.Quote(req.Action))
}

// ticketExists returns nil when ticket number n exists and is not merged
// into another (actions go to the surviving ticket), and the viewer may
// see it: a lead cannot merge into a postmaster ticket it cannot open.
func (s *Server) ticketExists(ctx context.Context, n int64) error {
	_, err := s.visibleTicket(ctx, n)
	return err
}

// ticketAction is the ticket page's form: leads and admins only.
func (s *Server) ticketAction(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	n, err := pathNumber(r, "number")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !canAct(sess.Agent.Role) {
		http.Error(w, "only leads and admins change tickets here; agents act by mail", http.StatusForbidden)
		return
	}
	req := actionRequest{Action: r.PostFormValue("action"), Reason: r.PostFormValue("reason"), Agent: r.PostFormValue("agent")}
	if v := strings.TrimSpace(r.PostFormValue("into")); v != "" && req.Action == actionMerge {
		if req.Into, err = ticketRef(v); err != nil {
			s.actionFailed(w, r, sess, n, err)
			return
		}
	}
	if v := strings.TrimSpace(r.PostFormValue("duplicate")); v != "" && req.Reason == reasonDuplicate {
		if req.Duplicate, err = ticketRef(v); err != nil {
			s.actionFailed(w, r, sess, n, err)
			return
		}
	}
	if err := s.act(r.Context(), n, req, sess.Agent.Email); err != nil {
		s.actionFailed(w, r, sess, n, err)
		return
	}
	s.log.Info("ticket action", "ticket", n, "action", req.Action, "by", sess.Agent.Email)
	if req.Action == actionMerge {
		n = req.Into // the merged ticket's number now leads there
	}
	http.Redirect(w, r, "/tickets/"+itoa(n)+"?done="+req.Action, http.StatusSeeOther)
}

// actionFailed shows the ticket again with what went wrong, or a bare
// error when the ticket itself cannot be shown.
func (s *Server) actionFailed(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo, n int64, cause error) {
	code := httpStatus(cause)
	if errors.Is(cause, errNoActions) {
		code = http.StatusNotImplemented
	}
	if code == http.StatusInternalServerError {
		s.internalError(w, r, "ticket action", cause)
		return
	}
	d, err := s.store.GetTicket(r.Context(), n)
	if err != nil {
		s.fail(w, r, "ticket action", err)
		return
	}
	msg := cause.Error()
	if code == http.StatusConflict {
		msg = "That is not possible in the ticket's current state (" + string(d.State) + ")."
	}
	s.showTicket(w, r, sess, d, code, "", msg)
}

// stateResponse answers the state API.
type stateResponse struct {
	Number int64       `json:"number"`
	Action string      `json:"action"`
	State  vocab.State `json:"state"`
}

// apiState is POST /api/tickets/{number}/state: a lead's or an admin's
// token changes a ticket's state; an agent's token gets 403.
func (s *Server) apiState(w http.ResponseWriter, r *http.Request) error {
	tok, _ := r.Context().Value(tokenKey).(storage.APIToken)
	if !canAct(tok.Role) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "needs a lead or admin token"})
		return nil
	}
	n, err := pathNumber(r, "number")
	if err != nil {
		return err
	}
	var req actionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return badRequest("bad JSON body: " + err.Error())
	}
	if req.Action == actionAssign && req.Agent == "" {
		return badRequest("assign needs an agent")
	}
	if err := s.act(r.Context(), n, req, "token:"+tok.Name); err != nil {
		if errors.Is(err, errNoActions) {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": err.Error()})
			return nil
		}
		return err
	}
	rows, _, err := s.store.ListTickets(r.Context(), storage.TicketFilter{State: "all", Before: n + 1, Limit: 1})
	if err != nil {
		return err
	}
	out := stateResponse{Number: n, Action: req.Action}
	if len(rows) == 1 {
		out.State = rows[0].State
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// apiSplit moves one message off into a new ticket (lead or admin token).
func (s *Server) apiSplit(w http.ResponseWriter, r *http.Request) error {
	tok, _ := r.Context().Value(tokenKey).(storage.APIToken)
	if !canAct(tok.Role) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "needs a lead or admin token"})
		return nil
	}
	if s.opts.Actions == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": errNoActions.Error()})
		return nil
	}
	id, err := pathNumber(r, "id")
	if err != nil {
		return err
	}
	n, err := s.opts.Actions.Split(r.Context(), id, "token:"+tok.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"ticket": n})
	return nil
}

// ticketSplit is the ticket page's "split off" button: leads and admins.
func (s *Server) ticketSplit(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	n, err := pathNumber(r, "number")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, err := pathNumber(r, "id")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !canAct(sess.Agent.Role) || s.opts.Actions == nil {
		http.Error(w, "only leads and admins change tickets here", http.StatusForbidden)
		return
	}
	m, err := s.store.GetMessage(r.Context(), id)
	if err != nil || m.TicketID == nil || *m.TicketID != n {
		http.Error(w, "no such message on this ticket", http.StatusNotFound)
		return
	}
	nt, err := s.opts.Actions.Split(r.Context(), id, sess.Agent.Email)
	if err != nil {
		s.actionFailed(w, r, sess, n, err)
		return
	}
	s.log.Info("message split", "ticket", n, "message", id, "new_ticket", nt, "by", sess.Agent.Email)
	http.Redirect(w, r, "/tickets/"+itoa(nt), http.StatusSeeOther)
}
