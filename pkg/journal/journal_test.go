package journal

import (
	"reflect"
	"testing"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name  string
		files int
		o     Options
		want  []string
	}{
		{"all apps", 1, Options{}, []string{"--no-pager", "--quiet", "--file=/proc/self/fd/3", "_TRANSPORT=stdout"}},
		{"one app followed", 2, Options{App: "web", Follow: true, Lines: 5, Output: "cat"},
			[]string{"--no-pager", "--quiet", "--file=/proc/self/fd/3", "--file=/proc/self/fd/4", "--identifier=web", "--follow", "--lines=5", "--output=cat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Args(tt.files, tt.o); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Args = %q, want %q", got, tt.want)
			}
		})
	}
}
