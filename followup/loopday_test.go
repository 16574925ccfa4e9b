package followup_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/vocab"
)

// responderMode is how the scripted auto-responders behave.
type responderMode int

const (
	// wellBehaved responders mark their answers (RFC 3834: Auto-Submitted,
	// the null reverse-path, In-Reply-To), yet answer everything.
	wellBehaved responderMode = iota
	// headerless responders look like a person: no automatic header, a
	// "Re:" subject, a fresh Message-ID, no In-Reply-To, their own
	// envelope sender.
	headerless
)

// out is one mail tend sent, as the loop test records it.
type out struct {
	at         time.Time
	ticket, to string
	subj       string
}

// sentTo counts the recorded mails to addr.
func sentTo(sent []out, addr string) int {
	n := 0
	for _, s := range sent {
		if s.to == addr {
			n++
		}
	}
	return n
}

// autoResponse is owner's out-of-office answer to m.
func autoResponse(t *testing.T, m captured, owner string, mode responderMode, n int) (envFrom, rcpt, raw string) {
	t.Helper()
	rcpt = replyAddr(t, m)
	subject := m.Env.GetHeader("Subject")
	var h strings.Builder
	fmt.Fprintf(&h, "From: %s\r\nTo: %s\r\nMessage-ID: <ooo-%d-%s>\r\nDate: %s\r\n", owner, rcpt, n, owner,
		time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).Format(time.RFC1123Z))
	switch mode {
	case wellBehaved:
		id := m.Env.GetHeader("Message-Id")
		fmt.Fprintf(&h, "Subject: Automatic reply: %s\r\nAuto-Submitted: auto-replied\r\nX-Autoreply: yes\r\nIn-Reply-To: %s\r\nReferences: %s\r\n", subject, id, id)
	case headerless:
		fmt.Fprintf(&h, "Subject: Re: %s\r\n", subject)
		envFrom = owner
	}
	h.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	h.WriteString("Thank you for your mail. I am out of the office until next week and will answer when I am back.\r\n")
	return envFrom, rcpt, h.String()
}

// TestLoopDay is issue 9's unbounded loop, over real sockets: the customer
// and both agents have an out-of-office responder that answers every mail
// it gets, in both modes. Over a simulated day, mail per ticket stays
// within the fuse in every window, and the flood stops by itself.
func TestLoopDay(t *testing.T) {
	const fuseMax, fuseWindow, fusePerDay = 20, 10 * time.Minute, 100
	for _, tc := range []struct {
		name  string
		mode  responderMode
		delay time.Duration // how long a responder takes to answer
	}{
		{"RFC 3834 headers", wellBehaved, 0},
		{"no headers", headerless, 0},
		// Slower than the coalescing window: under the burst limit, so
		// only the daily bound can stop it.
		{"no headers, slow responders", headerless, 3 * time.Minute},
	} {
		mode := tc.mode
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			start := w.clock.Now()
			var sent []out
			in := 0
			type response struct {
				due                time.Time
				env, rcpt, raw, by string
			}
			var pending []response
			w.mustSend(customer, []string{inbox}, customerMail("loop1@example.com", "Where is my order?", "Order 4711 has not arrived."))
			for w.clock.Now().Before(start.Add(24 * time.Hour)) {
				got := w.capture.take()
				for _, m := range got {
					sent = append(sent, out{w.clock.Now(), m.Env.GetHeader("X-Tend-Ticket"), strings.Join(m.To, ","), m.Env.GetHeader("Subject")})
					for _, r := range m.To {
						if r != customer && r != alice && r != lena {
							continue
						}
						in++
						env, rcpt, raw := autoResponse(t, m, r, mode, in)
						pending = append(pending, response{w.clock.Now().Add(tc.delay), env, rcpt, raw, r})
					}
				}
				rest := pending[:0]
				for _, p := range pending {
					if p.due.After(w.clock.Now()) {
						rest = append(rest, p)
						continue
					}
					if err := w.send(p.env, []string{p.rcpt}, p.raw); err != nil {
						t.Fatalf("responder %s: %v", p.by, err)
					}
				}
				pending = rest
				if len(sent) > 2000 {
					t.Fatalf("unbounded: %d mails out by %s", len(sent), w.clock.Now().Sub(start))
				}
				// Responders answer within seconds; once it has been quiet
				// for half an hour, the day goes by in bigger steps (timers
				// still fire on time).
				if len(pending) == 0 && len(sent) > 0 && w.clock.Now().Sub(sent[len(sent)-1].at) > 30*time.Minute {
					w.advance(5 * time.Minute)
				} else {
					w.advance(30 * time.Second)
				}
			}
			if len(sent) == 0 {
				t.Fatal("nothing was sent at all")
			}
			// Every window of fuse_window on a ticket: at most the fuse,
			// plus the one alert to the lead.
			perTicket := map[string][]out{}
			for _, s := range sent {
				perTicket[s.ticket] = append(perTicket[s.ticket], s)
			}
			for tk, ms := range perTicket {
				for i := range ms {
					n := 0
					for j := i; j < len(ms) && ms[j].at.Sub(ms[i].at) < fuseWindow; j++ {
						n++
					}
					if n > fuseMax+1 {
						t.Fatalf("ticket %s: %d mails within %s from %s", tk, n, fuseWindow, ms[i].at.Format("15:04:05"))
					}
				}
				if len(ms) > fusePerDay+1 {
					t.Errorf("ticket %s: %d mails in the day, more than the fuse allows before a lead releases it", tk, len(ms))
				}
			}
			// It stops by itself: the second half of the day is silent (the
			// only later mail in the first half is the breach notice of the
			// first-response timer, which the responders answer once more).
			last := sent[len(sent)-1].at
			if last.Sub(start) > 12*time.Hour {
				t.Errorf("the flood did not stop by itself: last mail at %s", last.Format("15:04"))
			}
			tickets := make([]string, 0, len(perTicket))
			for tk := range perTicket {
				tickets = append(tickets, tk)
			}
			sort.Strings(tickets)
			counts := make([]string, 0, len(tickets))
			for _, tk := range tickets {
				counts = append(counts, fmt.Sprintf("#%s: %d", tk, len(perTicket[tk])))
			}
			d := w.ticket(1)
			t.Logf("%d mails out, %d auto-responses in, last mail %s after the first; per ticket %s; %d messages on #1; held since %v",
				len(sent), in, last.Sub(start), strings.Join(counts, ", "), len(d.Messages), d.MailHeldSince)
			switch mode {
			case wellBehaved:
				// Marked auto-replies are recognised at once: nothing of an
				// agent's responder reaches the customer, no fuse needed.
				if n := sentTo(sent, customer); n != 1 {
					t.Errorf("customer got %d mails, want only the acknowledgement", n)
				}
				if !hasEvent(d, "agent.auto_reply_held", "") || d.MailHeldSince != nil {
					t.Errorf("agents' auto-replies not held, or the fuse was needed (held since %v)", d.MailHeldSince)
				}
			case headerless:
				// Nothing says these are automatic: the fuse stops them,
				// and the lead hears of it once.
				if d.MailHeldSince == nil {
					t.Error("the fuse did not trip on a loop")
				}
				alerts := 0
				for _, s := range sent {
					if s.to == lena && strings.Contains(s.subj, "Mail held") {
						alerts++
					}
				}
				if alerts != 1 {
					t.Errorf("lena got %d fuse alerts, want 1", alerts)
				}
				if !hasEvent(d, "ticket.mail_held", "") {
					t.Error("the trip is not on the timeline")
				}
			}
			if d.State == vocab.StateClosed {
				t.Errorf("a responder closed the ticket")
			}
		})
	}
}
