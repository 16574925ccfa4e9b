package langdetect

import "testing"

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
