package main

import (
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/vocab"
)

// The follow_through keys reach what they configure: acknowledge the
// rules, the fuse and the coalescing window the executor.
func TestFollowThroughKeysTakeEffect(t *testing.T) {
	for _, ack := range []bool{true, false} {
		cfg := config.Default()
		cfg.FollowThrough.Acknowledge = ack
		eng, _, err := loadRules(cfg, inboxAddresses(cfg))
		if err != nil {
			t.Fatal(err)
		}
		ev := rules.Event{Type: vocab.EventTicketCreated, Now: time.Now(),
			Ticket:  rules.Ticket{Number: 1, State: "new", Customer: rules.Person{Address: "ann@example.com"}, Inbox: rules.Inbox{Address: "support@localhost"}},
			Message: &rules.Message{From: rules.Person{Address: "ann@example.com"}, Role: rules.RoleCustomer, Class: vocab.ClassHuman, Text: "Help"}}
		acts, errs := eng.Evaluate(ev)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		got := false
		for _, a := range acts {
			got = got || a.Template == "acknowledgement"
		}
		if got != ack {
			t.Errorf("acknowledge: %v: acknowledgement sent = %v (%v)", ack, got, acts)
		}
	}
	cfg := config.Default()
	cfg.FollowThrough.FuseMaxMails, cfg.FollowThrough.FuseWindow, cfg.FollowThrough.NotifyWindow = 7, 90*time.Second, 30*time.Second
	cfg.FollowThrough.FuseMaxMailsPerDay = 40
	o := followupOptions(cfg)
	if o.FuseMaxMails != 7 || o.FuseWindow != 90*time.Second || o.NotifyWindow != 30*time.Second || o.FuseMaxPerDay != 40 {
		t.Errorf("executor options = fuse %d/%s, %d a day, notify %s", o.FuseMaxMails, o.FuseWindow, o.FuseMaxPerDay, o.NotifyWindow)
	}
}

// max_auto_per_address_per_hour and max_auto_per_ticket_per_day take
// effect: the gate the rules carry refuses the acknowledgement at the
// configured limit, not at the default.
func TestAutoMailCapsTakeEffect(t *testing.T) {
	ack := rules.Action{Kind: rules.Send, Template: "acknowledgement", To: rules.ToCustomer, Auto: true}
	for _, tc := range []struct {
		name            string
		perHour, perDay int
		hour, day       int // counts so far
		ok              bool
	}{
		{"per hour 5, 4 sent", 5, 10, 4, 4, true},
		{"per hour 5, 5 sent", 5, 10, 5, 5, false},
		{"per day 2, 2 sent", 30, 2, 0, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.FollowThrough.MaxAutoPerAddressPerHour, cfg.FollowThrough.MaxAutoPerTicketPerDay = tc.perHour, tc.perDay
			eng, _, err := loadRules(cfg, inboxAddresses(cfg))
			if err != nil {
				t.Fatal(err)
			}
			ev := rules.Event{Type: vocab.EventTicketCreated, Now: time.Now(),
				Ticket: rules.Ticket{Number: 1, Customer: rules.Person{Address: "ann@example.com"}, Inbox: rules.Inbox{Address: "support@localhost"},
					AutoMailsToCustomerLastHour: tc.hour, AutoMailsOnTicketToday: tc.day}}
			if ok, why := rules.Gate(ev, ack, eng.Options()); ok != tc.ok {
				t.Errorf("Gate = %v (%s), want %v", ok, why, tc.ok)
			}
		})
	}
}
