package main

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/skiffpod/skiff/pkg/podnet"
)

func TestParseApps(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		defaults appFlags
		want     []appArg
		err      bool
	}{
		{"one image", []string{"busybox.aci"}, appFlags{}, []appArg{{image: "busybox.aci"}}, false},
		{"exec and args", []string{"busybox.aci", "--exec", "/bin/echo", "--", "a", "b"}, appFlags{},
			[]appArg{{image: "busybox.aci", flags: appFlags{exec: "/bin/echo"}, args: []string{"a", "b"}}}, false},
		{"two images with ---", []string{"a.aci", "--", "x", "---", "b.aci", "--user=1000"}, appFlags{},
			[]appArg{{image: "a.aci", args: []string{"x"}}, {image: "b.aci", flags: appFlags{user: "1000"}}}, false},
		{"defaults apply", []string{"a.aci", "---", "b.aci", "--memory=64M"}, appFlags{memory: "32M"},
			[]appArg{{image: "a.aci", flags: appFlags{memory: "32M"}}, {image: "b.aci", flags: appFlags{memory: "64M"}}}, false},
		{"set-env repeats", []string{"a.aci", "--set-env=A=1", "--set-env", "B=2"}, appFlags{},
			[]appArg{{image: "a.aci", flags: appFlags{env: []string{"A=1", "B=2"}}}}, false},
		{"no image", nil, appFlags{}, nil, true},
		{"flag before image", []string{"--exec=/x"}, appFlags{}, nil, true},
		{"unknown app flag", []string{"a.aci", "--bogus"}, appFlags{}, nil, true},
		{"--- right after an image", []string{"a.aci", "---", "b.aci", "--exec=/x"}, appFlags{},
			[]appArg{{image: "a.aci"}, {image: "b.aci", flags: appFlags{exec: "/x"}}}, false},
		{"dangling ---", []string{"a.aci", "---"}, appFlags{}, nil, true},
		// rkt's form: a word where an image or an app flag may stand is the next image.
		{"two images without ---", []string{"a.aci", "b.aci"}, appFlags{},
			[]appArg{{image: "a.aci"}, {image: "b.aci"}}, false},
		{"flags, then the next image", []string{"a.aci", "--exec", "/x", "--readonly-rootfs", "b.aci", "--", "y"}, appFlags{},
			[]appArg{{image: "a.aci", flags: appFlags{exec: "/x", readOnly: true}}, {image: "b.aci", args: []string{"y"}}}, false},
		{"arguments run to ---", []string{"a.aci", "--", "x", "b.aci", "---", "c.aci", "--user=1000", "d.aci"}, appFlags{},
			[]appArg{{image: "a.aci", args: []string{"x", "b.aci"}}, {image: "c.aci", flags: appFlags{user: "1000"}}, {image: "d.aci"}}, false},
		{"flags, then ---", []string{"a.aci", "--name=x", "---", "b.aci", "--name", "y", "---", "c.aci"}, appFlags{},
			[]appArg{{image: "a.aci", flags: appFlags{name: "x"}}, {image: "b.aci", flags: appFlags{name: "y"}}, {image: "c.aci"}}, false},
		{"empty arguments", []string{"a.aci", "--", "---", "b.aci"}, appFlags{},
			[]appArg{{image: "a.aci", args: []string{}}, {image: "b.aci"}}, false},
		{"arguments before an image", []string{"--", "x"}, appFlags{}, nil, true},
		{"two sets of arguments", []string{"a.aci", "--", "x", "---", "--", "y"}, appFlags{}, nil, true},
		{"flag right after ---", []string{"a.aci", "--", "x", "---", "--user=1"}, appFlags{}, nil, true},
		{"--- first", []string{"---", "a.aci"}, appFlags{}, nil, true},
		{"a number for a flag", []string{"a.aci", "-5"}, appFlags{}, nil, true},
		{"an empty flag name", []string{"a.aci", "--=x"}, appFlags{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseApps(tt.args, tt.defaults)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			for i := range got {
				got[i].set = nil
			}
			if !tt.err && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPrepareRefusesRunOptions(t *testing.T) {
	for _, f := range []podFlags{
		{prepareOnly: true, netReq: podnet.Request{Net: "host"}},
		{prepareOnly: true, netReq: podnet.Request{Net: "default", Publish: []string{"8080:80"}}},
		{prepareOnly: true, netReq: podnet.Request{Net: "default"}, ipc: "parent"},
	} {
		if err := f.check(); err == nil || !strings.Contains(err.Error(), "run-prepared") {
			t.Errorf("%+v: err = %v, want one pointing to run-prepared", f, err)
		}
	}
	if err := (&podFlags{prepareOnly: true, netReq: podnet.Request{Net: "default"}, pullPolicy: "new"}).check(); err != nil {
		t.Errorf("prepare without run options: %v", err)
	}
}

// rkt's --ipc values; anything else is a usage error.
func TestIPCFlag(t *testing.T) {
	for ipc, ok := range map[string]bool{"auto": true, "private": true, "parent": true, "host": false, "supercalifragilisticexpialidocious": false} {
		err := (&podFlags{netReq: podnet.Request{Net: "default"}, pullPolicy: "new", ipc: ipc}).check()
		if (err == nil) != ok || err != nil && (!strings.Contains(err.Error(), "--ipc="+ipc) || !errors.As(err, new(usageError))) {
			t.Errorf("--ipc=%s: err = %v, want ok %v or a usage error naming it", ipc, err, ok)
		}
	}
}

func TestPrivateUsersFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		bad  bool
	}{
		{args: nil, want: "no"},
		{args: []string{"--private-users"}, want: "auto"},
		{args: []string{"--private-users=auto"}, want: "auto"},
		{args: []string{"--private-users=no"}, want: "no"},
		{args: []string{"--private-users=yes"}, want: "yes", bad: true},
	} {
		var f podFlags
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		f.register(fs)
		if err := fs.Parse(append(tc.args, "x.aci")); err != nil {
			t.Fatal(err)
		}
		f.netReq.Net, f.pullPolicy = "default", "new"
		err := f.check()
		if f.privateUsers != tc.want || (err != nil) != tc.bad || fs.Arg(0) != "x.aci" {
			t.Errorf("%q: privateUsers %q, err %v, image %q; want %q, error %v", tc.args, f.privateUsers, err, fs.Arg(0), tc.want, tc.bad)
		}
	}
}

func TestStage1Flags(t *testing.T) {
	abs, _ := filepath.Abs("s1.aci")
	for _, tc := range []struct {
		args []string
		want string
		bad  bool
	}{
		{args: nil, want: "ns"},
		{args: []string{"--stage1=kvm"}, want: "kvm"},
		{args: []string{"--stage1-path=s1.aci"}, want: abs},
		{args: []string{"--stage1-name=example.com/stage1:1.0"}, want: "example.com/stage1:1.0"},
		{args: []string{"--stage1-url=https://example.com/s1.aci"}, want: "https://example.com/s1.aci"},
		{args: []string{"--stage1-hash=sha512-0123456789ab"}, want: "sha512-0123456789ab"},
		{args: []string{"--stage1=ns", "--stage1-path=s1.aci"}, bad: true},
		{args: []string{"--stage1-name=a/b", "--stage1-hash=sha512-0123456789ab"}, bad: true},
		{args: []string{"--stage1-name=./s1.aci"}, bad: true},
		{args: []string{"--stage1-url=ftp://example.com/s1.aci"}, bad: true},
		{args: []string{"--stage1-hash=0123456789ab"}, bad: true},
		{args: []string{"--stage1-from-dir=../s1.aci"}, bad: true},
		{args: []string{"--stage1-from-dir=no-such-stage1.aci"}, bad: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			f := podFlags{netReq: podnet.Request{Net: "default"}, pullPolicy: "new", privateUsers: "no"}
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			f.register(fs)
			if err := fs.Parse(append(tc.args, "x.aci")); err != nil {
				t.Fatal(err)
			}
			err := f.check()
			var ue usageError
			if tc.bad {
				if !errors.As(err, &ue) {
					t.Errorf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil || f.stage1 != tc.want {
				t.Errorf("stage1 = %q, %v; want %q", f.stage1, err, tc.want)
			}
		})
	}
}
