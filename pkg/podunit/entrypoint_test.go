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

func TestParseRun(t *testing.T) {
	tests := []struct {
		args []string
		want RunFlags
		err  bool
	}{
		{[]string{"u1"}, RunFlags{UUID: "u1", Net: "default"}, false},
		{[]string{"--debug", "--net=none", "--hostname=h", "--interactive", "u2"},
			RunFlags{UUID: "u2", Net: "none", Hostname: "h", Interactive: true, Debug: true}, false},
		{[]string{"--bogus", "u"}, RunFlags{}, true},
		{[]string{"--net=none"}, RunFlags{}, true},
		{[]string{"u", "extra"}, RunFlags{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRun(tt.args)
		if (err != nil) != tt.err {
			t.Errorf("ParseRun(%q) err = %v, want error %v", tt.args, err, tt.err)
			continue
		}
		if !tt.err && got != tt.want {
			t.Errorf("ParseRun(%q) = %+v, want %+v", tt.args, got, tt.want)
		}
	}
}
