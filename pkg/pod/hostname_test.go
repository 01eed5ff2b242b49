package pod

import (
	"strings"
	"testing"
)

func TestCheckHostname(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"web", true},
		{"skiff-0b6f3b4e-3a0c-4b8e-9f57-1c2d3e4f5a6b", true},
		{"Web-01.example.com", true},
		{"0", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 63) + ".b", false}, // 65 characters
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-web", false},
		{"web-", false},
		{"a..b", false},
		{".web", false},
		{"web.", false},
		{"we_b", false},
		{"we b", false},
		{"web/../x", false},
		{"wéb", false},
		{"web\n", false},
	}
	for _, tt := range tests {
		err := CheckHostname(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("CheckHostname(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}
