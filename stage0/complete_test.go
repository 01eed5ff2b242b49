package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/store"
)

// complete runs cobra's hidden __complete, as the shell scripts do, and
// returns the suggestions without their descriptions.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	var out bytes.Buffer
	g := &globals{stdout: &out, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	root := newRoot(g)
	root.SetArgs(append([]string{"__complete"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(out.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, ":") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
	}
	return got
}

// TestCompletion: pod UUIDs where a command takes pods (one or many),
// stored image names where it takes images, nothing from a data dir that
// does not exist, and no data dir made by asking.
func TestCompletion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uuids []string
	for range 2 {
		p, err := pod.Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		p.Unlock()
		uuids = append(uuids, p.UUID)
	}
	slices.Sort(uuids)
	if _, err := s.Import(context.Background(), bytes.NewReader(acitest.Image(t, "example.com/hello", map[string]string{"hello": "world"})), store.ImportOptions{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "none")
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"status", []string{"--dir=" + dir, "status", ""}, uuids},
		{"status, prefix", []string{"--dir=" + dir, "status", uuids[0][:8]}, uuids[:1]},
		{"status, second argument", []string{"--dir=" + dir, "status", uuids[0], ""}, nil},
		{"rm takes many", []string{"--dir=" + dir, "rm", uuids[0], ""}, uuids},
		{"export: the pod, then a file", []string{"--dir=" + dir, "export", ""}, uuids},
		{"image rm", []string{"--dir=" + dir, "image", "rm", "ex"}, []string{"example.com/hello"}},
		{"run", []string{"run", "--dir=" + dir, "--net=host", "ex"}, []string{"example.com/hello"}},
		{"run, a flag", []string{"run", "--dir=" + dir, "--ne"}, []string{"--net"}},
		{"no data dir", []string{"--dir=" + missing, "image", "rm", ""}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := complete(t, tt.args...); !slices.Equal(got, tt.want) {
				t.Errorf("completions %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("completion made the data dir %s", missing)
	}
}
