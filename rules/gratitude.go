package rules

import (
	"strings"
	"unicode/utf8"
)

// maxGratitudeWords: a thank-you is short. A longer reply says something
// else as well, and something else is for a person to read.
const maxGratitudeWords = 40

// IsGratitude reports whether a reply only thanks: "Thanks again, great
// service!", "Vielen Dank für die schnelle Hilfe!", "Merci beaucoup, bonne
// journée", "¡Muchas gracias!", "Obrigado mais uma vez", "Super, bedankt!".
// It reads the new text the way ClassifyAnswer does (greetings skipped;
// quotes, attribution lines and signatures end it) and is true only when
// at least one word thanks or praises, every word is thanks, praise,
// courtesy, a closing ("Best regards", "LG", "Cordialement") or a name
// after one, and there is no question mark, negation or problem word.
//
// The bias is the same as ClassifyAnswer's: a thank-you taken for a
// question costs an agent a glance; a question taken for a thank-you leaves
// a customer unanswered, so any unknown word makes it not gratitude.
func IsGratitude(text string) bool {
	if len(text) > maxAnswerScan {
		return false
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, " ")
	}
	thanked, count := false, 0
	var lines [][]word
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(strings.Map(normalizeRune, raw))
		if line == "" {
			continue
		}
		if endsReply(line) {
			break
		}
		if strings.ContainsAny(line, "?¿") {
			return false
		}
		words := tokens(line)
		if len(words) == 0 {
			continue // emoji or punctuation only: "🙏", "!!"
		}
		words, _ = stripGreeting(words, line)
		if len(words) == 0 {
			continue
		}
		count += len(words)
		if count > maxGratitudeWords {
			return false
		}
		lines = append(lines, words)
	}
	for li, words := range lines {
		if thanked && li == len(lines)-1 && nameLine(words) {
			continue // the signature: "Ann", "Jan de Vries"
		}
		for i, w := range words {
			switch {
			case isNegation(w.text) || isProblem(w.text):
				return false
			case isThanksWord(w.text):
				thanked = true
			case isCourtesy(w.text) || isThanks(w.text) || isYes(w.text):
			case w.text == "mais" && i+1 < len(words) && words[i+1].text == "uma":
				// Portuguese "mais uma vez" (once more), not French "mais" (but).
			case w.cap && i > 0 && (isThanksWord(words[i-1].text) || isClosing(words[i-1].text) || words[i-1].cap && i > 1):
				// A name after thanks or a closing: "Thanks Lena", "Cheers, Ann Lee".
			default:
				return false
			}
		}
	}
	return thanked
}

// nameLine: a signature line of up to four words, capitalised but for
// particles ("Jan de Vries", "João da Silva").
func nameLine(words []word) bool {
	if len(words) > 4 || !words[0].cap {
		return false
	}
	for _, w := range words {
		if isNegation(w.text) || isProblem(w.text) {
			return false
		}
		if !w.cap && !isNameParticle(w.text) {
			return false
		}
	}
	return true
}

func isNameParticle(s string) bool {
	switch s {
	case "de", "van", "der", "den", "von", "da", "das", "dos", "del", "la", "le", "du":
		return true
	}
	return false
}

// isThanksWord: the words that thank or praise. One of them must be in a
// reply for it to be gratitude.
func isThanksWord(s string) bool {
	switch s {
	case "thanks", "thank", "thx", "thanx", "ty", "tysm", "cheers", "appreciate", "appreciated", "grateful",
		"great", "excellent", "awesome", "amazing", "wonderful", "fantastic", "brilliant", "superb",
		"danke", "dankeschön", "dank", "vielen", "herzlichen", "toll", "toller", "klasse", "spitze",
		"merci", "mercis", "génial", "bravo",
		"gracias", "excelente", "genial",
		"obrigado", "obrigada", "valeu", "ótimo", "otimo",
		"bedankt", "dankjewel", "dankuwel", "geweldig":
		return true
	}
	return false
}

// isClosing: the words of a mail's sign-off.
func isClosing(s string) bool {
	switch s {
	case "regards", "best", "cheers", "thanks", "sincerely", "wishes", "kind",
		"gruß", "grüße", "grüßen", "gruss", "grüsse", "lg", "vg", "mfg",
		"cordialement", "amicalement", "salutations",
		"saludos", "saludo", "abrazo", "att", "atenciosamente", "abraço", "abraços",
		"groeten", "groet", "mvg":
		return true
	}
	return isThanksWord(s)
}

// isCourtesy: words that may stand beside thanks without asking or
// reporting anything. Deliberately no verbs of request (send, need, check,
// can, could) and no "but".
func isCourtesy(s string) bool {
	if isClosing(s) {
		return true
	}
	switch s {
	case "again", "once", "as", "always", "service", "support", "team", "job", "work", "help", "helpful",
		"really", "truly", "very", "so", "much", "lot", "lots", "a", "an", "the", "you", "you're", "youre", "are",
		"guys", "all", "everyone", "everybody", "folks", "it", "that", "this", "is", "was", "were", "and", "i", "we",
		"super", "good", "nice", "lovely", "fast", "quick", "quickly", "prompt", "kind", "kindly", "warm",
		"have", "day", "weekend", "week", "evening", "of", "for", "your", "with", "me", "us", "my", "our", "to",
		"many", "best", "love", "it's", "that's", "effort", "efforts", "patience", "time", "everything",
		"ok", "okay", "perfect", "sorted", "now", "too", "also", "indeed", "happy", "glad", "customer", "well", "done",
		// German
		"nochmals", "nochmal", "viele", "vielmals", "für", "fur", "die", "der", "das", "den", "schnelle", "schnellen",
		"hilfe", "prima", "top", "ihr", "ihre", "euer", "eure", "sie", "ihnen", "euch", "war", "ist", "sehr",
		"hilfreich", "einen", "schönen", "schönes", "tag", "wochenende", "mit", "freundlichen", "freundliche",
		"besten", "beste", "liebe", "und", "alles", "gute", "auch", "wieder", "antwort", "unterstützung",
		"ich", "wir", "bin", "sind", "froh", "zufrieden", "lieben", "schön", "tausend", "ein", "eine",
		// French
		"beaucoup", "encore", "mille", "fois", "pour", "votre", "vos", "ton", "ta", "aide", "parfait",
		"bonne", "journée", "soirée", "semaine", "bien", "à", "vous", "toute", "l'équipe", "équipe", "rapide",
		"réponse", "très", "sympa", "et", "un", "une", "le", "la", "les", "de", "du", "efficace", "merveilleux",
		"je", "suis", "ravi", "ravie", "c'est", "mercis",
		// Spanish
		"muchas", "muchísimas", "muchisimas", "mil", "nuevo", "otra", "vez", "por", "su", "tu", "ayuda",
		"servicio", "atención", "atencion", "rápida", "rapida", "muy", "amable", "amables", "equipo", "todo",
		"buen", "buena", "día", "dia", "que", "tenga", "tengan", "cordial", "cordiales", "y", "el", "los", "las",
		"respuesta", "estoy", "contento", "contenta",
		// Portuguese
		"muito", "muita", "uma", "pela", "pelo", "ajuda", "serviço", "servico", "atendimento", "um", "bom",
		"ótima", "otima", "equipe", "rápido", "rapido", "novo", "e", "o", "vocês", "voces", "resposta",
		"obrigadão", "tudo", "grande",
		// Dutch
		"hartelijk", "hartelijke", "wel", "u", "nogmaals", "voor", "hulp", "fijne", "dag", "een",
		"snelle", "reactie", "heel", "erg", "jullie", "en", "het", "groetjes", "vriendelijke",
		"ik", "ben", "blij", "tevreden", "met", "zijn":
		return true
	}
	return false
}
