package web

import (
	"testing"

	"github.com/tendhq/tend/storage"
)

func TestDelivery(t *testing.T) {
	for _, tc := range []struct {
		relay   bool
		o       storage.OutboxMail
		want    string
		problem bool
	}{
		{false, storage.OutboxMail{Status: storage.OutboxPending}, "not sent: no relay configured", true},
		{true, storage.OutboxMail{Status: storage.OutboxPending}, "queued", false},
		{true, storage.OutboxMail{Status: storage.OutboxPending, Attempts: 2, LastError: "451 try later"}, "queued, 2 attempts so far: 451 try later", true},
		{true, storage.OutboxMail{Status: storage.OutboxSent}, "sent", false},
		{true, storage.OutboxMail{Status: storage.OutboxFailed, LastError: "550 no such user"}, "failed: 550 no such user", true},
	} {
		s := &Server{opts: Options{RelayConfigured: tc.relay}}
		if got, problem := s.delivery(tc.o); got != tc.want || problem != tc.problem {
			t.Errorf("delivery(%+v, relay %v) = %q %v, want %q %v", tc.o, tc.relay, got, problem, tc.want, tc.problem)
		}
	}
}
