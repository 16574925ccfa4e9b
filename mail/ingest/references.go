package ingest

import (
	"context"
	"fmt"

	"github.com/tendhq/tend/storage"
)

// ReferencesThreader joins a message to a ticket only through In-Reply-To
// or References to a stored message; otherwise it opens a ticket.
type ReferencesThreader struct{}

// Place implements Threader.
func (ReferencesThreader) Place(ctx context.Context, m *Message, tx *storage.Tx) (storage.Placement, error) {
	ids := append([]string{m.InReplyTo}, m.References...)
	refs, err := tx.TicketsByMessageIDs(ctx, ids)
	if err != nil {
		return storage.Placement{}, err
	}
	found := map[string]int64{}
	for _, r := range refs {
		found[r.MessageID] = r.Ticket
	}
	if t, ok := found[m.InReplyTo]; ok && m.InReplyTo != "" {
		return storage.Placement{Ticket: t, Summary: fmt.Sprintf("threaded by In-Reply-To to <%s>", m.InReplyTo)}, nil
	}
	for i := len(m.References) - 1; i >= 0; i-- {
		if t, ok := found[m.References[i]]; ok {
			return storage.Placement{Ticket: t, Summary: fmt.Sprintf("threaded by References to <%s>", m.References[i])}, nil
		}
	}
	if m.Class == "bounce" {
		return storage.Placement{NoTicket: true, Summary: "delivery status notification: opens no ticket"}, nil
	}
	return storage.Placement{Summary: "new conversation"}, nil
}
