package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestServeAnswersInCustomerLanguage: through the real server, a French
// first message is acknowledged from the French templates, and the
// ticket's language is in the API: serve wires the detector and the
// inboxes' policies into the executor.
func TestServeAnswersInCustomerLanguage(t *testing.T) {
	p := startTend(t, writeConfig(t, t.TempDir(), "sqlite", ""))
	tok := p.token("lead")
	msg := mailText("Fleur <fleur@example.fr>", "support@acme.test", "Export bloqué", "fr1@example.fr", "",
		"Bonjour, mon export est bloqué depuis hier et j'ai besoin du rapport pour une réunion.")
	if err := sendMail(p.SMTPAddr, "fleur@example.fr", []string{"support@acme.test"}, msg); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Language string `json:"language"`
		Messages []struct {
			Direction string `json:"direction"`
			Text      string `json:"text"`
		} `json:"messages"`
	}
	waitFor(t, "the acknowledgement", 10*time.Second, func() bool {
		p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", 1), &d)
		return len(d.Messages) >= 2
	})
	if d.Language != "fr" {
		t.Errorf("ticket language %q, want fr", d.Language)
	}
	var ack string
	for _, m := range d.Messages {
		if m.Direction == "out" {
			ack = m.Text
		}
	}
	if !strings.Contains(ack, "Une personne vous répondra sous 4 heures.") {
		t.Errorf("acknowledgement not in French:\n%s", ack)
	}
}
