package main

import "testing"

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want params
	}{
		{"console=ttyS0 quiet\n", params{tag: "skiffroot"}},
		{"quiet skiff.share=pod skiff.init=/usr/lib/systemd/systemd\n", params{tag: "pod", init: "/usr/lib/systemd/systemd"}},
		{"skiff.init= skiff.shared=x", params{tag: "skiffroot"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseCmdline(tt.in); got != tt.want {
				t.Errorf("parseCmdline(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}
