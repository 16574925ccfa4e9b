package ingest

import (
	"bytes"
	"io"
	"strings"
)

// traceFields are the header fields a hop adds on its way to us, not the
// sender: a message relayed once more (a second MX, a forwarder, a
// Postfix in front of tend re-submitting after a crash) carries one more
// of them and is still the same message. Deduplication hashes the message
// without them.
//
//   - Received, Return-Path: the trace fields proper (RFC 5321 §4.4).
//   - Delivered-To, X-Original-To, X-Envelope-From/-To: written by the
//     delivering MTA (Postfix's local and virtual, qmail, Exim).
//   - Authentication-Results (RFC 8601), Received-SPF (RFC 7208 §9.1),
//     ARC-* (RFC 8617): each verifying hop's verdicts.
//   - DKIM-Signature: added by a signing MTA, and that can be a hop (a
//     forwarder, a list, Postfix with OpenDKIM or rspamd signing relayed
//     mail). A message with the same Message-ID and the same content under
//     another signature is the same message.
//   - X-Spam-*, X-Virus-*, X-Rspamd-*, X-Greylist, X-Received,
//     X-MS-Exchange-Organization-*: filters and Exchange hops.
//
// Postfix adds Message-ID and Date only to mail from its own local or
// submission clients (local_header_rewrite_clients), never to mail it
// relays, so those stay in the hash.
var traceFields = map[string]bool{
	"received": true, "return-path": true, "delivered-to": true, "x-original-to": true,
	"x-envelope-from": true, "x-envelope-to": true, "authentication-results": true,
	"received-spf": true, "dkim-signature": true, "x-greylist": true, "x-received": true,
}

var tracePrefixes = []string{"arc-", "x-spam-", "x-virus-", "x-rspamd-", "x-ms-exchange-organization-"}

// isTraceField reports whether the field named name is added by hops
// (see traceFields).
func isTraceField(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if traceFields[n] {
		return true
	}
	for _, p := range tracePrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// writeContentHeader writes the header block to w without its trace
// fields (a folded field with all its continuation lines) and without
// CRs. Lines are split on LF; a CR-only header block (old Mac mailers) is
// one line and is hashed whole, which only costs deduplication across
// hops for such mail.
func writeContentHeader(w io.Writer, block []byte) {
	skip := false
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line = block[:i+1]
		}
		block = block[len(line):]
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := bytes.Cut(line, []byte(":"))
			skip = ok && isTraceField(string(name))
		}
		if !skip {
			writeNoCR(w, line)
		}
	}
}
