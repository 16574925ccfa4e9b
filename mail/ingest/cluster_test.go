package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestClustersByContent: four customers describe the empty invoice PDF
// in their own words (two with subjects that share no word), two write
// about other invoice problems, one's reply lands on an existing ticket.
// The four form one cluster; the near misses stay alone; the reply does
// not move its ticket; a look-alike after the window starts its own
// cluster; pruning drops the old bands; erasing a ticket's customer
// takes its bands.
//
// Each runs with the stems worked out before the transaction
// (Clusterer.Prepare, as serve wires it) and inside it.
func TestClustersByContent(t *testing.T) {
	for _, b := range storagetest.Backends() {
		for _, prepared := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/prepared=%v", b.Name, prepared), func(t *testing.T) {
				testClustersByContent(t, b, prepared)
			})
		}
	}
}

func testClustersByContent(t *testing.T, b storagetest.Backend, prepared bool) {
	pi := newProcInstall(t, b)
	ctx := context.Background()
	cl := ingest.Clusterer{Window: 7 * 24 * time.Hour, Clock: pi.clock}
	opts := ingest.ProcessorOptions{Owner: "t", Clock: pi.clock,
		AfterParse: cl.Then(func(context.Context, *storage.Tx, storage.Message) error { return nil })}
	if prepared {
		opts.Prepare = cl.Prepare
	}
	p := ingest.NewProcessor(pi.store, opts)
	send := sender(t, pi, p)
	a := send("ann@example.com", "Invoice PDF is empty", "When I download my invoice the PDF file is completely empty, just a blank page.", "")
	bb := send("bob@example.org", "empty invoice pdf", "The PDF of this month's invoice opens but it is blank, no content at all.\n\nBest regards,\nBob Builder", "")
	vat := send("carl@example.net", "Wrong VAT number on invoice", "Our VAT number on the latest invoice is wrong, please correct the invoice.", "")
	c := send("dora@example.com", "Download problem", "Downloaded the invoice as PDF and the document is empty. Blank white page.", "")
	twice := send("eve@example.com", "Charged twice", "My card was charged twice for one invoice this month.", "")
	// A reply on Ann's ticket about something else entirely: a
	// ticket is placed once, by its first message.
	if got := send("ann@example.com", "Re: Invoice PDF is empty", "Also, the Android app crashes at launch.", "ann@example.com.Invoice PDF is empty"); got != a {
		t.Fatalf("the reply opened ticket %d, want %d", got, a)
	}
	d := send("finn@example.com", "PDF invoice has no content", "Your invoice PDF comes out blank for me: the file opens and the page is empty.", "")

	cs, err := pi.store.ContentClusters(ctx, "", nil, pi.clock.Now().Add(-7*24*time.Hour), 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || !slices.Equal(cs[0].Tickets, []int64{a, bb, c, d}) || cs[0].Customers != 4 || cs[0].ID != a || cs[0].Label != "Invoice PDF is empty" {
		t.Fatalf("clusters %+v, want one of tickets %v", cs, []int64{a, bb, c, d})
	}
	rows, err := pi.store.ClusterTickets(ctx, a, nil)
	if err != nil || len(rows) != 4 {
		t.Fatalf("cluster tickets %d, %v", len(rows), err)
	}
	if cs, _ := pi.store.ContentClusters(ctx, "", []string{}, pi.clock.Now().Add(-7*24*time.Hour), 2, 10); len(cs) != 0 {
		t.Errorf("an agent who sees no inbox sees clusters %+v", cs)
	}
	_, _ = vat, twice

	// Past the window a look-alike starts a cluster of its own, and
	// pruning drops the old tickets' bands.
	pi.clock.Advance(8 * 24 * time.Hour)
	late := send("gus@example.com", "Invoice PDF is empty", "When I download my invoice the PDF file is completely empty, a blank page.", "")
	if rows, err := pi.store.ClusterTickets(ctx, late, nil); err != nil || len(rows) != 1 {
		t.Errorf("a look-alike past the window: its own cluster has %d tickets (%v), want 1", len(rows), err)
	}
	if rows, _ := pi.store.ClusterTickets(ctx, a, nil); len(rows) != 4 {
		t.Errorf("the old cluster has %d tickets, want 4", len(rows))
	}
	n, err := pi.store.PruneBands(ctx, pi.clock.Now().Add(-7*24*time.Hour))
	if err != nil || n != 6*32 {
		t.Errorf("pruned %d band rows, %v; want the 6 old tickets' 192", n, err)
	}
}

// sender returns a function that delivers a customer's mail (a reply to
// parent's Message-ID when parent is set), processes it with p, moves
// the clock a minute on and returns the mail's ticket.
func sender(t *testing.T, pi *procInstall, p *ingest.Processor) func(from, subject, body, parent string) int64 {
	ctx := context.Background()
	return func(from, subject, body, parent string) int64 {
		t.Helper()
		raw := fmt.Sprintf("From: %s\r\nTo: support@acme.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
			from, subject, from+"."+subject, body)
		h := sha256.Sum256([]byte(raw))
		in := &storage.Incoming{Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: from + "." + subject, From: from,
			Subject: subject, NormSubject: subject, Class: "human", Role: "customer", Inboxes: []string{"support@acme.test"}, Source: "test"}
		if parent != "" {
			in.References = []string{parent}
			in.Place = func(ctx context.Context, tx *storage.Tx) (storage.Placement, error) {
				refs, err := tx.TicketsByMessageIDs(ctx, in.References)
				if err != nil || len(refs) == 0 {
					return storage.Placement{}, err
				}
				return storage.Placement{Ticket: refs[0].Ticket}, nil
			}
		}
		d, err := pi.c.Deliver(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		drain(t, pi, p, 3)
		pi.clock.Advance(time.Minute)
		return d.Ticket
	}
}

// TestClusterUsesPreparedStems: what Prepare worked out is what the
// ticket is placed by, not worked out again inside the transaction: a
// mail given the stems of another before the transaction joins that
// other's cluster, though its own words share nothing with it.
func TestClusterUsesPreparedStems(t *testing.T) {
	b := storagetest.Backends()[0]
	pi := newProcInstall(t, b)
	ctx := context.Background()
	cl := ingest.Clusterer{Window: 7 * 24 * time.Hour, Clock: pi.clock}
	var first *storage.Prepared
	p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{Owner: "t", Clock: pi.clock,
		AfterParse: cl.Then(func(context.Context, *storage.Tx, storage.Message) error { return nil }),
		Prepare: func(m *storage.Message) {
			cl.Prepare(m)
			if first == nil {
				first = m.Prepared
				return
			}
			m.Prepared.Stems, m.Prepared.Bands = first.Stems, first.Bands
		}})
	send := sender(t, pi, p)
	a := send("ann@example.com", "Invoice PDF is empty", "When I download my invoice the PDF file is completely empty, just a blank page.", "")
	other := send("bob@example.org", "Android app crashes", "The app closes right after I start it on my phone.", "")
	if first == nil || !first.HasStems || len(first.Bands) == 0 {
		t.Fatalf("Prepare gave the first mail %+v, want its stems and bands", first)
	}
	rows, err := pi.store.ClusterTickets(ctx, a, nil)
	if err != nil || len(rows) != 2 {
		t.Fatalf("ticket %d's cluster has %d tickets (%v), want %d and %d: the prepared stems were not used", a, len(rows), err, a, other)
	}
}
