package followup_test

import (
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

func TestAgentCommandMistake(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { agentCommandMistake(t, b.Open) })
}

func agentCommandMistake(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.mustSend(customer, []string{inbox}, customerMail("c1@example.com", "Login broken", "Cannot log in."))
	notes := to(w.capture.take(), alice)
	rcpt, raw := replyTo(notes[0], alice, "Fixed it, please try again.\r\n\r\n#reslove")
	w.mustSend(alice, []string{rcpt}, raw)
	got := w.capture.take()
	if n := len(to(got, customer)); n != 0 {
		t.Fatalf("customer got %d mails despite a malformed command", n)
	}
	told := to(got, alice)
	if len(told) != 1 || !strings.Contains(told[0].Env.Text, "#resolve") || !strings.Contains(told[0].Env.Text, "Fixed it, please try again.") {
		t.Fatalf("alice was not told what was wrong and what would have been sent: %+v", told)
	}
}
