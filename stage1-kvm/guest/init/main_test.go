package main

import (
	"testing"

	"github.com/skiffpod/skiff/pkg/podunit"
)

func TestAttachDir(t *testing.T) {
	if attachDir != podunit.AttachDir {
		t.Errorf("attachDir = %q, want podunit.AttachDir %q", attachDir, podunit.AttachDir)
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want params
	}{
		{"console=ttyS0 quiet\n", params{tag: "skiffroot"}},
		{"quiet skiff.share=pod skiff.init=/usr/lib/systemd/systemd\n", params{tag: "pod", init: "/usr/lib/systemd/systemd"}},
		{"skiff.init= skiff.shared=x", params{tag: "skiffroot"}},
		{"skiff.net=172.16.28.5/24,172.16.28.1", params{tag: "skiffroot", net: "172.16.28.5/24,172.16.28.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseCmdline(tt.in); got != tt.want {
				t.Errorf("parseCmdline(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseNet(t *testing.T) {
	tests := []struct {
		in, addr, gw string
		ok           bool
	}{
		{"172.16.28.5/24,172.16.28.1", "172.16.28.5/24", "172.16.28.1", true},
		{"172.16.28.5/24", "172.16.28.5/24", "invalid IP", true},
		{"172.16.28.5", "", "", false},
		{"172.16.28.5/24,gw", "", "", false},
	}
	for _, tt := range tests {
		c, err := parseNet(tt.in)
		if (err == nil) != tt.ok || tt.ok && (c.addr.String() != tt.addr || c.gw.String() != tt.gw) {
			t.Errorf("parseNet(%q) = %v %v, %v", tt.in, c.addr, c.gw, err)
		}
	}
}
