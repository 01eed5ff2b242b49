package prepare

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema/types"
)

// TestEnvironment: precedence (inherited < image < files in order <
// --set-env) and rkt's env file format: blank lines and # or ; comments
// skipped, anything else must be KEY=VALUE.
func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	commented := file("commented", "# a comment\n\n   \nA=from-file\n  # indented comment\n; rkt's other comment\r\nB=x=y\r\n\t\nC=\n")
	later := file("later", "A=later\n")
	bad := file("bad", "A=1\nnot a pair\n")
	tests := []struct {
		name    string
		inherit []string
		image   types.Environment
		files   []string
		set     []string
		want    map[string]string // nil: an error
	}{
		{"comments and blank lines", nil, nil, []string{commented}, nil, map[string]string{"A": "from-file", "B": "x=y", "C": ""}},
		{"precedence", []string{"A=inherited", "D=inherited"}, types.Environment{{Name: "A", Value: "image"}, {Name: "E", Value: "image"}},
			[]string{commented, later}, []string{"B=set"}, map[string]string{"A": "later", "B": "set", "C": "", "D": "inherited", "E": "image"}},
		{"a line that is no pair", nil, nil, []string{bad}, nil, nil},
		{"a missing file", nil, nil, []string{filepath.Join(dir, "missing")}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := environment(tt.inherit, tt.image, tt.files, tt.set)
			if tt.want == nil {
				if err == nil {
					t.Errorf("environment = %v, want an error", env)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, ev := range env {
				got[ev.Name] = ev.Value
			}
			if len(got) != len(tt.want) {
				t.Errorf("environment = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}
