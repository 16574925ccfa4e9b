package ingest

import (
	"context"
	"time"

	"github.com/tendhq/tend/mail/replytext"
	"github.com/tendhq/tend/similar"
	"github.com/tendhq/tend/storage"
)

// clusterText bounds what of the first message is compared: the problem
// is stated in its first lines, and a long mail must not cost more.
const clusterText = 8 << 10

// Clusterer places each new ticket in a cluster of tickets about the same
// thing, by its subject and first customer message (package similar),
// in the batch transaction of the message's parse, so every replica sees
// the same clusters.
type Clusterer struct {
	// Window is how far back a new ticket looks for look-alikes.
	Window time.Duration
	Clock  storage.Clock
}

// Then returns an AfterParse that places the message's ticket, if it is
// the ticket's first customer message, and then runs next.
func (c Clusterer) Then(next AfterParse) AfterParse {
	return func(ctx context.Context, tx *storage.Tx, msg storage.Message) error {
		if err := c.place(ctx, tx, msg); err != nil {
			return err
		}
		return next(ctx, tx, msg)
	}
}

func (c Clusterer) place(ctx context.Context, tx *storage.Tx, msg storage.Message) error {
	if msg.TicketID == nil || msg.Role != "customer" || msg.Direction != storage.DirectionIn {
		return nil
	}
	ticket := *msg.TicketID
	if ok, err := tx.Unclustered(ctx, ticket); err != nil || !ok {
		return err
	}
	var stems []string
	var bands []int64
	if pre := msg.Prepared; pre != nil && pre.HasStems {
		stems, bands = pre.Stems, pre.Bands
	} else {
		stems, bands = signature(msg)
	}
	cands, err := tx.SimilarCandidates(ctx, ticket, bands, c.Clock.Now().Add(-c.Window), similar.CandidateLimit)
	if err != nil {
		return err
	}
	list := make([]similar.Candidate, len(cands))
	for i, cd := range cands {
		list[i] = similar.Candidate{Ticket: cd.Ticket, Cluster: cd.Cluster, Stems: cd.Stems}
	}
	cluster, _, ok := similar.Best(stems, list)
	if !ok {
		cluster = ticket
	}
	return tx.SetCluster(ctx, ticket, cluster, stems, bands)
}

// Prepare works out, before the processing batch's transaction
// (ingest.ProcessorOptions.Prepare), the stems and band keys of a
// customer's message that starts a conversation (no In-Reply-To, no
// References), the message a new ticket is placed by. Stemming,
// signing and quote stripping were an eighth of the clustering's time
// inside the transaction, which on SQLite holds the one writer; a
// message that starts a ticket otherwise is worked out there as before.
func (c Clusterer) Prepare(msg *storage.Message) {
	if msg.Prepared == nil || !msg.StartsConversation() {
		return
	}
	msg.Prepared.Stems, msg.Prepared.Bands = signature(*msg)
	msg.Prepared.HasStems = true
}

// signature is what msg's ticket is compared by: the stems of its
// subject and of its text's first clusterText bytes without the quoted
// part, and their MinHash band keys.
func signature(msg storage.Message) ([]string, []int64) {
	text := msg.Text
	if len(text) > clusterText {
		text = text[:clusterText]
	}
	stems := similar.Stems(msg.Subject + "\n" + replytext.Extract(text))
	return stems, similar.Sign(stems).BandKeys()
}
