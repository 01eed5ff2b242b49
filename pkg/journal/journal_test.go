package journal

import (
	"reflect"
	"testing"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{"all apps", Options{}, []string{"--directory=/j", "--no-pager", "--quiet", "_TRANSPORT=stdout"}},
		{"one app followed", Options{App: "web", Follow: true, Lines: 5, Output: "cat"},
			[]string{"--directory=/j", "--no-pager", "--quiet", "--identifier=web", "--follow", "--lines=5", "--output=cat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Args("/j", tt.o); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Args = %q, want %q", got, tt.want)
			}
		})
	}
}
