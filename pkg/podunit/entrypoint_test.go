package podunit

import (
	"errors"
	"flag"
	"slices"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		withCmd bool
		uuid    string
		cmd     []string
		err     error
	}{
		{[]string{"--debug", "u"}, false, "u", nil, nil},
		{[]string{"--app=a", "u", "--", "/bin/sh", "-c", "x"}, true, "u", []string{"/bin/sh", "-c", "x"}, nil},
		{[]string{"u", "--", "x"}, false, "", nil, ErrUsage},
		{[]string{"--nosuchflag", "u"}, false, "", nil, ErrUsage},
		{[]string{"--debug"}, false, "", nil, ErrUsage},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.Bool("debug", false, "")
		fs.String("app", "", "")
		uuid, cmd, err := ParseArgs(fs, tt.args, tt.withCmd)
		if !errors.Is(err, tt.err) || uuid != tt.uuid || !slices.Equal(cmd, tt.cmd) {
			t.Errorf("ParseArgs(%q) = %q, %q, %v; want %q, %q, %v", tt.args, uuid, cmd, err, tt.uuid, tt.cmd, tt.err)
		}
	}
}
