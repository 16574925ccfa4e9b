package followup_test

import (
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestRelayedAgainIsOneMessage: behind a real MTA the same message
// arrives a second time through another hop (a second MX, a Postfix
// re-queue after a crash, a forwarder): same Message-ID and body, more
// trace fields on top. It is one message: one acknowledgement, one
// notification, one message on the ticket. Before, deduplication hashed
// the raw bytes, trace fields included, and the copy was stored again and
// re-notified the agents.
func TestRelayedAgainIsOneMessage(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { relayedAgainIsOneMessage(t, b.Open) })
}

func relayedAgainIsOneMessage(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	sent := customerMail("hop1@example.com", "Invoice missing", "I never got the March invoice.")
	direct := "Received: from mail.example.com (mail.example.com [192.0.2.10])\r\n\tby mx1.acme.test (Postfix) with ESMTPS id 4Q1;\r\n\tMon, 2 Mar 2026 10:00:02 +0100 (CET)\r\n" + sent
	twoHops := "Return-Path: <ann@example.com>\r\n" +
		"Delivered-To: support@acme.test\r\n" +
		"X-Original-To: support@acme.test\r\n" +
		"Received: from mx2.acme.test (mx2.acme.test [198.51.100.2])\r\n\tby mx1.acme.test (Postfix) with ESMTP id 7Z9;\r\n\tMon, 2 Mar 2026 10:05:00 +0100 (CET)\r\n" +
		"Authentication-Results: mx2.acme.test; spf=pass smtp.mailfrom=example.com;\r\n\tdkim=pass header.d=example.com\r\n" +
		"ARC-Seal: i=1; a=rsa-sha256; d=acme.test; s=arc; cv=none; b=AAAA\r\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; d=acme.test; s=relay; h=from:subject; bh=BBBB; b=CCCC\r\n" +
		"X-Spam-Status: No, score=-0.1\r\n" +
		"Received: from mail.example.com (mail.example.com [192.0.2.10])\r\n\tby mx2.acme.test (Postfix) with ESMTPS id 1A2;\r\n\tMon, 2 Mar 2026 10:00:01 +0100 (CET)\r\n" + sent
	w.mustSend(customer, []string{inbox}, direct)
	w.mustSend(customer, []string{inbox}, twoHops)
	got := w.capture.take()
	if n := len(to(got, customer)); n != 1 {
		t.Errorf("customer got %d acknowledgements, want 1", n)
	}
	if n := len(to(got, alice)); n != 1 {
		t.Errorf("alice got %d notifications, want 1", n)
	}
	in := 0
	for _, m := range w.ticket(1).Messages {
		if m.Direction == storage.DirectionIn {
			in++
		}
	}
	if in != 1 {
		t.Errorf("ticket #1 has %d received messages, want 1", in)
	}
}
