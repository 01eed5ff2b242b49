// Package clilog prints log records for people, one line each:
// "skiff: warning: msg k=v". skiff and its stage1 entrypoints log so.
package clilog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// lineHandler prints log records for people: "PREFIX: warning: msg k=v".
// Debug records (with --debug) carry the time, for following a slow run.
type lineHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	level  slog.Level
	attrs  []slog.Attr
}

// New returns a logger that writes records of level and above to w, each
// line starting with prefix (the program: "skiff", "skiff stage1-kvm").
func New(w io.Writer, prefix string, level slog.Level) *slog.Logger {
	return slog.New(&lineHandler{mu: &sync.Mutex{}, w: w, prefix: prefix, level: level})
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(h.prefix + ": ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString(r.Time.Format("15:04:05.000 "))
	}
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &h2
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
