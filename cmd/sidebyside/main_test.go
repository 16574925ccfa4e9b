package main

import (
	"io"
	"math"
	"slices"
	"testing"
)

func TestRatios(t *testing.T) {
	rounds := []round{
		{Rep: 1, Target: "tend-sqlite", C: 1, E2ERate: 50},
		{Rep: 1, Target: "mailpit", C: 1, E2ERate: 100},
		{Rep: 1, Target: "tend-sqlite", C: 16, E2ERate: 600},
		{Rep: 1, Target: "mailpit", C: 16, E2ERate: 400},
		{Rep: 2, Target: "tend-sqlite", C: 1, E2ERate: 50},
		{Rep: 2, Target: "mailpit", C: 1, E2ERate: 25},
		{Rep: 2, Target: "tend-postgres", C: 4, E2ERate: 10}, // no Mailpit round to compare with
	}
	ratios(rounds)
	want := []float64{0.5, 1, 1.5, 1, 2, 1, 0}
	for i, r := range rounds {
		if math.Abs(r.Ratio-want[i]) > 1e-9 {
			t.Errorf("round %d (%s rep %d C=%d): ratio %v, want %v", i, r.Target, r.Rep, r.C, r.Ratio, want[i])
		}
	}
}

func TestParse(t *testing.T) {
	must := []string{"-tend", "t", "-mailpit", "m", "-blast", "b"}
	tests := []struct {
		name    string
		args    []string
		concs   []int
		floors  []string
		wantErr bool
	}{
		{"defaults", must, []int{1, 4, 16}, nil, false},
		{"floors with sinkd", append(slices.Clone(must), "-sinkd", "s", "-c", "2, 8"), []int{2, 8}, []string{"discard", "store"}, false},
		{"no mailpit", []string{"-tend", "t", "-blast", "b"}, nil, nil, true},
		{"bad concurrency", append(slices.Clone(must), "-c", "1,x"), nil, nil, true},
		{"no messages", append(slices.Clone(must), "-n", "0"), nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (!slices.Equal(o.concs, tt.concs) || !slices.Equal(o.floors, tt.floors)) {
				t.Errorf("concurrencies %v floors %v, want %v %v", o.concs, o.floors, tt.concs, tt.floors)
			}
		})
	}
}
