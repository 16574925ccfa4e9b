package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClassifyAnswer(t *testing.T) {
	tests := []struct {
		text string
		want Answer
	}{
		// Clear yes, English.
		{"yes", AnswerYes},
		{"Yes", AnswerYes},
		{"YES!", AnswerYes},
		{"yep", AnswerYes},
		{"Yeah, thanks", AnswerYes},
		{"y", AnswerYes},
		{"Solved.", AnswerYes},
		{"fixed", AnswerYes},
		{"Resolved, thank you", AnswerYes},
		{"works", AnswerYes},
		{"It works now", AnswerYes},
		{"it works now!! thank you so much", AnswerYes},
		{"Thanks, that worked!", AnswerYes},
		{"thanks that worked", AnswerYes},
		{"All good", AnswerYes},
		{"all good now, thanks", AnswerYes},
		{"Perfect, thanks", AnswerYes},
		{"perfect thanks!", AnswerYes},
		{"Problem solved", AnswerYes},
		{"It's working now", AnswerYes},
		{"Yes – you can close the ticket", AnswerYes},
		{"Thanks Lena, it works!", AnswerYes},
		{"Yes\u00a0it is fixed", AnswerYes},
		// Greetings and courtesy lines are skipped.
		{"Hi,\n\nyes", AnswerYes},
		{"Hello Lena,\n\nYes it's fixed.", AnswerYes},
		{"Hi Lena, yes it works", AnswerYes},
		{"Good morning,\nsolved, thanks", AnswerYes},
		{"Dear ACME support team,\n\nThank you very much for your help!\n\nIt works now.", AnswerYes},
		{"\r\n\r\nYes\r\n", AnswerYes},
		{"👍\nyes", AnswerYes},
		// German.
		{"Ja", AnswerYes},
		{"Ja, danke!", AnswerYes},
		{"Gelöst", AnswerYes},
		{"Hallo,\nes funktioniert jetzt, vielen Dank", AnswerYes},
		{"Klappt!", AnswerYes},
		{"Passt, danke", AnswerYes},
		{"Alles gut", AnswerYes},
		// French.
		{"Oui", AnswerYes},
		{"Bonjour,\n\noui, merci", AnswerYes},
		{"Résolu", AnswerYes},
		{"Ça marche !", AnswerYes},
		{"ça fonctionne, merci beaucoup", AnswerYes},
		{"C'est résolu, merci", AnswerYes},
		// Spanish.
		{"Sí", AnswerYes},
		{"Si, funciona", AnswerYes},
		{"Resuelto, gracias", AnswerYes},
		{"Hola,\nya funciona, muchas gracias", AnswerYes},
		{"Solucionado", AnswerYes},
		// Portuguese.
		{"Sim", AnswerYes},
		{"Resolvido, obrigado", AnswerYes},
		{"Funciona!", AnswerYes},
		{"Funcionou, obrigada", AnswerYes},
		{"Tudo certo", AnswerYes},
		// Dutch.
		{"Ja, opgelost", AnswerYes},
		{"Het werkt", AnswerYes},
		{"Werkt weer, bedankt!", AnswerYes},

		// Clear no, negations win.
		{"no", AnswerNo},
		{"No.", AnswerNo},
		{"Nope", AnswerNo},
		{"not solved", AnswerNo},
		{"Not fixed", AnswerNo},
		{"still broken", AnswerNo},
		{"It still crashes", AnswerNo},
		{"doesn't work", AnswerNo},
		{"Doesn’t work", AnswerNo},
		{"doesnt work", AnswerNo},
		{"it no longer works", AnswerNo},
		{"yes but it still crashes", AnswerNo},
		{"Yes, but unfortunately the error is back", AnswerNo},
		{"Nein", AnswerNo},
		{"funktioniert nicht", AnswerNo},
		{"Klappt leider noch nicht", AnswerNo},
		{"Non", AnswerNo},
		{"ça ne marche pas", AnswerNo},
		{"Pas résolu", AnswerNo},
		{"No funciona", AnswerNo},
		{"Não", AnswerNo},
		{"não funciona", AnswerNo},
		{"Nee", AnswerNo},
		{"werkt niet", AnswerNo},
		{"Het werkt nog steeds niet", AnswerNo},
		{"It works, I can't complain", AnswerNo}, // a negation anywhere is never a yes

		// Unclear: anything else.
		{"", AnswerUnclear},
		{"   \n\n  ", AnswerUnclear},
		{"Thanks!", AnswerUnclear},
		{"Hi Lena,", AnswerUnclear},
		{"ok", AnswerUnclear},
		{"Is it fixed?", AnswerUnclear},
		{"yes?", AnswerUnclear},
		{"Yes please send me the refund form", AnswerUnclear},
		{"I will check tomorrow", AnswerUnclear},
		{"works sometimes", AnswerUnclear},
		{"maybe", AnswerUnclear},
		{"> yes", AnswerUnclear},
		{"-- \nyes", AnswerUnclear},
		{"On Tue, Jun 3, 2025 at 9:30 AM Lena <l@acme.test> wrote:\n> yes", AnswerUnclear},
		{"From: Jane\nyes", AnswerUnclear},
		{"Sent from my iPhone", AnswerUnclear},
		{"\xff\xfeyes", AnswerYes}, // invalid bytes (a stray UTF-16 BOM) are dropped, not fatal
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			if got := ClassifyAnswer(tc.text); got != tc.want {
				t.Errorf("ClassifyAnswer(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

// Replies as real clients send them (testdata/answers/<want>-<client>-<lang>.txt).
func TestClassifyAnswerClientReplies(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "answers", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata answers: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, _, _ := strings.Cut(filepath.Base(f), "-")
			if got := ClassifyAnswer(string(b)); got != want {
				t.Errorf("ClassifyAnswer = %q, want %q", got, want)
			}
		})
	}
}

// Huge input is bounded: the answer must be near the top.
func TestClassifyAnswerHugeInput(t *testing.T) {
	text := strings.Repeat("\n", maxAnswerScan) + "yes"
	if got := ClassifyAnswer(text); got != AnswerUnclear {
		t.Errorf("answer beyond the scan limit = %q, want unclear", got)
	}
}
