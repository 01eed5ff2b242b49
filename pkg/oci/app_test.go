package oci

import (
	"errors"
	"reflect"
	"testing"

	"github.com/appc/spec/schema/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func TestApp(t *testing.T) {
	base := ocispec.ImageConfig{Entrypoint: []string{"/bin/ep"}, Cmd: []string{"-c", "x"}}
	set := func(f func(*ocispec.ImageConfig)) ocispec.ImageConfig {
		c := base
		f(&c)
		return c
	}
	tests := []struct {
		name  string
		cfg   ocispec.ImageConfig
		ov    Override
		check func(t *testing.T, a *AppConfig)
	}{
		{"entrypoint+cmd", base, Override{}, wantExec("/bin/ep", "-c", "x")},
		{"args replace cmd", base, Override{Args: []string{"y"}}, wantExec("/bin/ep", "y")},
		{"empty args drop cmd", base, Override{Args: []string{}}, wantExec("/bin/ep")},
		{"exec replaces both", base, Override{Exec: []string{"/bin/sh"}}, wantExec("/bin/sh")},
		{"exec with args", base, Override{Exec: []string{"/bin/sh"}, Args: []string{"-c", "id"}}, wantExec("/bin/sh", "-c", "id")},
		{"cmd only", ocispec.ImageConfig{Cmd: []string{"sh"}}, Override{}, wantExec("sh")},
		{"args without entrypoint", ocispec.ImageConfig{Cmd: []string{"sh"}}, Override{Args: []string{"/bin/true"}}, wantExec("/bin/true")},
		{"env, later wins", set(func(c *ocispec.ImageConfig) { c.Env = []string{"A=1", "PATH=/bin", "A=2", "E="} }), Override{}, func(t *testing.T, a *AppConfig) {
			want := types.Environment{{Name: "A", Value: "2"}, {Name: "PATH", Value: "/bin"}, {Name: "E", Value: ""}}
			if !reflect.DeepEqual(a.App.Environment, want) {
				t.Errorf("Environment = %v, want %v", a.App.Environment, want)
			}
		}},
		{"no user is root", base, Override{}, wantUser("0", "0")},
		{"user name", set(func(c *ocispec.ImageConfig) { c.User = "nginx" }), Override{}, wantUser("nginx", "")},
		{"uid", set(func(c *ocispec.ImageConfig) { c.User = "1000" }), Override{}, wantUser("1000", "")},
		{"uid:gid", set(func(c *ocispec.ImageConfig) { c.User = "1000:50" }), Override{}, wantUser("1000", "50")},
		{"name:group", set(func(c *ocispec.ImageConfig) { c.User = "www:staff" }), Override{}, wantUser("www", "staff")},
		{"workdir", set(func(c *ocispec.ImageConfig) { c.WorkingDir = "/srv/app/" }), Override{}, func(t *testing.T, a *AppConfig) {
			if a.App.WorkingDirectory != "/srv/app" {
				t.Errorf("WorkingDirectory = %q", a.App.WorkingDirectory)
			}
		}},
		{"ports", set(func(c *ocispec.ImageConfig) {
			c.ExposedPorts = map[string]struct{}{"80/tcp": {}, "53/udp": {}, "8080": {}}
		}), Override{}, func(t *testing.T, a *AppConfig) {
			want := []types.Port{
				{Name: "53-udp", Protocol: "udp", Port: 53, Count: 1},
				{Name: "80-tcp", Protocol: "tcp", Port: 80, Count: 1},
				{Name: "8080-tcp", Protocol: "tcp", Port: 8080, Count: 1},
			}
			if !reflect.DeepEqual(a.App.Ports, want) {
				t.Errorf("Ports = %+v, want %+v", a.App.Ports, want)
			}
		}},
		{"volumes", set(func(c *ocispec.ImageConfig) {
			c.Volumes = map[string]struct{}{"/var/lib/data": {}, "/var/lib/data/": {}, "/a-b": {}, "/a/b": {}, "/Cache": {}}
		}), Override{}, func(t *testing.T, a *AppConfig) {
			want := []types.MountPoint{
				{Name: "volume-cache", Path: "/Cache"},
				{Name: "volume-a-b", Path: "/a-b"},
				{Name: "volume-a-b-2", Path: "/a/b"},
				{Name: "volume-var-lib-data", Path: "/var/lib/data"},
			}
			if !reflect.DeepEqual(a.App.MountPoints, want) {
				t.Errorf("MountPoints = %+v, want %+v", a.App.MountPoints, want)
			}
		}},
		{"labels", set(func(c *ocispec.ImageConfig) {
			c.Labels = map[string]string{"Maintainer": "me", "org.opencontainers.image.title": "t"}
		}), Override{}, func(t *testing.T, a *AppConfig) {
			want := types.UserAnnotations{"Maintainer": "me", "org.opencontainers.image.title": "t"}
			if !reflect.DeepEqual(a.App.UserAnnotations, want) {
				t.Errorf("UserAnnotations = %v", a.App.UserAnnotations)
			}
		}},
		{"stop signal name", set(func(c *ocispec.ImageConfig) { c.StopSignal = "SIGQUIT" }), Override{}, wantSignal(unix.SIGQUIT)},
		{"stop signal short", set(func(c *ocispec.ImageConfig) { c.StopSignal = "int" }), Override{}, wantSignal(unix.SIGINT)},
		{"stop signal number", set(func(c *ocispec.ImageConfig) { c.StopSignal = "9" }), Override{}, wantSignal(unix.SIGKILL)},
		{"default signal", base, Override{}, wantSignal(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := App(tt.cfg, tt.ov)
			if err != nil {
				t.Fatalf("App: %v", err)
			}
			tt.check(t, a)
		})
	}
}

func wantExec(argv ...string) func(*testing.T, *AppConfig) {
	return func(t *testing.T, a *AppConfig) {
		t.Helper()
		if !reflect.DeepEqual([]string(a.App.Exec), argv) {
			t.Errorf("Exec = %q, want %q", a.App.Exec, argv)
		}
	}
}

func wantUser(u, g string) func(*testing.T, *AppConfig) {
	return func(t *testing.T, a *AppConfig) {
		t.Helper()
		if a.App.User != u || a.App.Group != g {
			t.Errorf("User, Group = %q, %q; want %q, %q", a.App.User, a.App.Group, u, g)
		}
	}
}

func wantSignal(s unix.Signal) func(*testing.T, *AppConfig) {
	return func(t *testing.T, a *AppConfig) {
		t.Helper()
		if a.StopSignal != s {
			t.Errorf("StopSignal = %v, want %v", a.StopSignal, s)
		}
	}
}

func TestAppRefuses(t *testing.T) {
	ep := []string{"/bin/ep"}
	tests := []struct {
		name string
		cfg  ocispec.ImageConfig
		ov   Override
		want error
	}{
		{"no command", ocispec.ImageConfig{}, Override{}, ErrNoCommand},
		{"empty args and no entrypoint", ocispec.ImageConfig{Cmd: []string{"sh"}}, Override{Args: []string{}}, ErrNoCommand},
		{"empty exec[0]", ocispec.ImageConfig{Entrypoint: []string{""}}, Override{}, ErrNoCommand},
		{"env without =", ocispec.ImageConfig{Entrypoint: ep, Env: []string{"NOVALUE"}}, Override{}, ErrBadConfig},
		{"env empty name", ocispec.ImageConfig{Entrypoint: ep, Env: []string{"=x"}}, Override{}, ErrBadConfig},
		{"user empty group", ocispec.ImageConfig{Entrypoint: ep, User: "u:"}, Override{}, ErrBadConfig},
		{"user empty name", ocispec.ImageConfig{Entrypoint: ep, User: ":g"}, Override{}, ErrBadConfig},
		{"user three parts", ocispec.ImageConfig{Entrypoint: ep, User: "a:b:c"}, Override{}, ErrBadConfig},
		{"user path", ocispec.ImageConfig{Entrypoint: ep, User: "../../etc"}, Override{}, ErrBadConfig},
		{"relative workdir", ocispec.ImageConfig{Entrypoint: ep, WorkingDir: "srv"}, Override{}, ErrBadConfig},
		{"port zero", ocispec.ImageConfig{Entrypoint: ep, ExposedPorts: map[string]struct{}{"0/tcp": {}}}, Override{}, ErrBadConfig},
		{"port too big", ocispec.ImageConfig{Entrypoint: ep, ExposedPorts: map[string]struct{}{"65536/tcp": {}}}, Override{}, ErrBadConfig},
		{"port proto", ocispec.ImageConfig{Entrypoint: ep, ExposedPorts: map[string]struct{}{"80/icmp": {}}}, Override{}, ErrBadConfig},
		{"port range", ocispec.ImageConfig{Entrypoint: ep, ExposedPorts: map[string]struct{}{"80-90/tcp": {}}}, Override{}, ErrBadConfig},
		{"relative volume", ocispec.ImageConfig{Entrypoint: ep, Volumes: map[string]struct{}{"data": {}}}, Override{}, ErrBadConfig},
		{"volume dotdot", ocispec.ImageConfig{Entrypoint: ep, Volumes: map[string]struct{}{"/a/../../etc": {}}}, Override{}, ErrBadConfig},
		{"bad signal", ocispec.ImageConfig{Entrypoint: ep, StopSignal: "SIGNOPE"}, Override{}, ErrBadConfig},
		{"signal out of range", ocispec.ImageConfig{Entrypoint: ep, StopSignal: "99"}, Override{}, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := App(tt.cfg, tt.ov)
			if !errors.Is(err, tt.want) {
				t.Fatalf("App = %+v, %v; want %v", a, err, tt.want)
			}
		})
	}
}
