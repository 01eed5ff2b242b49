package main

import (
	"slices"
	"testing"
)

func TestWithTerm(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		term string
		want []string
	}{
		{"the caller's", []string{"PATH=/bin"}, "xterm-256color", []string{"PATH=/bin", "TERM=xterm-256color"}},
		{"over the app's", []string{"TERM=dumb", "A=1"}, "screen", []string{"A=1", "TERM=screen"}},
		{"none: vt100", []string{"TERM=dumb"}, "", []string{"TERM=vt100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withTerm(tt.env, tt.term); !slices.Equal(got, tt.want) {
				t.Errorf("withTerm(%q, %q) = %q, want %q", tt.env, tt.term, got, tt.want)
			}
		})
	}
}
