package langdetect

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var shipped = []string{"en", "de", "fr", "es", "pt", "nl"}

func TestDetect(t *testing.T) {
	t.Parallel()
	d := New(shipped)
	cases := []struct{ text, want string }{
		{"Hi, my export has been stuck since yesterday and I need the report for a meeting.", "en"},
		{"Hallo, mein Export hängt seit gestern und ich brauche den Bericht für eine Besprechung.", "de"},
		{"Bonjour, mon export est bloqué depuis hier et j'ai besoin du rapport pour une réunion.", "fr"},
		{"Hola, mi exportación está bloqueada desde ayer y necesito el informe para una reunión.", "es"},
		{"Olá, minha exportação está travada desde ontem e preciso do relatório para uma reunião.", "pt"},
		{"Hallo, mijn export loopt sinds gisteren vast en ik heb het rapport nodig voor een vergadering.", "nl"},
		{"Guten Tag, ich kann mich nicht mehr anmelden. Das Passwort wird nicht akzeptiert.", "de"},
		{"Je n'arrive plus à me connecter à mon compte depuis ce matin.", "fr"},
		{"No puedo iniciar sesión en mi cuenta desde esta mañana.", "es"},
		{"Não consigo entrar na minha conta desde hoje de manhã.", "pt"},
		{"Ik kan sinds vanochtend niet meer inloggen op mijn account.", "nl"},
		{"I cannot log in to my account since this morning.", "en"},
		{"Hi", ""},
		// Too weak a guess (whatlanggo says German at 0.2): the caller
		// falls back to the inbox's language rather than answer in the
		// wrong one.
		{"My export has been stuck since yesterday.", ""},
		{"Danke!", ""},
		{"#4711 ??? !!!", ""},
		{"", ""},
		// Long mails, judged on their first maxScan bytes only.
		{long(germanMail), "de"},
		{long(frenchMail), "fr"},
		{long(englishMail), "en"},
	}
	for _, c := range cases {
		if got := d.Detect(c.text); got != c.want {
			t.Errorf("Detect(%q) = %q, want %q", c.text, got, c.want)
		}
	}
	if got := New([]string{"en", "de"}).Detect(cases[2].text); got == "fr" {
		t.Error("a language outside the set was returned")
	}
}

// Paragraphs of a long first message, as customers write them.
const (
	germanMail = "Sehr geehrte Damen und Herren,\n\nseit dem letzten Update hängt der Export unserer Monatsberichte bei 80 Prozent. " +
		"Wir haben es mit zwei verschiedenen Browsern versucht, den Cache geleert und uns neu angemeldet, leider ohne Erfolg. " +
		"Die Fehlermeldung lautet nur, dass der Vorgang abgebrochen wurde. Können Sie bitte prüfen, ob auf Ihrer Seite etwas " +
		"nicht stimmt? Wir brauchen die Berichte bis Freitag für die Buchhaltung.\n\n"
	frenchMail = "Bonjour,\n\ndepuis la dernière mise à jour, l'export de nos rapports mensuels reste bloqué à 80 pour cent. " +
		"Nous avons essayé avec deux navigateurs différents, vidé le cache et nous sommes reconnectés, sans succès. " +
		"Le message d'erreur indique seulement que l'opération a été interrompue. Pourriez-vous vérifier si quelque chose " +
		"ne va pas de votre côté ? Nous avons besoin des rapports avant vendredi pour la comptabilité.\n\n"
	englishMail = "Hello,\n\nsince the last update the export of our monthly reports stops at 80 percent. " +
		"We tried two different browsers, cleared the cache and logged in again, without success. " +
		"The error message only says that the operation was aborted. Could you please check whether something " +
		"is wrong on your side? We need the reports by Friday for the accounts.\n\n"
)

// long repeats a mail's paragraph past four times maxScan.
func long(paragraph string) string {
	return strings.Repeat(paragraph, 4*maxScan/len(paragraph)+1)
}

// TestDetectCutInRune: a text cut by maxScan in the middle of a rune is
// still told (the cut rune is dropped, not read as garbage).
func TestDetectCutInRune(t *testing.T) {
	t.Parallel()
	text := long(germanMail)
	// Pad the front so that the last "ä" before the cut starts on its
	// last byte.
	at := strings.LastIndex(text[:maxScan], "ä")
	text = strings.Repeat(" ", maxScan-1-at) + text
	if utf8.ValidString(text[:maxScan]) {
		t.Fatal("the test text is not cut inside a rune")
	}
	if got := New(shipped).Detect(text); got != "de" {
		t.Errorf("Detect = %q, want de", got)
	}
}

// FuzzDetect: never panics, and answers only shipped codes or "".
func FuzzDetect(f *testing.F) {
	for _, s := range []string{"Hallo, mein Export hängt", "\xff\xfe", "日本語のテキストです、よろしく", "aaaaaaaaaaaaaaaaaaaaaaa"} {
		f.Add(s)
	}
	d := New(shipped)
	f.Fuzz(func(t *testing.T, s string) {
		got := d.Detect(s)
		if got == "" {
			return
		}
		for _, c := range shipped {
			if c == got {
				return
			}
		}
		t.Fatalf("Detect(%q) = %q", s, got)
	})
}
