package followup_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestPreparedMatchesUnprepared: what the processor prepares before the
// batch's transaction (a new conversation's language, the attachments
// notifications forward) makes exactly the mail the executor made when it
// computed them itself inside it: the same acknowledgements in the same
// languages, the same notifications with the same forwarded bytes. The
// world without Prepare is the fallback every message takes that was
// not prepared (a reply opening a ticket, a message given up on).
func TestPreparedMatchesUnprepared(t *testing.T) {
	mails := []struct{ from, raw string }{
		{"fleur@example.fr", mailFrom("fleur@example.fr", "p1@example.com", "Export bloqué", "Bonjour, mon export est bloqué depuis hier et j'ai besoin du rapport.")},
		{"dora@example.de", mailFrom("dora@example.de", "p2@example.com", "Export hängt", "Hallo, mein Export hängt seit gestern und ich brauche den Bericht.")},
		{customer, mailWithAttachment("p3@example.com", "Printer log", "The printer prints blank pages.", "log.pdf", 10<<10)},
		// A reply to mail tend never saw opens a ticket all the same.
		{"paula@example.es", strings.Replace(mailFrom("paula@example.es", "p4@example.com", "Re: Factura duplicada",
			"Hola, nos han cobrado dos veces la factura de marzo y necesitamos la devolución."), "Message-ID:", "In-Reply-To: <elsewhere@example.es>\r\nMessage-ID:", 1)},
	}
	run := func(prepare bool) (out []string, langs []string, forwarded [][]byte) {
		w := newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{
			exec: func(o *followup.Options) {
				withPolicy(t, "en", "", "")(o)
				o.NotifyAttachMax = 64 << 10
			},
			proc: func(w *world, o *ingest.ProcessorOptions) {
				if !prepare {
					o.Prepare, o.KeepAttachments = nil, 0
				}
			},
		})
		for _, m := range mails {
			w.clock.Advance(time.Minute)
			w.mustSend(m.from, []string{inbox}, m.raw)
		}
		got := w.capture.take()
		for _, g := range got {
			out = append(out, fmt.Sprintf("%s|%s|%s", strings.Join(g.To, ","), g.Env.GetHeader("Subject"), g.Env.Text))
			for _, a := range g.Env.Attachments {
				forwarded = append(forwarded, a.Content)
			}
		}
		for n := int64(1); n <= int64(len(mails)); n++ {
			langs = append(langs, w.ticket(n).Language)
		}
		slices.Sort(out)
		return out, langs, forwarded
	}
	mailA, langA, fwdA := run(true)
	mailB, langB, fwdB := run(false)
	if !slices.Equal(langA, []string{"fr", "de", "en", "es"}) || !slices.Equal(langA, langB) {
		t.Errorf("ticket languages prepared %v, unprepared %v; want [fr de en es] both", langA, langB)
	}
	if len(mailA) == 0 || !slices.Equal(mailA, mailB) {
		t.Errorf("prepared and unprepared mail differ:\n%s\n--- unprepared:\n%s", strings.Join(mailA, "\n"), strings.Join(mailB, "\n"))
	}
	if len(fwdA) != 2 || !slices.EqualFunc(fwdA, fwdB, bytes.Equal) {
		t.Errorf("forwarded %d attachments prepared, %d unprepared, or different bytes; want the log to each of two agents", len(fwdA), len(fwdB))
	}
}

// TestPrepare: the language is prepared for a customer's message that
// opened its ticket, in the language it is written in, a reply to mail
// tend never saw included, and not for a message on a ticket opened
// before it or an agent's mail (the ticket has its language by then).
func TestPrepare(t *testing.T) {
	w := newWorldOn(t, storagetest.OpenSQLite, withPolicy(t, "en", "", ""))
	text := "Bonjour, mon export est bloqué depuis hier et j'ai besoin du rapport."
	cases := []struct {
		name string
		msg  storage.Message
		want bool
	}{
		{"new conversation", storage.Message{Direction: storage.DirectionIn, Role: "customer", OpensTicket: true}, true},
		{"a reply opening its ticket", storage.Message{Direction: storage.DirectionIn, Role: "customer", InReplyTo: "a@example.com", OpensTicket: true}, true},
		{"on a ticket opened before", storage.Message{Direction: storage.DirectionIn, Role: "customer"}, false},
		{"an agent", storage.Message{Direction: storage.DirectionIn, Role: "agent", OpensTicket: true}, false},
	}
	for _, c := range cases {
		m := c.msg
		m.Subject, m.Text, m.Prepared = "Export bloqué", text, &storage.Prepared{}
		w.exec.Prepare(&m)
		if m.Prepared.HasLanguage != c.want || (c.want && m.Prepared.Language != "fr") {
			t.Errorf("%s: prepared %+v, want language prepared %v (fr)", c.name, *m.Prepared, c.want)
		}
	}
}
