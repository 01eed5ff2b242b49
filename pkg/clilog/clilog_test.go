package clilog

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
)

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string // a regexp for the whole output
	}{
		{"error", func(l *slog.Logger) { l.Error("run pod", "err", "no qemu") }, `^skiff x: error: run pod err=no qemu\n$`},
		{"warning with the logger's attrs", func(l *slog.Logger) { l.With("pod", "u1").Warn("register", "err", "e") }, `^skiff x: warning: register pod=u1 err=e\n$`},
		{"info", func(l *slog.Logger) { l.Info("removed") }, `^skiff x: removed\n$`},
		{"debug carries the time", func(l *slog.Logger) { l.Debug("boot") }, `^skiff x: \d\d:\d\d:\d\d\.\d{3} boot\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.log(New(&b, "skiff x", slog.LevelDebug))
			if !regexp.MustCompile(tt.want).MatchString(b.String()) {
				t.Errorf("got %q, want /%s/", b.String(), tt.want)
			}
		})
	}
	var b bytes.Buffer
	New(&b, "skiff", slog.LevelInfo).Debug("hidden")
	if b.Len() != 0 {
		t.Errorf("debug line printed at info level: %q", b.String())
	}
}
