package threading

import "testing"

func TestNormalizeSubject(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Printer broken", "printer broken"},
		{"Re: Printer broken", "printer broken"},
		{"RE: RE: Fwd: printer   broken ", "printer broken"},
		{"AW: WG: Drucker kaputt", "drucker kaputt"},
		{"SV: VB: Skrivare", "skrivare"},
		{"Antw: Doorst: printer", "printer"},
		{"RE : TR : Imprimante", "imprimante"},
		{"R: I: stampante", "stampante"},
		{"Odp: PD: drukarka", "drukarka"},
		{"RES: ENC: impressora", "impressora"},
		{"YNT: İLT: yazıcı", "yazıcı"},
		{"VS: VL: tulostin", "tulostin"},
		{"Re[2]: printer", "printer"},
		{"Re^3: printer", "printer"},
		{"RE(4): printer", "printer"},
		{"回复：打印机坏了", "打印机坏了"},
		{"答复: 转发: 打印机坏了", "打印机坏了"},
		{"返信: 転送: プリンター", "プリンター"},
		{"ＲＥ：プリンター", "プリンター"},
		{"Ответ: Пересл: Принтер", "принтер"},
		{"Отв: принтер", "принтер"},
		{"ΑΠ: ΠΡΘ: εκτυπωτής", "εκτυπωτής"},
		{"회신: 전달: 프린터", "프린터"},
		{"[users] Re: [users] printer", "printer"},
		{"Re: [Acme #123] printer", "printer"},
		{"printer [Acme #123]", "printer"},
		{"[#55] printer", "printer"},
		{"printer (fwd)", "printer"},
		{"[only a tag]", "[only a tag]"},
		{"=?UTF-8?Q?Lieferung_besch=C3=A4digt?=", "lieferung beschädigt"},
		{"=?iso-8859-1?q?AW:_Lieferung_besch=E4digt?=", "lieferung beschädigt"},
		{"=?KOI8-R?B?8NLPwszFzcE=?=", "проблема"},
		{"=?x-unknown?Q?abc?=", "= ?x-unknown?q?abc?="},
		{"", ""},
		{"Re:", ""},
		{"Re: Re: ", ""},
		{"Regarding the invoice", "regarding the invoice"},
		{"Reply needed", "reply needed"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := NormalizeSubject(tt.in)
			if got != tt.want {
				t.Errorf("NormalizeSubject(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := NormalizeSubject(got); again != got {
				t.Errorf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func TestIsGenericSubject(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true}, {"help", true}, {"(no subject)", true}, {"hi!", true}, {"question", true},
		{"printer broken", false}, {"invoice 2291", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := IsGenericSubject(tt.in); got != tt.want {
				t.Errorf("IsGenericSubject(%q) = %v", tt.in, got)
			}
		})
	}
}

func TestSubjectTag(t *testing.T) {
	tests := []struct {
		in, prefix string
		want       int64
		ok         bool
	}{
		{"[#123] printer", "Acme", 123, true},
		{"Re: [Acme #123] printer", "Acme", 123, true},
		{"Re: [acme#77] printer", "Acme", 77, true},
		{"printer [ Acme  # 9 ]", "Acme", 9, true},
		{"Re: [Acme #12] Fwd: [Acme #5] x", "Acme", 12, true},
		{"[Other #123] printer", "Acme", 0, false},
		{"[Acme #123] printer", "", 0, false},
		{"[#0] printer", "Acme", 0, false},
		{"[#007] printer", "Acme", 0, false},
		{"[#-5] printer", "Acme", 0, false},
		{"[#99999999999999999999] x", "Acme", 0, false},
		{"[#12", "Acme", 0, false},
		{"no tag", "Acme", 0, false},
		{"=?UTF-8?Q?=5BAcme_=2342=5D_Dr=C3=BCcker?=", "Acme", 42, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := SubjectTag(tt.in, tt.prefix)
			if got != tt.want || ok != tt.ok {
				t.Errorf("SubjectTag(%q, %q) = %d, %v; want %d, %v", tt.in, tt.prefix, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestTagSubject(t *testing.T) {
	tests := []struct {
		in     string
		ticket int64
		prefix string
		want   string
	}{
		{"Printer broken", 12, "Acme", "[Acme #12] Printer broken"},
		{"Re: [Acme #12] Printer broken", 12, "Acme", "Re: [Acme #12] Printer broken"},
		{"Printer broken", 12, "", "[#12] Printer broken"},
		{"", 12, "Acme", "[Acme #12]"},
		{"[Acme #11] old", 12, "Acme", "[Acme #12] [Acme #11] old"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := TagSubject(tt.in, tt.ticket, tt.prefix)
			if got != tt.want {
				t.Errorf("TagSubject = %q, want %q", got, tt.want)
			}
			if n, ok := SubjectTag(got, tt.prefix); !ok || n != tt.ticket {
				t.Errorf("SubjectTag(TagSubject) = %d, %v", n, ok)
			}
			if TagSubject(got, tt.ticket, tt.prefix) != got {
				t.Errorf("TagSubject twice adds the tag twice")
			}
		})
	}
}
