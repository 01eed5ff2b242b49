package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenMan: a page per command, named as man expects, dated by
// SOURCE_DATE_EPOCH, without the hidden commands; a bad epoch is an error.
func TestGenMan(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "86400")
	if code := run([]string{"gen-man", dir}); code != exitOK {
		t.Fatalf("gen-man: exit %d", code)
	}
	for _, name := range []string{"skiff.1", "skiff-run.1", "skiff-image-export.1", "skiff-export.1", "skiff-config.1", "skiff-completion-bash.1"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), `.TH "SKIFF" "1" "Jan 1970"`) || !strings.Contains(string(b), ".SH NAME") {
			t.Errorf("%s: no man header of Jan 1970:\n%.300s", name, b)
		}
	}
	for _, hidden := range []string{"skiff-gen-man.1", "skiff-__complete.1"} {
		if _, err := os.Stat(filepath.Join(dir, hidden)); err == nil {
			t.Errorf("a page for the hidden %s", hidden)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "soon")
	if code := run([]string{"gen-man", t.TempDir()}); code != exitFailure {
		t.Errorf("gen-man with a bad SOURCE_DATE_EPOCH: exit %d, want %d", code, exitFailure)
	}
}
