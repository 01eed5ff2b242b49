package main

import (
	"bytes"
	"errors"
	"testing"
)

// TestFormat: table, json (one line) and json-pretty (indented), as rkt's
// --format; anything else is a usage error.
func TestFormat(t *testing.T) {
	v := map[string][]int{"a": {1, 2}}
	tests := []struct {
		f    format
		want string // "" for a usage error
	}{
		{"table", "-"},
		{"json", "{\"a\":[1,2]}\n"},
		{"json-pretty", "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"},
		{"xml", ""},
		{"JSON", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.f), func(t *testing.T) {
			err := tt.f.check()
			var ue usageError
			if (tt.want == "") != errors.As(err, &ue) {
				t.Fatalf("check() = %v, want a usage error: %v", err, tt.want == "")
			}
			if !tt.f.isJSON() {
				return
			}
			var b bytes.Buffer
			if err := tt.f.write(&b, v); err != nil || b.String() != tt.want {
				t.Errorf("write = %q, %v; want %q", b.String(), err, tt.want)
			}
		})
	}
}
