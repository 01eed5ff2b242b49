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

func TestKmsgSeq(t *testing.T) {
	tests := []struct {
		rec string
		seq uint64
		ok  bool
	}{
		{"6,339,5140900,-;NET: Registered PF_INET6 protocol family\n", 339, true},
		{"4,0,0,-,caller=T0;Linux version 6.1.0\n SUBSYSTEM=x\n", 0, true},
		{"6,x,5140900,-;bad\n", 0, false},
		{"garbage", 0, false},
	}
	for _, tt := range tests {
		seq, ok := kmsgSeq([]byte(tt.rec))
		if seq != tt.seq || ok != tt.ok {
			t.Errorf("kmsgSeq(%q) = %d, %t; want %d, %t", tt.rec, seq, ok, tt.seq, tt.ok)
		}
	}
}
