package appspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const imageID = "sha512-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// pod builds a pod manifest with one app "web" from JSON fragments, the way
// stage0 writes it, so isolators get parsed by appc itself.
func pod(t *testing.T, app, extra string) (*schema.PodManifest, *schema.RuntimeApp) {
	t.Helper()
	ra := `{"name":"web","image":{"id":"` + imageID + `"},"app":` + app
	vols := `[]`
	if extra != "" {
		var e struct {
			Volumes json.RawMessage `json:"volumes"`
			RA      json.RawMessage `json:"ra"`
		}
		if err := json.Unmarshal([]byte(extra), &e); err != nil {
			t.Fatal(err)
		}
		if e.Volumes != nil {
			vols = string(e.Volumes)
		}
		if e.RA != nil {
			ra += "," + strings.Trim(string(e.RA), "{}")
		}
	}
	doc := `{"acVersion":"0.8.11","acKind":"PodManifest","apps":[` + ra + `}],"volumes":` + vols + `}`
	var pm schema.PodManifest
	if err := json.Unmarshal([]byte(doc), &pm); err != nil {
		t.Fatalf("pod manifest %s: %v", doc, err)
	}
	return &pm, &pm.Apps[0]
}

func isolator(name, value string) string {
	return fmt.Sprintf(`{"name":%q,"value":%s}`, name, value)
}

func appJSON(user, group, rest string) string {
	return fmt.Sprintf(`{"exec":["/bin/app","-x"],"user":%q,"group":%q%s}`, user, group, rest)
}

func TestBuild(t *testing.T) {
	root, err := os.OpenRoot("testdata/rootfs")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	tests := []struct {
		name    string
		app     string
		extra   string
		opts    Options
		wantErr error
		check   func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "env defaults",
			app:  appJSON("0", "0", ""),
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"AC_APP_NAME=web", "PATH=" + DefaultPath}
				eq(t, "env", s.Process.Env, want)
				eq(t, "cwd", s.Process.Cwd, "/")
				eq(t, "args", s.Process.Args, []string{"/bin/app", "-x"})
				eq(t, "root", *s.Root, specs.Root{Path: "rootfs"})
				eq(t, "annotation", s.Annotations[AnnotationApp], "web")
			},
		},
		{
			name: "env precedence",
			app: appJSON("0", "0", `,"workingDirectory":"/srv","environment":[
				{"name":"B","value":"1"},{"name":"PATH","value":"/bin"},{"name":"A","value":"2=x"},
				{"name":"AC_APP_NAME","value":"spoof"}]`),
			check: func(t *testing.T, s *specs.Spec) {
				eq(t, "env", s.Process.Env, []string{"B=1", "PATH=/bin", "A=2=x", "AC_APP_NAME=web"})
				eq(t, "cwd", s.Process.Cwd, "/srv")
			},
		},
		{
			name: "metadata URL set by the stage1, not the app",
			app:  appJSON("0", "0", `,"environment":[{"name":"AC_METADATA_URL","value":"http://evil/"},{"name":"A","value":"1"}]`),
			opts: Options{MetadataURL: "http://127.0.0.1:4000/0123"},
			check: func(t *testing.T, s *specs.Spec) {
				eq(t, "env", s.Process.Env, []string{"AC_METADATA_URL=http://127.0.0.1:4000/0123", "A=1", "AC_APP_NAME=web", "PATH=" + DefaultPath})
			},
		},
		{
			name: "user by name with member groups",
			app:  appJSON("app", "audio", `,"supplementaryGIDs":[7,29]`),
			check: func(t *testing.T, s *specs.Spec) {
				eq(t, "user", s.Process.User, specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{7, 10, 29}})
			},
		},
		{
			name: "numeric user still gets its groups",
			app:  appJSON("1000", "1000", ""),
			check: func(t *testing.T, s *specs.Spec) {
				eq(t, "user", s.Process.User, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 29}})
			},
		},
		{name: "missing user", app: appJSON("nobody", "0", ""), wantErr: ErrUnknownUser},
		{name: "missing group", app: appJSON("0", "staff", ""), wantErr: ErrUnknownUser},
		{
			name: "default caps for root",
			app:  appJSON("0", "0", ""),
			check: func(t *testing.T, s *specs.Spec) {
				c := s.Process.Capabilities
				eq(t, "bounding", c.Bounding, DefaultCaps)
				eq(t, "effective", c.Effective, DefaultCaps)
				eq(t, "permitted", c.Permitted, DefaultCaps)
				eq(t, "ambient", len(c.Ambient)+len(c.Inheritable), 0)
			},
		},
		{
			name: "non-root gets bounding only",
			app:  appJSON("app", "app", ""),
			check: func(t *testing.T, s *specs.Spec) {
				c := s.Process.Capabilities
				eq(t, "bounding", c.Bounding, DefaultCaps)
				eq(t, "effective", len(c.Effective)+len(c.Permitted)+len(c.Ambient), 0)
			},
		},
		{
			name: "retain set",
			app: appJSON("app", "app", `,"isolators":[`+
				isolator("os/linux/capabilities-retain-set", `{"set":["CAP_NET_ADMIN","CAP_KILL"]}`)+`]`),
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"CAP_KILL", "CAP_NET_ADMIN"}
				c := s.Process.Capabilities
				for n, got := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "ambient": c.Ambient, "inheritable": c.Inheritable} {
					eq(t, n, got, want)
				}
			},
		},
		{
			name: "withheld caps leave the default set only",
			app:  appJSON("0", "0", ""),
			opts: Options{Withheld: []string{"CAP_NET_BIND_SERVICE"}},
			check: func(t *testing.T, s *specs.Spec) {
				got := s.Process.Capabilities.Permitted
				if len(got) != len(DefaultCaps)-1 || slices.Contains(got, "CAP_NET_BIND_SERVICE") {
					t.Errorf("permitted = %v", got)
				}
			},
		},
		{
			name: "withheld caps stay in a retain set (stage2 then fails clearly)",
			app: appJSON("0", "0", `,"isolators":[`+
				isolator("os/linux/capabilities-retain-set", `{"set":["CAP_NET_BIND_SERVICE"]}`)+`]`),
			opts: Options{Withheld: []string{"CAP_NET_BIND_SERVICE"}},
			check: func(t *testing.T, s *specs.Spec) {
				eq(t, "permitted", s.Process.Capabilities.Permitted, []string{"CAP_NET_BIND_SERVICE"})
			},
		},
		{
			name: "remove set",
			app: appJSON("0", "0", `,"isolators":[`+
				isolator("os/linux/capabilities-remove-set", `{"set":["CAP_NET_RAW","CAP_MKNOD"]}`)+`]`),
			check: func(t *testing.T, s *specs.Spec) {
				got := s.Process.Capabilities.Effective
				if len(got) != len(DefaultCaps)-2 || slices.Contains(got, "CAP_NET_RAW") || slices.Contains(got, "CAP_MKNOD") || !slices.Contains(got, "CAP_CHOWN") {
					t.Errorf("effective = %v", got)
				}
			},
		},
		{
			name: "resources, no_new_privs, oom",
			app: appJSON("0", "0", `,"isolators":[`+
				isolator("resource/memory", `{"limit":"64M"}`)+","+
				isolator("resource/cpu", `{"limit":"500m"}`)+","+
				isolator("os/linux/oom-score-adj", `100`)+","+
				isolator("os/linux/no-new-privileges", `true`)+`]`),
			check: func(t *testing.T, s *specs.Spec) {
				r := s.Linux.Resources
				eq(t, "memory", *r.Memory.Limit, int64(64_000_000))
				eq(t, "quota", *r.CPU.Quota, int64(50000))
				eq(t, "period", *r.CPU.Period, uint64(100000))
				eq(t, "oom", *s.Process.OOMScoreAdj, 100)
				eq(t, "nnp", s.Process.NoNewPrivileges, true)
			},
		},
		{
			name: "seccomp remove set with errno",
			app: appJSON("0", "0", `,"isolators":[`+
				isolator("os/linux/seccomp-remove-set", `{"set":["chmod","fchmod"],"errno":"ENOTSUP"}`)+`]`),
			check: func(t *testing.T, s *specs.Spec) {
				sc, errno := s.Linux.Seccomp, uint(95)
				eq(t, "default", sc.DefaultAction, specs.ActAllow)
				eq(t, "rules", sc.Syscalls, []specs.LinuxSyscall{{Names: []string{"chmod", "fchmod"}, Action: specs.ActErrno, ErrnoRet: &errno}})
				eq(t, "nnp implied", s.Process.NoNewPrivileges, true)
			},
		},
		{
			name: "seccomp retain set kills",
			app: appJSON("0", "0", `,"isolators":[`+
				isolator("os/linux/seccomp-retain-set", `{"set":["read","write"]}`)+`]`),
			check: func(t *testing.T, s *specs.Spec) {
				sc := s.Linux.Seccomp
				eq(t, "default", sc.DefaultAction, specs.ActKillProcess)
				eq(t, "rules", sc.Syscalls, []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}})
			},
		},
		{
			name: "unknown seccomp group refused",
			app: appJSON("0", "0", `,"isolators":[`+
				isolator("os/linux/seccomp-remove-set", `{"set":["@systemd/mount"]}`)+`]`),
			wantErr: ErrIsolator,
		},
		{
			name:  "readonly rootfs gets a /tmp",
			app:   appJSON("0", "0", ""),
			extra: `{"ra":{"readOnlyRootFS":true}}`,
			check: func(t *testing.T, s *specs.Spec) {
				eq(t, "readonly", s.Root.Readonly, true)
				if findMount(s, "/tmp") == nil {
					t.Error("no /tmp mount")
				}
			},
		},
		{
			name: "volumes and mount points",
			app: appJSON("0", "0", `,"mountPoints":[
				{"name":"data","path":"/var/data"},{"name":"conf","path":"/etc/app","readOnly":true},
				{"name":"logs","path":"/var/log"},{"name":"over","path":"/over","readOnly":true}]`),
			extra: `{"volumes":[
				{"name":"data","kind":"host","source":"/srv/data"},
				{"name":"over","kind":"host","source":"/o","readOnly":false},
				{"name":"conf","kind":"empty"},
				{"name":"cache","kind":"host","source":"/c","readOnly":true,"recursive":false}],
				"ra":{"mounts":[{"volume":"cache","path":"/var/log"}]}}`,
			opts: Options{VolumesDir: "/vols", ResolvConf: "-", Hostname: "h1"},
			check: func(t *testing.T, s *specs.Spec) {
				for _, want := range []specs.Mount{
					{Destination: "/var/log", Type: "bind", Source: "/vols/cache", Options: []string{"bind", "ro"}},
					{Destination: "/var/data", Type: "bind", Source: "/vols/data", Options: []string{"rbind"}},
					{Destination: "/etc/app", Type: "bind", Source: "/vols/conf", Options: []string{"rbind", "ro"}},
					{Destination: "/over", Type: "bind", Source: "/vols/over", Options: []string{"rbind"}}, // the volume's readOnly false wins
					{Destination: "/etc/hostname", Type: "bind", Source: HostnameFile, Options: []string{"bind"}},
				} {
					eq(t, want.Destination, findMount(s, want.Destination), &want)
				}
				if findMount(s, "/etc/resolv.conf") != nil {
					t.Error("resolv.conf mounted with ResolvConf \"-\"")
				}
				eq(t, "hostname", s.Hostname, "h1")
			},
		},
		{
			name: "nested mounts, parent first whatever the order",
			app:  appJSON("0", "0", `,"mountPoints":[{"name":"data","path":"/var/data"}]`),
			extra: `{"volumes":[{"name":"data","kind":"empty"},{"name":"sub","kind":"empty"},{"name":"deep","kind":"empty"}],
				"ra":{"mounts":[{"volume":"deep","path":"/var/data/sub/deep"},{"volume":"sub","path":"/var/data/sub"}]}}`,
			opts: Options{VolumesDir: "/vols"},
			check: func(t *testing.T, s *specs.Spec) {
				var got []string
				for _, m := range s.Mounts {
					if strings.HasPrefix(m.Destination, "/var/data") {
						got = append(got, m.Destination)
					}
				}
				eq(t, "order", got, []string{"/var/data", "/var/data/sub", "/var/data/sub/deep"})
			},
		},
		{
			name:    "mount point without volume",
			app:     appJSON("0", "0", `,"mountPoints":[{"name":"data","path":"/data"}]`),
			wantErr: ErrNoVolume,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, ra := pod(t, tt.app, tt.extra)
			s, err := Build(pm, ra, &schema.ImageManifest{}, root, tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestUserByPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/owned", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir+"/owned", 1234, 5678); err != nil {
		t.Skipf("chown needs root: %v", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	pm, ra := pod(t, appJSON("/owned", "/owned", ""), "")
	s, err := Build(pm, ra, &schema.ImageManifest{}, root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "user", s.Process.User, specs.User{UID: 1234, GID: 5678})
}

func TestWriteRead(t *testing.T) {
	root, err := os.OpenRoot("testdata/rootfs")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	pm, ra := pod(t, appJSON("app", "app", ""), "")
	s, err := Build(pm, ra, &schema.ImageManifest{}, root, Options{Hostname: "pod1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "spec", got, s)
	hosts, _ := os.ReadFile(dir + "/" + HostsFile)
	if !strings.Contains(string(hosts), "localhost pod1\n") {
		t.Errorf("hosts = %q", hosts)
	}
	if _, err := Read(t.TempDir()); err == nil {
		t.Error("Read of an empty dir succeeded")
	}
}

func findMount(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s = %s, want %s", what, g, w)
	}
}
