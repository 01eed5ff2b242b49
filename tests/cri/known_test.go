package cri

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadKnown(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Known
		err      string
	}{
		{"entries and comments", "# a comment\n\nspec one\t# why one\nspec two\t\t#  why two \n", Known{"spec one": "why one", "spec two": "why two"}, ""},
		{"no reason", "spec one\n", nil, "line 1"},
		{"empty reason", "spec one\t#\n", nil, "line 1"},
		{"twice", "a\t# x\na\t# y\n", nil, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadKnown(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ReadKnown = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	k := Known{"known fails": "r", "known fixed": "r", "known skipped": "r"}
	unexpected, fixed := k.Judge([]string{"known fails", "new failure"}, []string{"known fixed", "always passed"})
	if !reflect.DeepEqual(unexpected, []string{"new failure"}) || !reflect.DeepEqual(fixed, []string{"known fixed"}) {
		t.Fatalf("Judge = %q, %q", unexpected, fixed)
	}
	if u, f := (Known{}).Judge(nil, []string{"a"}); u != nil || f != nil {
		t.Fatalf("empty ledger, nothing failed: %q, %q", u, f)
	}
}
