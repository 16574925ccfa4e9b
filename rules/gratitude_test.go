package rules

import (
	"testing"
	"time"
)

// Replies to a resolved or proposed ticket, as customers write them. The
// first list only thanks and must keep the ticket's state; the second
// thanks and also asks or reports, and must reopen it.
func TestIsGratitude(t *testing.T) {
	thanksOnly := []string{
		// English
		"Thanks again, great service!",
		"Thanks!",
		"Thank you so much!",
		"Many thanks for your help, have a great weekend!",
		"Thank you, much appreciated.\n\nBest regards,\nAnn Example",
		"Great, thanks a lot!",
		"Awesome, thank you guys!",
		"Thx 👍",
		"Thanks for the quick response!",
		"Hi Lena,\n\nthank you very much, you are the best!\n\nAnn",
		"Thanks Lena, great job as always.",
		"Thanks again!\n\nOn Mon, 2 Mar 2026 at 10:00, Acme Support <support@acme.test> wrote:\n> Is your problem solved? Reply YES or NO",
		"Cheers, Ann",
		"Thank you, that worked!",
		// German
		"Danke!",
		"Vielen Dank für die schnelle Hilfe!",
		"Danke nochmals, super Service!",
		"Herzlichen Dank!\n\nMit freundlichen Grüßen\nJan Müller",
		"Vielen lieben Dank",
		"Tausend Dank, toller Service!",
		"Hallo,\n\ndanke schön und ein schönes Wochenende!\n\nLG Petra",
		// French
		"Merci !",
		"Merci beaucoup pour votre aide, bonne journée",
		"Merci encore, super service !",
		"Mille mercis",
		"Merci à toute l'équipe !",
		"Bonjour,\n\nmerci pour la réponse rapide.\n\nCordialement,\nMarie Dupont",
		// Spanish
		"¡Muchas gracias!",
		"Gracias de nuevo, excelente servicio.",
		"Mil gracias por la ayuda, que tengan un buen día.",
		"Gracias por todo\n\nSaludos,\nCarlos",
		"Muchísimas gracias, muy amables.",
		// Portuguese
		"Obrigado!",
		"Muito obrigada pela ajuda!",
		"Obrigado mais uma vez, ótimo atendimento.",
		"Valeu, equipe!",
		"Obrigado pela resposta rápida.\n\nAtenciosamente,\nJoão da Silva",
		// Dutch
		"Bedankt!",
		"Hartelijk dank voor de snelle reactie!",
		"Dank je wel, top service!",
		"Super, bedankt voor de hulp.\n\nMet vriendelijke groet,\nJan de Vries",
		"Heel erg bedankt, jullie zijn geweldig",
	}
	notOnlyThanks := []string{
		// English
		"Thanks! Can you also send me the invoice?",
		"Thanks, but the export still fails.",
		"Thank you. I have another problem with my account.",
		"Thanks, I'll try tomorrow",
		"Thanks. Please also change my address to 4 Elm Street.",
		"Thanks, however it doesn't work on my phone",
		"Thanks — one more thing: the PDF is empty",
		"Thanks, when will the replacement ship",
		"Thanks again, great service! But the invoice is wrong.",
		"Thank you for nothing.",
		"Thanks. It crashed again this morning.",
		"Great service, thanks. Could you close my other account as well",
		"",
		"👍",
		"Hi,\n\nI still can't log in.\n\nThanks",
		// German
		"Danke, aber es funktioniert immer noch nicht.",
		"Danke! Wann kommt die Rechnung?",
		"Vielen Dank, ich habe aber noch eine Frage zur Rechnung.",
		"Danke. Leider ist der Export wieder leer.",
		"Danke, bitte schicken Sie mir auch die Rechnung.",
		// French
		"Merci, mais ça ne marche toujours pas.",
		"Merci ! Pouvez-vous aussi m'envoyer la facture ?",
		"Merci. J'ai un autre problème avec mon compte.",
		"Merci, par contre l'export est vide.",
		// Spanish
		"Gracias, pero sigue sin funcionar.",
		"Gracias. ¿Me pueden enviar la factura",
		"Gracias, tengo otro problema con mi cuenta.",
		"Gracias, pero todavía no llega el pedido.",
		// Portuguese
		"Obrigado, mas ainda não funciona.",
		"Obrigada! Vocês podem mandar a nota fiscal?",
		"Obrigado, mas o problema voltou.",
		"Obrigado. Infelizmente o erro continua.",
		// Dutch
		"Bedankt, maar het werkt nog steeds niet.",
		"Bedankt! Kunnen jullie ook de factuur sturen?",
		"Dank je, ik heb nog een vraag over mijn account.",
		"Bedankt. Helaas is de fout terug.",
	}
	if len(thanksOnly) < 30 || len(notOnlyThanks) < 30 {
		t.Fatalf("want at least 30 phrasings each way, have %d and %d", len(thanksOnly), len(notOnlyThanks))
	}
	for _, text := range thanksOnly {
		t.Run("thanks/"+text, func(t *testing.T) {
			if !IsGratitude(text) {
				t.Errorf("IsGratitude(%q) = false, want true: it only thanks", text)
			}
		})
	}
	for _, text := range notOnlyThanks {
		t.Run("more/"+text, func(t *testing.T) {
			if IsGratitude(text) {
				t.Errorf("IsGratitude(%q) = true, want false: it asks or reports something", text)
			}
		})
	}
}

func TestDescribeAgo(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{48 * time.Hour, "2 days ago"},
		{47 * time.Hour, "2 days ago"},
		{5 * 24 * time.Hour, "5 days ago"},
		{24 * time.Hour, "1 day ago"},
		{5 * time.Hour, "5 hours ago"},
		{time.Hour, "1 hour ago"},
		{20 * time.Minute, "20 minutes ago"},
		{10 * time.Second, "a moment ago"},
	} {
		if got := DescribeAgo(tc.d); got != tc.want {
			t.Errorf("DescribeAgo(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
