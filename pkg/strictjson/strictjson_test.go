package strictjson

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	tests := []struct {
		in  string
		dup string // the key path the error must name; "" for no error
	}{
		{`{"a":1,"b":2}`, ""},
		{`{"a":{"x":1},"b":{"x":2}}`, ""},
		{`[{"a":1},{"a":2}]`, ""},
		{`"plain"`, ""},
		{`{"a":1,"a":2}`, `"a"`},
		{`{"acKind":"ImageManifest","ACKIND":"PodManifest"}`, `"ACKIND"`},
		{`{"name":"x","\u212Aame":"y"}`, ""},              // Kelvin sign, not a 'n': different keys
		{`{"kind":"x","\u212Aind":"y"}`, "\"\u212Aind\""}, // Kelvin sign folds to 'k'
		{`{"app":{"exec":["a"],"exec":["b"]}}`, `"app.exec"`},
		{`{"apps":[{"name":"a"},{"name":"b","name":"c"}]}`, `"apps[1].name"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := CheckKeys([]byte(tt.in))
			if tt.dup == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), tt.dup) {
				t.Fatalf("got %v, want duplicate key %s", err, tt.dup)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	var v struct{ Name string }
	if err := Unmarshal([]byte(`{"name":"a","Name":"b"}`), &v); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("got %v (%+v), want ErrDuplicateKey", err, v)
	}
	if err := Unmarshal([]byte(`{"name":"a"}`), &v); err != nil || v.Name != "a" {
		t.Fatalf("got %v, %+v", err, v)
	}
}
