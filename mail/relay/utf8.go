package relay

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"

	"golang.org/x/net/idna"
)

// ErrNeedsSMTPUTF8 is a message that cannot be sent to a server without
// SMTPUTF8 (RFC 6531): an address whose local part is not ASCII has no
// ASCII form (RFC 6530 section 10.1), so there is nothing to downgrade to.
// It comes in a permanent *SendError with Protocol set: the relay, not the
// address, is what refuses it.
var ErrNeedsSMTPUTF8 = errors.New("relay: the server does not offer SMTPUTF8 and a non-ASCII local part cannot be downgraded")

// isASCII reports whether s holds only 7-bit characters.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// headerBlock splits raw at its first empty line into the header block
// (with its final line break) and the rest (starting with the empty line).
func headerBlock(raw []byte) (head, body []byte) {
	for pos := 0; pos < len(raw); {
		i := bytes.IndexByte(raw[pos:], '\n')
		if i < 0 {
			break
		}
		if line := raw[pos : pos+i+1]; len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return raw[:pos], raw[pos:]
		}
		pos += i + 1
	}
	return raw, nil
}

// needsSMTPUTF8 reports whether the envelope or the header block carries
// UTF-8 (RFC 6531 section 3.4: such a transaction must declare SMTPUTF8).
// A body with 8-bit bytes needs only 8BITMIME, which go-smtp declares
// whenever the server offers it.
func needsSMTPUTF8(from string, to []string, raw []byte) bool {
	if !isASCII(from) {
		return true
	}
	for _, r := range to {
		if !isASCII(r) {
			return true
		}
	}
	head, _ := headerBlock(raw)
	return !isASCII(string(head))
}

// downgradeAddress returns the ASCII form of an envelope address: an
// internationalised domain as A-labels (RFC 5891); a non-ASCII local part
// has none.
func downgradeAddress(a string) (string, error) {
	if isASCII(a) {
		return a, nil
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 || !isASCII(a[:at]) {
		return "", fmt.Errorf("%w: <%s>", ErrNeedsSMTPUTF8, a)
	}
	d, err := idna.Lookup.ToASCII(a[at+1:])
	if err != nil {
		return "", fmt.Errorf("%w: <%s>: domain: %w", ErrNeedsSMTPUTF8, a, err)
	}
	return a[:at+1] + d, nil
}

// addressFields hold address lists (RFC 5322 section 3.6.2 and 3.6.3,
// and their Resent- forms).
var addressFields = map[string]bool{
	"from": true, "sender": true, "reply-to": true, "to": true, "cc": true, "bcc": true,
	"resent-from": true, "resent-sender": true, "resent-to": true, "resent-cc": true, "resent-bcc": true,
}

// downgrade rewrites a message for a server without SMTPUTF8 (in the
// spirit of RFC 6857): envelope and header addresses with IDN domains get
// their A-labels, display names and unstructured fields with raw UTF-8
// become RFC 2047 encoded-words; fields that are ASCII are kept byte for
// byte, so a DKIM signature over them still verifies. The body is left
// alone (8BITMIME carries it). Any address with a non-ASCII local part
// makes it fail with ErrNeedsSMTPUTF8.
func downgrade(from string, to []string, raw []byte) (string, []string, []byte, error) {
	from, err := downgradeAddress(from)
	if err != nil {
		return "", nil, nil, err
	}
	out := make([]string, len(to))
	for i, r := range to {
		if out[i], err = downgradeAddress(r); err != nil {
			return "", nil, nil, err
		}
	}
	head, body := headerBlock(raw)
	var b bytes.Buffer
	for _, f := range splitFields(head) {
		if isASCII(string(f)) {
			b.Write(f)
			continue
		}
		name, value, ok := strings.Cut(string(f), ":")
		if !ok || !isASCII(name) {
			return "", nil, nil, fmt.Errorf("%w: malformed header line %q", ErrNeedsSMTPUTF8, clipLine(string(f)))
		}
		value = strings.TrimSpace(unfold(value))
		if addressFields[strings.ToLower(strings.TrimSpace(name))] {
			if value, err = downgradeAddressList(value); err != nil {
				return "", nil, nil, fmt.Errorf("%s: %w", name, err)
			}
		} else {
			// Encoded-words of at most 75 characters, one per line.
			value = strings.ReplaceAll(mime.QEncoding.Encode("utf-8", value), "?= =?", "?=\r\n =?")
		}
		b.WriteString(name + ": " + value + "\r\n")
	}
	b.Write(body)
	return from, out, b.Bytes(), nil
}

// downgradeAddressList re-renders an address list with ASCII domains and
// encoded display names.
func downgradeAddressList(v string) (string, error) {
	list, err := mail.ParseAddressList(v)
	if err != nil {
		return "", fmt.Errorf("%w: cannot parse %q: %w", ErrNeedsSMTPUTF8, clipLine(v), err)
	}
	parts := make([]string, len(list))
	for i, a := range list {
		if a.Address, err = downgradeAddress(a.Address); err != nil {
			return "", err
		}
		parts[i] = a.String() // net/mail encodes a non-ASCII name (RFC 2047)
	}
	return strings.Join(parts, ",\r\n "), nil
}

// splitFields cuts a header block into fields, each with its folded
// continuation lines and line breaks.
func splitFields(head []byte) [][]byte {
	var fields [][]byte
	for len(head) > 0 {
		end := len(head)
		for i := bytes.IndexByte(head, '\n'); i >= 0; {
			if i+1 >= len(head) || (head[i+1] != ' ' && head[i+1] != '\t') {
				end = i + 1
				break
			}
			j := bytes.IndexByte(head[i+1:], '\n')
			if j < 0 {
				break
			}
			i += 1 + j
		}
		fields = append(fields, head[:end])
		head = head[end:]
	}
	return fields
}

// unfold removes the line breaks of folding (RFC 5322 section 2.2.3).
func unfold(v string) string {
	return strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
}

func clipLine(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
