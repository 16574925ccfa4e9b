package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// timelineOrder reads the ids of the messages and the kinds of the events
// of a rendered ticket page, in order.
var timelineEntry = regexp.MustCompile(`<article class="message dir-\w+" id="m(\d+)"|<div class="event k-([\w.]+)"`)

func timelineOf(body string) []string {
	var out []string
	for _, m := range timelineEntry.FindAllStringSubmatch(body, -1) {
		if m[1] != "" {
			out = append(out, "m"+m[1])
		} else {
			out = append(out, m[2])
		}
	}
	return out
}

func TestTicketPage(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	first := e.deliverFile("gmail_alternative.eml")
	e.clock.Advance(time.Hour)
	reply := e.deliverFile("thunderbird_reply.eml")
	e.clock.Advance(time.Minute)
	e.exec(fmt.Sprintf("INSERT INTO events (ticket_id, kind, actor, detail, created_at) VALUES (%d, 'state.changed', 'lena@acme.test', 'new → open', '%s')",
		first.Ticket, e.clock.Now().Format("2006-01-02 15:04:05.999999999-07:00")))
	e.setTicket(first.Ticket, "state = 'open'")
	ines := e.deliverFile("applemail_html_only.eml")
	hostile := e.deliverFile("hostile_html.eml")

	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)

	t.Run("timeline", func(t *testing.T) {
		code, body := b.get(fmt.Sprintf("/tickets/%d", first.Ticket))
		if code != http.StatusOK {
			t.Fatalf("ticket page = %d", code)
		}
		want := []string{"ticket.created", fmt.Sprintf("m%d", first.MessageRowID), fmt.Sprintf("m%d", reply.MessageRowID), "state.changed"}
		if got := timelineOf(body); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("timeline = %v, want %v", got, want)
		}
		for _, frag := range []string{
			"since I reset my password this morning", // the text part, not the HTML
			"Still broken. Here is the page I saved",
			"threaded by In-Reply-To to &lt;CAJx9&#43;2kQ7Ww3vF0pRz_Ue4b1Nw8-XyZ0aBcD1eFgH2iJ3kLmN@mail.gmail.com&gt;", // html/template escapes +
			"no evidence matched: new ticket",
			fmt.Sprintf(`href="/tickets/%d/messages/%d/attachments/0" download>login page.html</a>`, first.Ticket, reply.MessageRowID),
			fmt.Sprintf(`href="/tickets/%d/messages/%d/raw" download>Original message</a>`, first.Ticket, reply.MessageRowID),
			"new → open", "2 attachments",
		} {
			if !strings.Contains(body, frag) {
				t.Errorf("ticket page lacks %q", frag)
			}
		}
		if strings.Contains(body, `<div class="body html">`) {
			t.Error("HTML shown for messages that have a text part")
		}
		if strings.Contains(body, `id="actions"`) {
			t.Error("an agent sees lead actions")
		}
	})

	t.Run("html only", func(t *testing.T) {
		_, body := b.get(fmt.Sprintf("/tickets/%d", ines.Ticket))
		for _, frag := range []string{
			`<div class="body html">`, "<b>password reset</b>",
			`<a href="https://status.acme.test/" rel="nofollow noreferrer noopener" target="_blank">Your status page</a>`,
		} {
			if !strings.Contains(body, frag) {
				t.Errorf("HTML-only message: page lacks %q", frag)
			}
		}
	})

	t.Run("hostile", func(t *testing.T) {
		_, body := b.get(fmt.Sprintf("/tickets/%d", hostile.Ticket))
		if !strings.Contains(body, `Please click here or <a href="https://evil.example/phish"`) || !strings.Contains(body, "Regards, M.") {
			t.Fatalf("hostile message body not shown:\n%s", body)
		}
		for _, bad := range []string{"<script>alert", `onerror="`, "onload=", "javascript:", "<iframe", "<form action=\"https://evil", "position:fixed", "<img src=x"} {
			if strings.Contains(body, bad) {
				t.Errorf("page contains %q", bad)
			}
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(document.cookie)&gt; urgent") {
			t.Error("hostile subject not escaped as text")
		}
		assertNoInlineCode(t, body)
	})

	t.Run("errors", func(t *testing.T) {
		for path, want := range map[string]int{
			"/tickets/999":  http.StatusNotFound,
			"/tickets/zero": http.StatusBadRequest,
			"/tickets/-1":   http.StatusBadRequest,
		} {
			if code, _ := b.get(path); code != want {
				t.Errorf("GET %s = %d, want %d", path, code, want)
			}
		}
	})

	t.Run("merged", func(t *testing.T) {
		e.setTicket(ines.Ticket, fmt.Sprintf("merged_into = %d", first.Ticket))
		code, _, res := b.do(http.MethodGet, fmt.Sprintf("/tickets/%d", ines.Ticket), nil)
		if code != http.StatusMovedPermanently || res.Header.Get("Location") != fmt.Sprintf("/tickets/%d", first.Ticket) {
			t.Errorf("merged ticket: %d -> %q", code, res.Header.Get("Location"))
		}
	})
}

func TestTimelineOrder(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	id := func(n int64) *int64 { return &n }
	d := storage.TicketDetail{
		Messages: []storage.Message{
			{ID: 1, ReceivedAt: at(0), Text: "first"},
			{ID: 2, ReceivedAt: at(30), Text: "second", Direction: storage.DirectionOut},
			{ID: 3, ReceivedAt: at(10), HTML: "<p>html</p>", Text: "html", ParseError: "[W] Plain Text from HTML: Message did not contain a text/plain part", Evidence: `[{"Kind":"in-reply-to","Ticket":7,"Detail":"parent known","Accepted":true}]`},
		},
		Events: []storage.Event{
			{ID: 1, Kind: "ticket.created", CreatedAt: at(0)},
			{ID: 2, Kind: vocab.EventMessageReceived, Detail: "new conversation", MessageRowID: id(1), CreatedAt: at(0)},
			{ID: 3, Kind: "timer.due", CreatedAt: at(20)},
			{ID: 4, Kind: "outbox.sent", CreatedAt: at(30)},
			{ID: 5, Kind: vocab.EventMessageReceived, Detail: "threaded by In-Reply-To", MessageRowID: id(3), CreatedAt: at(10)},
		},
	}
	items := timeline(d, map[int64][]storage.Attachment{3: {{Part: 0, Filename: "a.txt"}}})
	var got []string
	for _, it := range items {
		if it.Message != nil {
			got = append(got, fmt.Sprintf("m%d", it.Message.ID))
		} else {
			got = append(got, string(it.Event.Kind))
		}
	}
	if want := "ticket.created m1 m3 timer.due m2 outbox.sent"; strings.Join(got, " ") != want {
		t.Errorf("timeline = %v, want %s", got, want)
	}
	m1, m3 := items[1].Message, items[2].Message
	if m1.Threading != "new conversation" || m1.ShowHTML {
		t.Errorf("m1 = %+v", m1)
	}
	if !m3.ShowHTML || m3.Threading != "threaded by In-Reply-To" || len(m3.Evidence) != 1 || !m3.Evidence[0].Accepted || len(m3.Attachments) != 1 {
		t.Errorf("m3 = %+v", m3)
	}
}

func TestParseEvidence(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []evidenceView
		raw      string
	}{
		{"empty", "", nil, ""},
		{"threading's shape", `[{"Kind":"references","Ticket":12,"Detail":"References <a@b>","Accepted":true},{"Kind":"subject","Ticket":0,"Detail":"too old","Accepted":false}]`,
			[]evidenceView{{"references", 12, "References <a@b>", true}, {"subject", 0, "too old", false}}, ""},
		{"lower-case keys", `[{"kind":"new","detail":"no clue matched"}]`, []evidenceView{{Kind: "new", Detail: "no clue matched"}}, ""},
		{"an object", `{"via":"in-reply-to"}`, nil, "{\n  \"via\": \"in-reply-to\"\n}"},
		{"unknown list", `[{"x":1}]`, nil, "[\n  {\n    \"x\": 1\n  }\n]"},
		{"not json", "threaded by hand", nil, "threaded by hand"},
		{"wrong types", `[{"Kind":5,"Detail":"d"}]`, []evidenceView{{Detail: "d"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, raw := parseEvidence(tc.in)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || raw != tc.raw {
				t.Errorf("parseEvidence = %+v, %q; want %+v, %q", got, raw, tc.want, tc.raw)
			}
		})
	}
}

// TestSenderAuthShown: the stored verdict is on the timeline (a badge and
// the full results) and in the API's message JSON; a forged sender is
// marked, and mail we sent carries no verdict.
func TestSenderAuthShown(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	good := e.deliver(mail("ann@example.com", "sa1@example.com", "Verified", "From the real Ann."))
	forged := e.deliver(mail("ann@example.com", "sa2@example.com", "Forged", "Not really Ann."))
	unchecked := e.deliver(mail("ann@example.com", "sa3@example.com", "Unchecked", "Nobody looked."))
	e.exec(fmt.Sprintf("UPDATE messages SET auth_method = 'local', auth_dkim = 'pass', auth_dkim_domain = 'example.com', auth_spf = 'none', auth_dmarc = 'pass', auth_from_domain = 'example.com', auth_aligned = true WHERE id = %d", good.MessageRowID))
	e.exec(fmt.Sprintf("UPDATE messages SET auth_method = 'authres', auth_serv_id = 'mx.acme.test', auth_dkim = 'none', auth_spf = 'fail', auth_spf_domain = 'evil.test', auth_dmarc = 'fail', auth_from_domain = 'example.com', auth_aligned = false WHERE id = %d", forged.MessageRowID))
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)
	for _, tc := range []struct {
		d     storage.Delivered
		frags []string
	}{
		{good, []string{fmt.Sprintf(`<span class="tag auth" id="auth-%d"`, good.MessageRowID), "sender verified: example.com",
			"Sender authentication: dkim=pass (example.com) spf=none dmarc=pass · aligned with example.com · checked by tend"}},
		{forged, []string{fmt.Sprintf(`<span class="tag auth warn" id="auth-%d"`, forged.MessageRowID), "sender not verified",
			"Sender authentication: dkim=none spf=fail (evil.test) dmarc=fail · no aligned pass · Authentication-Results of mx.acme.test"}},
		{unchecked, []string{fmt.Sprintf(`<span class="tag auth" id="auth-%d">sender not checked</span>`, unchecked.MessageRowID)}},
	} {
		_, body := b.get(fmt.Sprintf("/tickets/%d", tc.d.Ticket))
		for _, f := range tc.frags {
			if !strings.Contains(body, f) {
				t.Errorf("ticket %d page lacks %q", tc.d.Ticket, f)
			}
		}
	}

	tok, err := e.store.CreateToken(e.ctx, "ci", "agent")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/tickets/%d", ts.URL, forged.Ticket), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got struct {
		Messages []MessageJSON `json:"messages"`
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := SenderAuthJSON{Checked: true, Method: "authres", AuthServID: "mx.acme.test", DKIM: "none", SPF: "fail", SPFDomain: "evil.test", DMARC: "fail", FromDomain: "example.com"}
	for _, m := range got.Messages {
		switch {
		case m.Direction == storage.DirectionIn && (m.SenderAuth == nil || *m.SenderAuth != want):
			t.Errorf("API sender_auth of the forged mail = %+v, want %+v", m.SenderAuth, want)
		case m.Direction != storage.DirectionIn && m.SenderAuth != nil:
			t.Errorf("outgoing mail has a sender verdict: %+v", m.SenderAuth)
		}
	}
}

// TestNotSolvedBanner: when the customer's last answer to "is it solved?"
// is no (by mail or by link), the ticket page says so at the top, until
// resolution is proposed again or the ticket is done.
func TestNotSolvedBanner(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	d := e.deliverFile("gmail_alternative.eml")
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)
	event := func(kind, detail string) {
		e.clock.Advance(time.Minute)
		e.exec(fmt.Sprintf("INSERT INTO events (ticket_id, kind, actor, detail, created_at) VALUES (%d, '%s', '', '%s', '%s')",
			d.Ticket, kind, detail, e.clock.Now().Format("2006-01-02 15:04:05.999999999-07:00")))
	}
	steps := []struct {
		name, kind, detail, state string
		banner                    bool
	}{
		{"asked", "ticket.resolve_requested", "resolution proposed by lena@acme.test", "proposed", false},
		{"answered no by mail", "confirmation.answered", "the customer says it is not solved", "open", true},
		{"asked again", "ticket.resolve_requested", "resolution proposed by lena@acme.test", "proposed", false},
		{"clicked not solved", "confirmation.clicked", "customer clicked: not_solved", "open", true},
		{"closed after all", "ticket.state_changed", "open → closed", "closed", false},
	}
	for _, st := range steps {
		event(st.kind, st.detail)
		e.setTicket(d.Ticket, "state = '"+st.state+"'")
		_, body := b.get(fmt.Sprintf("/tickets/%d", d.Ticket))
		if got := strings.Contains(body, `id="not-solved"`); got != st.banner {
			t.Errorf("%s: banner shown = %v, want %v", st.name, got, st.banner)
		}
	}
}
