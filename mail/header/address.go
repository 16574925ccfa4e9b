package header

import (
	"net/mail"
	"strings"
	"unicode/utf8"
)

// maxAddressLen bounds an address: RFC 5321 section 4.5.3.1.3 makes a
// path at most 256 octets; longer "addresses" are junk from broken mail.
const maxAddressLen = 320

// Addresses parses address-list field values (To, Cc, From, one value
// each) into mailboxes with lowercased addresses and decoded display
// names (storable Text). Each value is read with net/mail; where a broken
// client makes that fail, it is split on commas and semicolons outside
// quotes and each part is read on its own, laxly (see Address), so one
// bad entry costs only itself. Entries without a usable address are left
// out. Lowercasing the local part is not what RFC 5321 section 2.4
// promises, but it is what every mail system does in practice, and a
// helpdesk must not split a customer in two over case.
func Addresses(values ...string) []*mail.Address {
	p := mail.AddressParser{WordDecoder: wordDecoder()}
	var out []*mail.Address
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := p.ParseList(v)
		if err != nil {
			list = nil
			for _, part := range splitAddresses(v) {
				if a := laxAddress(&p, part); a != nil {
					list = append(list, a)
				}
			}
		}
		for _, a := range list {
			a.Address = strings.ToLower(strings.TrimSpace(a.Address))
			a.Name = Text(a.Name)
			if usableAddress(a.Address) {
				out = append(out, a)
			}
		}
	}
	return out
}

// AddressSpecs is Addresses without the display names.
func AddressSpecs(values ...string) []string {
	l := Addresses(values...)
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.Address
	}
	return out
}

// Address returns the bare lowercased address of one mailbox ("Name <A@B>"
// or "a@b", as an envelope or a config gives it), or "" when there is
// none.
func Address(s string) string {
	if l := Addresses(s); len(l) > 0 {
		return l[0].Address
	}
	return ""
}

// laxAddress reads one mailbox that net/mail refuses (unquoted dots or
// commas in names, 8-bit names, junk around the brackets): the last
// <...> with what precedes it as the name, else the bare token.
func laxAddress(p *mail.AddressParser, s string) *mail.Address {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if a, err := p.Parse(s); err == nil {
		return a
	}
	name := ""
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			name = Decode(strings.Trim(strings.TrimSpace(s[:i]), `"'`))
			s = s[i+1 : i+j]
		}
	}
	s = strings.Trim(strings.TrimSpace(s), "<>\"'")
	if strings.Count(s, "@") != 1 || strings.ContainsAny(s, " \t\r\n<>,;") || s[0] == '@' || s[len(s)-1] == '@' {
		return nil
	}
	return &mail.Address{Name: name, Address: s}
}

// usableAddress is what is kept of an address: something, within
// maxAddressLen, valid UTF-8 without NUL.
func usableAddress(a string) bool {
	return a != "" && len(a) <= maxAddressLen && utf8.ValidString(a) && !strings.ContainsRune(a, 0)
}

// splitAddresses cuts an address list at commas and semicolons outside
// double quotes.
func splitAddresses(v string) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case ',', ';':
			if !quoted {
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, v[start:])
}
