package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// postmasters are the postmaster@ addresses of every domain we accept
// mail for (the inboxes' domains and smtp.hostname) that are not inboxes
// already. RFC 5321 §4.5.1 requires them; mail to them is for whoever runs
// the installation, so it lands on tickets only admins see, and nothing
// automatic answers it (guardAccess).
func postmasters(cfg config.Config) []string {
	domains := []string{strings.ToLower(cfg.SMTP.Hostname)}
	for _, in := range cfg.Inboxes {
		domains = append(domains, threading.Domain(strings.ToLower(in.Address)))
	}
	inboxes := inboxAddresses(cfg)
	var out []string
	for _, d := range domains {
		pm := "postmaster@" + d
		if d == "" || slices.Contains(out, pm) || slices.Contains(inboxes, pm) {
			continue
		}
		out = append(out, pm)
	}
	return out
}

// guardAccess runs before the rules on every parsed message.
//
// Mail on a postmaster ticket is kept away from the rules: no
// acknowledgement to whoever wrote (often a robot reporting abuse or a
// delivery problem, and answering robots is how loops start), no
// notification to agents who may not see the ticket, no timers. The
// message is stored, its ticket is on the admins' queue, and the timeline
// says why nothing was sent.
//
// Agent mail through a signed address runs only if the agent may see the
// ticket (agents[].inboxes). The SMTP door already refuses such a token at
// RCPT; this holds what got past it, for instance a token accepted just
// before the agent's access changed. Nothing runs and nothing is relayed.
func guardAccess(next guarded) ingest.AfterParse {
	return func(ctx context.Context, tx *storage.Tx, msg storage.Message) error {
		if msg.TicketID == nil {
			return next.HandleMessage(ctx, tx, msg)
		}
		v, err := tx.TicketView(ctx, *msg.TicketID)
		if err != nil {
			return err
		}
		why := ""
		if msg.AgentID != nil {
			agents, err := tx.Agents(ctx)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(agents, func(a storage.Agent) bool { return a.ID == *msg.AgentID })
			if i < 0 || !agents[i].SeesTicket(v.Inboxes) {
				why = fmt.Sprintf("held: agent %d may not act on this ticket (agents[].inboxes); no command ran and nothing was relayed", *msg.AgentID)
			}
		} else if storage.IsPostmaster(v.Inbox.Address) {
			why = "not sent: mail to " + v.Inbox.Address + " is for the admins; no automatic mail answers it and no agent is notified"
		}
		if why == "" {
			// The ticket just read is handed on, not read again.
			return next.HandleMessageIn(ctx, tx, msg, v)
		}
		first, err := tx.MarkHandled(ctx, msg.ID)
		if err != nil || !first {
			return err
		}
		return tx.AddEvent(ctx, v.ID, vocab.EventMailSuppressed, "", why, &msg.ID)
	}
}

// guarded is what guardAccess lets through to: the executor.
type guarded interface {
	HandleMessage(ctx context.Context, tx *storage.Tx, msg storage.Message) error
	HandleMessageIn(ctx context.Context, tx *storage.Tx, msg storage.Message, v storage.TicketView) error
}

// agentLookup is what mayReply reads.
type agentLookup interface {
	AgentByID(ctx context.Context, id int64) (storage.Agent, error)
	TicketInboxes(ctx context.Context, number int64) ([]string, error)
}

// mayReply refuses, at RCPT, an agent's signed address for a ticket the
// agent may not see (agents[].inboxes; postmaster tickets for admins
// only): a token mailed to Alice before her access changed must not let
// her, or whoever has her mail, answer another team's customer.
func mayReply(st agentLookup) func(ctx context.Context, ticket, agent int64) (bool, error) {
	return func(ctx context.Context, ticket, agent int64) (bool, error) {
		a, err := st.AgentByID(ctx, agent)
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		inboxes, err := st.TicketInboxes(ctx, ticket)
		if errors.Is(err, storage.ErrNotFound) {
			// The threader keeps such mail off every ticket and says so.
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return a.SeesTicket(inboxes), nil
	}
}

// readTokenFile reads a secret file (web.metrics_token_file); "" is no
// file and no token.
func readTokenFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("web.metrics_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("web.metrics_token_file: %s is empty", path)
	}
	return tok, nil
}
