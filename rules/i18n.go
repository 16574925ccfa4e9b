package rules

import (
	"fmt"
	"strings"
	"time"
)

// Languages are the languages tend writes to customers in (ISO 639-1):
// English is the default set in templates/, the others are in
// templates/<code>/.
func Languages() []string { return []string{"en", "de", "fr", "es", "pt", "nl"} }

// ShippedLanguage reports whether lang has a template set.
func ShippedLanguage(lang string) bool {
	for _, l := range Languages() {
		if l == lang {
			return true
		}
	}
	return false
}

// phrases are the words of a promise in one language.
type phrases struct {
	asap                string
	within              string // "within %s"
	minute, hour, day   [2]string
	by                  string // "by %[1]s %[2]s %[3]s": weekday, 15:04, zone
	weekdays            [7]string
	byToday, byTomorrow string // "by %[1]s %[2]s" with today/tomorrow already in
	dateFallback        string // "by %[1]s %[2]s %[3]s": 2 Jan, 15:04, zone (beyond a week)
	monthDay            func(t time.Time) string
}

var langPhrases = map[string]phrases{
	"en": {asap: "as soon as we can", within: "within %s", minute: [2]string{"minute", "minutes"}, hour: [2]string{"hour", "hours"}, day: [2]string{"day", "days"},
		by: "by %s %s %s", weekdays: [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"},
		byToday: "by %[2]s %[3]s today", byTomorrow: "by tomorrow %[2]s %[3]s", dateFallback: "by %s %s %s",
		monthDay: func(t time.Time) string { return t.Format("2 January") }},
	"de": {asap: "so bald wie möglich", within: "innerhalb von %s", minute: [2]string{"Minute", "Minuten"}, hour: [2]string{"Stunde", "Stunden"}, day: [2]string{"Tag", "Tagen"},
		by: "bis %s, %s Uhr %s", weekdays: [7]string{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"},
		byToday: "bis heute, %[2]s Uhr %[3]s", byTomorrow: "bis morgen, %[2]s Uhr %[3]s", dateFallback: "bis %s, %s Uhr %s",
		monthDay: func(t time.Time) string { return fmt.Sprintf("%d. %s", t.Day(), deMonths[t.Month()-1]) }},
	"fr": {asap: "dès que possible", within: "sous %s", minute: [2]string{"minute", "minutes"}, hour: [2]string{"heure", "heures"}, day: [2]string{"jour", "jours"},
		by: "d'ici %s %s %s", weekdays: [7]string{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"},
		byToday: "d'ici aujourd'hui %[2]s %[3]s", byTomorrow: "d'ici demain %[2]s %[3]s", dateFallback: "d'ici le %s %s %s",
		monthDay: func(t time.Time) string { return fmt.Sprintf("%d %s", t.Day(), frMonths[t.Month()-1]) }},
	"es": {asap: "lo antes posible", within: "en un plazo de %s", minute: [2]string{"minuto", "minutos"}, hour: [2]string{"hora", "horas"}, day: [2]string{"día", "días"},
		by: "antes del %s a las %s %s", weekdays: [7]string{"domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"},
		byToday: "hoy antes de las %[2]s %[3]s", byTomorrow: "mañana antes de las %[2]s %[3]s", dateFallback: "antes del %s a las %s %s",
		monthDay: func(t time.Time) string { return fmt.Sprintf("%d de %s", t.Day(), esMonths[t.Month()-1]) }},
	"pt": {asap: "o mais rápido possível", within: "em até %s", minute: [2]string{"minuto", "minutos"}, hour: [2]string{"hora", "horas"}, day: [2]string{"dia", "dias"},
		by: "até %s às %s %s", weekdays: [7]string{"domingo", "segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado"},
		byToday: "até hoje às %[2]s %[3]s", byTomorrow: "até amanhã às %[2]s %[3]s", dateFallback: "até %s às %s %s",
		monthDay: func(t time.Time) string { return fmt.Sprintf("%d de %s", t.Day(), ptMonths[t.Month()-1]) }},
	"nl": {asap: "zo snel mogelijk", within: "binnen %s", minute: [2]string{"minuut", "minuten"}, hour: [2]string{"uur", "uur"}, day: [2]string{"dag", "dagen"},
		by: "uiterlijk %s %s %s", weekdays: [7]string{"zondag", "maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag"},
		byToday: "uiterlijk vandaag %[2]s %[3]s", byTomorrow: "uiterlijk morgen %[2]s %[3]s", dateFallback: "uiterlijk %s %s %s",
		monthDay: func(t time.Time) string { return fmt.Sprintf("%d %s", t.Day(), nlMonths[t.Month()-1]) }},
}

var (
	deMonths = [12]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}
	frMonths = [12]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
	esMonths = [12]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"}
	ptMonths = [12]string{"janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro", "dezembro"}
	nlMonths = [12]string{"januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"}
)

func phrasesFor(lang string) phrases {
	if p, ok := langPhrases[lang]; ok {
		return p
	}
	return langPhrases["en"]
}

// DescribeResponseTimeIn is DescribeResponseTime in lang: "innerhalb von
// 4 Stunden", "sous 2 jours". Rounded up like the English.
func DescribeResponseTimeIn(lang string, d time.Duration) string {
	if lang == "" || lang == "en" {
		return DescribeResponseTime(d)
	}
	p := phrasesFor(lang)
	if d <= 0 {
		return p.asap
	}
	unit := func(n int64, u [2]string) string {
		if n == 1 {
			return "1 " + u[0]
		}
		return fmt.Sprintf("%d %s", n, u[1])
	}
	var s string
	switch {
	case d%(24*time.Hour) == 0:
		s = unit(int64(d/(24*time.Hour)), p.day)
	case d >= time.Hour:
		s = unit(int64((d+time.Hour-1)/time.Hour), p.hour)
	default:
		s = unit(int64((d+time.Minute-1)/time.Minute), p.minute)
	}
	return fmt.Sprintf(p.within, s)
}

// DescribeDeadline is an honest local promise: "by Monday 10:00 CET",
// "bis Montag, 10:00 Uhr CET", "by 10:00 CET today". due is shown in its
// own location (the inbox's zone); minutes are rounded up, so the promise
// is never earlier than the clock.
func DescribeDeadline(lang string, due, now time.Time) string {
	p := phrasesFor(lang)
	due = due.Add(time.Minute - time.Nanosecond).Truncate(time.Minute)
	now = now.In(due.Location())
	clock, zone := due.Format("15:04"), due.Format("MST")
	dy, dm, dd := due.Date()
	ny, nm, nd := now.Date()
	today := time.Date(ny, nm, nd, 0, 0, 0, 0, due.Location())
	dueDay := time.Date(dy, dm, dd, 0, 0, 0, 0, due.Location())
	switch days := int(dueDay.Sub(today).Hours()/24 + 0.5); {
	case days <= 0:
		return strings.TrimSpace(fmt.Sprintf(p.byToday, "", clock, zone))
	case days == 1:
		return strings.TrimSpace(fmt.Sprintf(p.byTomorrow, "", clock, zone))
	case days < 7:
		return fmt.Sprintf(p.by, p.weekdays[due.Weekday()], clock, zone)
	}
	return fmt.Sprintf(p.dateFallback, p.monthDay(due), clock, zone)
}

// agoPhrases are "%s ago" and "a moment ago" in each language.
var agoPhrases = map[string][2]string{
	"de": {"vor %s", "gerade eben"},
	"fr": {"il y a %s", "à l'instant"},
	"es": {"hace %s", "hace un momento"},
	"pt": {"há %s", "há pouco"},
	"nl": {"%s geleden", "zojuist"},
}

// DescribeAgoIn is DescribeAgo in lang, for the nudge's "we asked 2 days
// ago" in the customer's language: "vor 2 Tagen", "il y a 2 jours".
func DescribeAgoIn(lang string, d time.Duration) string {
	ago, ok := agoPhrases[lang]
	if !ok {
		return DescribeAgo(d)
	}
	p := phrasesFor(lang)
	unit := func(n int64, u [2]string) string {
		if n == 1 {
			return fmt.Sprintf(ago[0], "1 "+u[0])
		}
		return fmt.Sprintf(ago[0], fmt.Sprintf("%d %s", n, u[1]))
	}
	switch {
	case d >= 24*time.Hour:
		return unit(int64((d+12*time.Hour)/(24*time.Hour)), p.day)
	case d >= time.Hour:
		return unit(int64((d+30*time.Minute)/time.Hour), p.hour)
	case d >= time.Minute:
		return unit(int64((d+30*time.Second)/time.Minute), p.minute)
	}
	return ago[1]
}
