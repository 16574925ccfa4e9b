package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tendhq/tend/storage"
)

// viewerKey holds, in a request's context, the agent whose access applies:
// the session's agent, or for an API token the agent it stands for.
const viewerKey ctxKey = 100

// tokenViewer is the access of an API token. A token's role decides, and
// an agent-role token named after an agent (`tend token create
// alice@acme.test --role agent`) carries that agent's inbox restriction,
// so a script run for Alice sees what Alice sees.
func (s *Server) tokenViewer(ctx context.Context, tok storage.APIToken) (storage.Agent, error) {
	v := storage.Agent{Email: tok.Name, Role: tok.Role}
	if tok.Role != storage.RoleAgent {
		return v, nil
	}
	agents, err := s.store.Agents(ctx)
	if err != nil {
		return v, err
	}
	for _, a := range agents {
		if a.Email == tok.Name {
			v.Inboxes = a.Inboxes
		}
	}
	return v, nil
}

func viewerOf(ctx context.Context) storage.Agent {
	v, _ := ctx.Value(viewerKey).(storage.Agent)
	return v
}

// visibleInboxes is the Visible filter of the viewer's listings: nil when
// the viewer sees every inbox.
func (s *Server) visibleInboxes(ctx context.Context) ([]string, error) {
	inboxes, err := s.store.Inboxes(ctx)
	if err != nil {
		return nil, err
	}
	all := make([]string, len(inboxes))
	for i, in := range inboxes {
		all[i] = in.Address
	}
	return viewerOf(ctx).VisibleInboxes(all), nil
}

// mayOpen checks the ticket ({number}) and message ({id}) a request names
// against the viewer's inboxes. What the viewer may not see answers
// storage.ErrNotFound, so a restricted agent cannot even learn that ticket
// #12 exists by its status code.
func (s *Server) mayOpen(r *http.Request) error {
	ctx, v := r.Context(), viewerOf(r.Context())
	var tickets []int64
	if p := r.PathValue("number"); p != "" {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 1 {
			return nil // the handler answers the malformed number
		}
		tickets = append(tickets, n)
	}
	if p := r.PathValue("id"); p != "" {
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil || id < 1 {
			return nil
		}
		m, err := s.store.GetMessage(ctx, id)
		if err != nil {
			return err
		}
		if m.TicketID == nil {
			// A message on no ticket (a bounce, our own mail) is for
			// leads and admins.
			if v.Role == storage.RoleLead || v.Role == storage.RoleAdmin {
				return nil
			}
			return fmt.Errorf("message %d: %w", id, storage.ErrNotFound)
		}
		tickets = append(tickets, *m.TicketID)
	}
	for _, n := range tickets {
		inboxes, err := s.store.TicketInboxes(ctx, n)
		if err != nil {
			return err
		}
		if !v.SeesTicket(inboxes) {
			return fmt.Errorf("ticket %d: %w", n, storage.ErrNotFound)
		}
	}
	return nil
}
