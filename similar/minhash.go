// Package similar finds tickets about the same thing by their content:
// the subject and the first customer message, reduced to a set of word
// stems, summarised by a MinHash signature and indexed by LSH bands
// (locality-sensitive hashing), so that a new ticket finds its likely
// look-alikes with one indexed lookup and no scan.
//
// It is written here rather than taken from a library: the Go MinHash
// packages (ekzhu/minhash-lsh and its forks) keep their index in memory,
// while tend needs the signature and the band keys as plain values it can
// store in the database, shared by every replica and kept across
// restarts. The algorithm is small (Broder 1997; Leskovec, Rajaraman and
// Ullman, Mining of Massive Datasets, ch. 3) and table-tested below.
package similar

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"regexp"
	"strings"
	"unicode"
)

// Hashes is the length of a signature; Bands × Rows = Hashes. With 32
// bands of 2 rows, two tickets whose stem sets have a Jaccard similarity
// J share at least one band with probability 1-(1-J²)³², which is 0.5 at
// J≈0.15 and 0.99 at J≈0.37: rewordings meet as candidates, and the
// estimate over all 64 hashes decides.
const (
	Hashes = 64
	Bands  = 32
	Rows   = Hashes / Bands
)

// Signature is the MinHash of a set of stems: for each of Hashes hash
// functions, the smallest hash of any member. Two sets agree on a hash
// with probability equal to their Jaccard similarity, so similar sets
// share bands; the stems themselves decide (Jaccard).
type Signature [Hashes]uint32

// maxStems bounds the work per ticket: a long first mail adds little once
// its first few hundred distinct words are in.
const maxStems = 400

// Stems reduces text to the set of word stems that carry its meaning:
// lower case, letters and digits only, stop words and greetings dropped,
// a light English suffix stripping so that "invoices" meets "invoice".
func Stems(text string) []string {
	text = withoutSignOff(text)
	seen := map[string]bool{}
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if len(w) < 2 || stop[w] || len(w) > 40 {
			continue
		}
		s := stem(w)
		if stop[s] || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
		if len(out) == maxStems {
			break
		}
	}
	return out
}

// signOff matches the line a mail's closing starts with ("Best regards,",
// "Thanks, Anna", "-- "): what follows is a name and a signature, which
// say who wrote, not what about, and would make two customers' different
// problems look alike when they sign the same way.
var signOff = regexp.MustCompile(`(?i)^(?:--\s*$|(?:best|kind|warm|many)?\s*(?:regards|wishes)\b|cheers\b|thanks\b|thank you\b|sincerely\b|br\b|mfg\b|viele grüße|beste grüße|cordialement|saludos|bien à vous)`)

// withoutSignOff cuts text at its closing, if one starts in its last
// lines (a "thanks" in the middle of a mail is part of the mail).
func withoutSignOff(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n\r\t "), "\n")
	for i := max(len(lines)-5, 1); i < len(lines); i++ {
		if signOff.MatchString(strings.TrimSpace(lines[i])) {
			return strings.Join(lines[:i], "\n")
		}
	}
	return text
}

// stem strips common English inflections. It is deliberately crude (no
// dictionary): it only has to map the forms customers use for the same
// word onto one key, the same way for every ticket ("invoices",
// "invoiced", "invoice" → "invoic"; "emptied", "empty" → "empty").
func stem(w string) string {
	cut := func(suf, with string) bool {
		if strings.HasSuffix(w, suf) && len(w)-len(suf) >= 3 {
			w = w[:len(w)-len(suf)] + with
			return true
		}
		return false
	}
	_ = cut("ies", "y") || cut("sses", "ss") || cut("shes", "sh") || cut("ches", "ch") || cut("xes", "x") ||
		(!strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && cut("s", ""))
	_ = cut("ied", "y") || cut("ing", "") || cut("ed", "")
	if !strings.HasSuffix(w, "ee") {
		cut("e", "")
	}
	return w
}

// Sign computes the MinHash signature of a stem set. An empty set gives
// the all-max signature, which has no band keys: it is similar to nothing.
func Sign(stems []string) Signature {
	var sig Signature
	for i := range sig {
		sig[i] = math.MaxUint32
	}
	for _, s := range stems {
		h := fnv.New64a()
		_, _ = h.Write([]byte(s))
		x := h.Sum64()
		a, b := uint32(x), uint32(x>>32)
		// Hash i is a + i·b (Kirsch and Mitzenmacher): Hashes hash
		// functions from one 64-bit hash, with the same quality for MinHash.
		for i := range sig {
			v := a + uint32(i)*b
			v ^= v >> 15 // finalise so consecutive i are not correlated
			v *= 0x2c1b3c6d
			v ^= v >> 12
			if v < sig[i] {
				sig[i] = v
			}
		}
	}
	return sig
}

// empty says whether the signature is of an empty set.
func (s Signature) empty() bool {
	return s[0] == math.MaxUint32 && s[1] == math.MaxUint32 && s[Hashes-1] == math.MaxUint32
}

// BandKeys are the LSH keys of a signature: one per band, the band's
// number and rows hashed together, as int64 for a database column.
func (s Signature) BandKeys() []int64 {
	if s.empty() {
		return nil
	}
	keys := make([]int64, Bands)
	var buf [4 + 4*Rows]byte
	for b := range Bands {
		binary.LittleEndian.PutUint32(buf[0:], uint32(b))
		for r := range Rows {
			binary.LittleEndian.PutUint32(buf[4+4*r:], s[b*Rows+r])
		}
		h := fnv.New64a()
		_, _ = h.Write(buf[:])
		keys[b] = int64(h.Sum64())
	}
	return keys
}

// stop are words that say nothing about the problem: function words,
// greetings, sign-offs and support small talk, English first (the
// language most tickets are written in) with the commonest German,
// French and Spanish ones.
var stop = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an the and or but if then so to of in on at by for with from into about as is are was were be been being
		am do does did doing have has had having i me my mine we us our you your he she it its they them their this that these those
		there here what which who whom when where why how all any some no not nor only own same than too very can could will would
		shall should may might must just also again still yet up down out over under more most other such each both few
		hi hello hey dear team support thanks thank thx regards best cheers kind sincerely please pls help hope well
		get got getting go going know let like make need see seem try tried want way one two sent send
		re fw fwd wrote sent message email mail mails ticket issue problem question
		good morning afternoon evening day today yesterday week time times now since ago already urgent asap quick quickly
		use used using work working product service account plan year years advance look looking into thing
		everything something anything nothing really again always never ever every still
		der die das und oder ist ich sie wir ein eine nicht mit von zu auf für danke hallo grüße bitte
		le la les et ou est je vous nous un une pas avec de du pour merci bonjour cordialement
		el los las y es yo usted nosotros uno una no con del para gracias hola saludos`) {
		m[w] = true
	}
	return m
}()
