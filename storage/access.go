package storage

import (
	"slices"
	"strings"
)

// IsPostmaster reports whether addr is a postmaster mailbox (RFC 5321
// §4.5.1). Mail to ours is for whoever runs the installation: its tickets
// are seen by admins only.
func IsPostmaster(addr string) bool {
	local, _, ok := strings.Cut(strings.ToLower(strings.TrimSpace(addr)), "@")
	return ok && local == "postmaster"
}

// InboxList is the agent's inbox restriction; nil means every inbox.
func (a Agent) InboxList() []string {
	f := strings.Fields(strings.ToLower(a.Inboxes))
	if len(f) == 0 {
		return nil
	}
	return f
}

// SeesInbox reports whether the agent may see the tickets of one inbox:
// postmaster inboxes only for admins; every other inbox for leads and
// admins; for an agent, the inboxes of its restriction (all when it has
// none).
func (a Agent) SeesInbox(inbox string) bool {
	inbox = strings.ToLower(inbox)
	if IsPostmaster(inbox) {
		return a.Role == RoleAdmin
	}
	if a.Role == RoleLead || a.Role == RoleAdmin {
		return true
	}
	list := a.InboxList()
	return list == nil || slices.Contains(list, inbox)
}

// SeesTicket reports whether the agent may see a ticket filed in inboxes
// (the ticket's inbox and every inbox a message of it was addressed to):
// one visible inbox is enough.
func (a Agent) SeesTicket(inboxes []string) bool {
	return slices.ContainsFunc(inboxes, a.SeesInbox)
}

// VisibleInboxes returns the addresses among all (every inbox) that the
// agent sees, for TicketFilter.Visible and QueueFilter.Visible; nil when it
// sees them all, so that an admin's listing needs no filter.
func (a Agent) VisibleInboxes(all []string) []string {
	out := []string{}
	for _, in := range all {
		if a.SeesInbox(in) {
			out = append(out, strings.ToLower(in))
		}
	}
	if len(out) == len(all) {
		return nil
	}
	return out
}
