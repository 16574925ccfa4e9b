package rules

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Answer is a customer's reply to "is your problem solved?". It is an
// alias of string so that rule expressions compare it with plain strings
// (message.answer == "yes"); expr's type checker rejects a named type there.
type Answer = string

// Answers. Only AnswerYes resolves a ticket; AnswerNo and AnswerUnclear
// both reopen it (never resolve on a guess).
const (
	AnswerYes     = "yes"
	AnswerNo      = "no"
	AnswerUnclear = "unclear"
)

// maxAnswerScan bounds the work on hostile input: the answer is in the
// first lines, never 64 KiB down.
const maxAnswerScan = 64 << 10

// ClassifyAnswer reads the first meaningful line of a reply to a
// confirmation request: it skips blank lines, greetings ("Hi", "Hello
// Lena,", "Hallo", "Bonjour") and pure thanks, and stops at quoted text,
// attribution lines ("On … wrote:"), forwarded headers and signatures
// ("-- "). The line is a clear yes only if it contains a yes word (yes,
// yep, solved, fixed, works, it works now, thanks that worked, all good,
// perfect; ja, gelöst, funktioniert, klappt, passt; oui, résolu, ça marche,
// ça fonctionne; sí, resuelto, funciona, solucionado; sim, resolvido,
// funcionou; opgelost, werkt) and nothing but courtesy words besides.
// Any negation or problem word ("not fixed", "no longer works", "still
// crashes", "werkt niet") makes it a no; a question, a "but", or any other
// content makes it unclear. The bias is deliberate: a wrong "unclear"
// costs an agent a glance, a wrong "yes" closes a customer's problem.
//
// Hand-written rather than a library: no maintained Go library classifies
// short multilingual confirmations, and a word-list classifier with an
// explicit vocabulary is easy to audit.
func ClassifyAnswer(text string) Answer {
	if len(text) > maxAnswerScan {
		text = text[:maxAnswerScan]
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, " ")
	}
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(strings.Map(normalizeRune, raw))
		if line == "" {
			continue
		}
		if endsReply(line) {
			return AnswerUnclear
		}
		words := tokens(line)
		if len(words) == 0 {
			continue // punctuation or emoji only
		}
		words, line = stripGreeting(words, line)
		if len(words) == 0 {
			continue
		}
		if courtesyOnly(words) {
			continue
		}
		return classifyLine(words, line)
	}
	return AnswerUnclear
}

// normalizeRune folds look-alike characters so the word lists stay short.
func normalizeRune(r rune) rune {
	switch r {
	case '\u2019', '\u2018', '`', '\u00b4':
		return '\''
	case '\u00a0', '\t', '\r', '\u200b':
		return ' '
	}
	return r
}

// endsReply: quoted text, attribution lines, forwarded or Outlook headers
// and signature separators end the new text; an answer after them is not
// the customer's answer.
func endsReply(line string) bool {
	low := strings.ToLower(line)
	if strings.HasPrefix(low, ">") || low == "--" || strings.HasPrefix(low, "-- ") ||
		strings.HasPrefix(low, "-----") || strings.HasPrefix(low, "_____") {
		return true
	}
	for _, p := range []string{"from:", "von:", "de:", "van:", "sent from my", "envoyé de mon", "von meinem", "enviado desde", "enviado do meu", "verzonden vanaf"} {
		if strings.HasPrefix(low, p) {
			return true
		}
	}
	// "On Tue, 3 Jun 2025, Lena <…> wrote:" and its translations.
	for _, pair := range [][2]string{{"on ", "wrote"}, {"am ", "schrieb"}, {"le ", "écrit"}, {"el ", "escribió"}, {"em ", "escreveu"}, {"op ", "schreef"}} {
		if strings.HasPrefix(low, pair[0]) && strings.Contains(low, pair[1]) && strings.HasSuffix(low, ":") {
			return true
		}
	}
	return false
}

// word is a lower-cased token and whether it was capitalized (a name).
type word struct {
	text string
	cap  bool
}

func tokens(line string) []word {
	var out []word
	for _, f := range strings.FieldsFunc(line, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'')
	}) {
		f = strings.Trim(f, "'")
		if f == "" {
			continue
		}
		r, _ := utf8.DecodeRuneInString(f)
		out = append(out, word{text: strings.ToLower(f), cap: unicode.IsUpper(r)})
	}
	return out
}

// stripGreeting removes a leading greeting. "Hello Lena," alone is skipped
// (nothing left); "Hi Lena, yes it works" keeps what follows the comma.
func stripGreeting(words []word, line string) ([]word, string) {
	if !isGreeting(words) {
		return words, line
	}
	if i := strings.IndexByte(line, ','); i >= 0 {
		rest := strings.TrimSpace(line[i+1:])
		return tokens(rest), rest
	}
	if len(words) <= 3 {
		return nil, ""
	}
	return words[1:], line
}

func isGreeting(w []word) bool {
	second := ""
	if len(w) > 1 {
		second = w[1].text
	}
	switch w[0].text {
	case "hi", "hello", "hey", "dear", "greetings", "hallo", "moin", "servus", "liebe", "lieber",
		"bonjour", "salut", "coucou", "cher", "chère", "hola", "estimado", "estimada",
		"olá", "ola", "oi", "prezado", "prezada", "hoi", "beste", "goedemorgen", "goedemiddag":
		return true
	case "good":
		return second == "morning" || second == "afternoon" || second == "evening"
	case "guten":
		return second == "tag" || second == "morgen" || second == "abend"
	case "sehr":
		return second == "geehrte" || second == "geehrter"
	case "buenos", "buenas":
		return true
	case "bom", "boa":
		return second == "dia" || second == "tarde" || second == "noite"
	}
	return false
}

// courtesyOnly: a line of thanks alone ("Thanks for your help!") is not the
// answer; the answer is on a following line.
func courtesyOnly(words []word) bool {
	for i, w := range words {
		if !isThanks(w.text) && !isName(words, i) {
			return false
		}
	}
	return true
}

func isThanks(s string) bool {
	switch s {
	case "thanks", "thank", "thx", "ty", "you", "so", "much", "very", "for", "your", "the", "help",
		"quick", "reply", "answer", "response", "many", "a", "lot",
		"danke", "vielen", "dank", "für", "fur", "die", "hilfe", "schnelle", "antwort",
		"merci", "beaucoup", "pour", "votre", "aide", "réponse",
		"gracias", "muchas", "por", "su", "ayuda", "respuesta",
		"obrigado", "obrigada", "muito", "pela", "sua", "ajuda", "resposta",
		"bedankt", "je", "wel", "voor", "hulp", "snelle", "reactie":
		return true
	}
	return false
}

// isName: a capitalized unknown word right after a thanks word or greeting
// is a name ("Thanks Lena").
func isName(words []word, i int) bool {
	return i > 0 && words[i].cap && (isThanks(words[i-1].text) || words[i-1].text == "hi")
}

func classifyLine(words []word, line string) Answer {
	yes := false
	for i, w := range words {
		if isNegation(w.text) || isProblem(w.text) {
			return AnswerNo
		}
		if isYes(w.text) || (i > 0 && isYesPair(words[i-1].text, w.text)) {
			yes = true
		}
	}
	if !yes || strings.Contains(line, "?") {
		return AnswerUnclear
	}
	for i, w := range words {
		if !isYes(w.text) && !isFiller(w.text) && !isThanks(w.text) && !isName(words, i) {
			return AnswerUnclear // other content: "yes please send the form", "yes but …"
		}
	}
	return AnswerYes
}

func isNegation(s string) bool {
	if strings.HasSuffix(s, "n't") || strings.HasSuffix(s, "nt") && isEnglishNt(s) {
		return true
	}
	switch s {
	case "no", "nope", "nah", "not", "never", "cannot",
		"nein", "nicht", "kein", "keine", "nie", "noch",
		"non", "ne", "pas", "jamais", "toujours",
		"nunca", "nada", "todavía", "todavia", "aún",
		"não", "nao", "ainda",
		"nee", "niet", "geen", "nog":
		return true
	}
	return false
}

// isEnglishNt catches contractions typed without the apostrophe.
func isEnglishNt(s string) bool {
	switch s {
	case "dont", "doesnt", "didnt", "isnt", "wasnt", "wont", "cant", "havent", "hasnt", "arent", "werent":
		return true
	}
	return false
}

func isProblem(s string) bool {
	switch s {
	case "still", "broken", "broke", "crash", "crashes", "crashed", "crashing", "error", "errors",
		"fail", "fails", "failed", "failing", "bug", "wrong", "longer", "unfortunately",
		"leider", "kaputt", "fehler", "defekt", "immer",
		"erreur", "panne", "malheureusement",
		"falla", "fallo", "error404", "desafortunadamente",
		"erro", "infelizmente",
		"fout", "kapot", "helaas":
		return true
	}
	return false
}

func isYes(s string) bool {
	switch s {
	case "yes", "yep", "yeah", "yup", "y", "solved", "fixed", "resolved", "works", "worked", "working", "perfect",
		"ja", "gelöst", "geloest", "funktioniert", "klappt", "geklappt", "passt", "erledigt",
		"oui", "résolu", "résolue", "resolu", "marche", "fonctionne", "réglé", "regle",
		"sí", "resuelto", "resuelta", "funciona", "solucionado", "arreglado",
		"sim", "resolvido", "resolvida", "funcionou",
		"opgelost", "werkt":
		return true
	}
	return false
}

// isYesPair: two-word yeses whose words alone are not ("all good").
func isYesPair(a, b string) bool {
	switch a + " " + b {
	case "all good", "alles gut", "alles klar", "tout bon", "todo bien", "tudo certo", "tudo bem", "alles goed", "si funciona":
		return true
	}
	return false
}

// isFiller: words that may stand next to a yes without changing it.
func isFiller(s string) bool {
	switch s {
	case "it", "it's", "its", "that", "that's", "this", "is", "was", "has", "have", "been", "now",
		"all", "good", "great", "awesome", "excellent", "ok", "okay", "indeed", "sure", "definitely",
		"everything", "fine", "again", "really", "problem", "issue", "me", "us", "we", "i", "can",
		"close", "ticket", "well", "totally", "completely", "absolutely",
		"es", "das", "hat", "jetzt", "alles", "gut", "klar", "wieder", "super", "perfekt", "prima", "top", "ist",
		"c'est", "est", "ça", "ca", "tout", "bon", "maintenant", "parfait", "le", "problème",
		"si", "ya", "ahora", "todo", "bien", "perfecto", "está", "esta", "el", "problema",
		"tudo", "certo", "bem", "agora", "perfeito", "o",
		"het", "nu", "weer", "goed", "probleem":
		return true
	}
	return false
}
