package followup_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestNotificationsCoalesced: an agent gets at most one notification per
// ticket per notify_window; what arrives meanwhile is one mail saying how
// many. The window is set below the default, so the test fails if the key
// is ignored.
func TestNotificationsCoalesced(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { notificationsCoalesced(t, b.Open) })
}

func notificationsCoalesced(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldWith(t, open, &worldTweaks{exec: func(o *followup.Options) { o.NotifyWindow = 30 * time.Second }})
	w.mustSend(customer, []string{inbox}, customerMail("c1@example.com", "Export stuck", "The export hangs."))
	ack := to(w.capture.take(), customer)[0]
	for i := range 3 {
		w.clock.Advance(5 * time.Second)
		w.mustSend(customer, []string{inbox}, replyToUs(t, ack, fmt.Sprintf("c%d@example.com", i+2), fmt.Sprintf("Still stuck (%d).", i)))
	}
	if n := len(to(w.capture.take(), alice)); n != 0 {
		t.Fatalf("alice got %d notifications inside the window, want 0", n)
	}
	w.advance(15 * time.Second) // 30 s after the first notification
	got := to(w.capture.take(), alice)
	if len(got) != 1 {
		t.Fatalf("alice got %d notifications at the end of the window, want 1", len(got))
	}
	if s := got[0].Env.GetHeader("Subject"); !strings.Contains(s, "3 new messages") || !strings.Contains(got[0].Env.Text, "Still stuck (2)") {
		t.Errorf("coalesced notification: subject %q text %q", s, got[0].Env.Text)
	}
	w.advance(time.Hour)
	if n := len(to(w.capture.take(), alice)); n != 0 {
		t.Errorf("alice got %d more notifications", n)
	}
}
