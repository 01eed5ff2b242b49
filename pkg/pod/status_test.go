package pod

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
)

// TestStatusHostileFiles: the pid, app status and manifest files are
// written where a pod can reach; Status must not hang on a FIFO, read a
// huge file or follow a symlink to a host file.
func TestStatusHostileFiles(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("4242"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := map[string]func(p string) error{
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
		"symlink": func(p string) error { return os.Symlink(secret, p) },
		"huge": func(p string) error {
			if err := os.WriteFile(p, []byte("4242"), 0o644); err != nil {
				return err
			}
			return os.Truncate(p, 1<<40)
		},
		"dir": func(p string) error { return os.Mkdir(p, 0o755) },
	}
	for _, file := range []string{PidFile, PpidFile, AppStatusDir + "/web", ManifestFile} {
		for kind, mk := range plant {
			t.Run(file+"/"+kind, func(t *testing.T) {
				p, err := Create(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range []State{Preparing, Running} {
					if err := p.Transition(s); err != nil {
						t.Fatal(err)
					}
				}
				p.Unlock()
				if err := os.MkdirAll(p.File(AppStatusDir), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := mk(p.File(file)); err != nil {
					t.Fatal(err)
				}
				done := make(chan Status, 1)
				go func() { st, _ := p.Status(); done <- st }()
				select {
				case st := <-done:
					if st.Pid != 0 || st.Apps["web"] != 0 || len(st.AppList) != 0 {
						t.Errorf("status read the planted file: %+v", st)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Status blocked for 5 s")
				}
			})
		}
	}
}

// TestStatusAppNames: status shows the manifest's app names, validated as
// a full parse would, and nothing from a manifest that is not one.
func TestStatusAppNames(t *testing.T) {
	for _, tc := range []struct {
		name, manifest string
		want, images   []string
		imageNames     []string
	}{
		{"two apps", `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"web","image":{"name":"example.com/web","id":"sha512-` + strings.Repeat("ab", 64) + `"}},{"name":"db"}]}`,
			[]string{"web", "db"}, []string{"sha512-" + strings.Repeat("ab", 64), ""}, []string{"example.com/web", ""}},
		{"invalid name", `{"apps":[{"name":"Web/../x"}]}`, nil, nil, nil},
		{"invalid image ID", `{"apps":[{"name":"web","image":{"id":"sha512-\u001b[2J"}}]}`, nil, nil, nil},
		{"invalid image name", `{"apps":[{"name":"web","image":{"name":"a\u001b[2J"}}]}`, nil, nil, nil},
		{"terminal escape", "{\"apps\":[{\"name\":\"a\\u001b[2J\"}]}", nil, nil, nil},
		{"not json", `apps: web`, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.File(ManifestFile), []byte(tc.manifest), 0o640); err != nil {
				t.Fatal(err)
			}
			st, err := p.Status()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(st.AppList, tc.want) || !slices.Equal(st.Images, tc.images) || !slices.Equal(st.Names, tc.imageNames) {
				t.Errorf("AppList, Images, Names = %q, %q, %q; want %q, %q, %q", st.AppList, st.Images, st.Names, tc.want, tc.images, tc.imageNames)
			}
		})
	}
}

func TestStatusPrivateUsers(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"", ""},
		{"268435456:65536\n", "268435456:65536"},
		{"268435456:65536\nx", ""},
	} {
		p, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []State{Preparing, Prepared} {
			if err := p.Transition(s); err != nil {
				t.Fatal(err)
			}
		}
		if tc.file != "" {
			if err := os.WriteFile(p.File(PrivateUsersFile), []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st, err := p.Status()
		if err != nil || st.PrivateUsers != tc.want {
			t.Errorf("record %q: PrivateUsers %q, err %v; want %q", tc.file, st.PrivateUsers, err, tc.want)
		}
	}
}

// TestStatusTimes: CREATED is when the pod was created, not its
// directory's mtime (which every file written into it moves), and STARTED
// is when it moved to run, zero before.
func TestStatusTimes(t *testing.T) {
	before := time.Now()
	p, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p.Path(), old, old); err != nil {
		t.Fatal(err)
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Created.Before(before) || st.Created.After(after) || !st.Started.IsZero() {
		t.Fatalf("created %v (want between %v and %v), started %v (want zero)", st.Created, before, after, st.Started)
	}
	for _, s := range []State{Preparing, Running} {
		if err := p.Transition(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(p.Path(), old, old); err != nil {
		t.Fatal(err)
	}
	st2, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Created.Equal(st.Created) || st2.Started.Before(after) || st2.Started.After(time.Now()) {
		t.Errorf("after the move to run: created %v (want %v), started %v", st2.Created, st.Created, st2.Started)
	}
	// Read as the file's mtime, which is the stamp written in it.
	if stamp := p.stampTime(StartedFile); !st2.Started.Equal(stamp) {
		t.Errorf("started %v, want the stamp's %v", st2.Started, stamp)
	}
	// A started stamp the pod replaced by a symlink is not followed.
	if err := os.Remove(p.File(StartedFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p.File(CreatedFile), p.File(StartedFile)); err != nil {
		t.Fatal(err)
	}
	if st3, err := p.Status(); err != nil || !st3.Started.IsZero() {
		t.Errorf("started through a symlink: %v, %v; want zero", st3.Started, err)
	}
}

// TestValidName: the hand-written checks accept exactly what appc's
// ACName and ACIdentifier do.
func TestValidName(t *testing.T) {
	for _, s := range []string{"", "a", "web", "web-1", "-web", "web-", "web--1", "Web", "a.b", "a..b", "example.com/web",
		"example.com//web", "/web", "web/", "a~b", "a_b", "a b", "ä", "a\x1b[2J", "0", "a-b.c_d~e/f", "a.-b"} {
		_, nameErr := types.NewACName(s)
		_, idErr := types.NewACIdentifier(s)
		if got := validName(s, "-"); got != (nameErr == nil) {
			t.Errorf("validName(%q, ACName) = %v, appc says %v", s, got, nameErr)
		}
		if got := validName(s, "-._~/"); got != (idErr == nil) {
			t.Errorf("validName(%q, ACIdentifier) = %v, appc says %v", s, got, idErr)
		}
	}
}

// TestBrief: Brief reads what list's table shows and leaves out the
// rest; Status reads it all.
func TestBrief(t *testing.T) {
	p, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []State{Preparing, Running} {
		if err := p.Transition(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.stamp(StartedFile); err != nil {
		t.Fatal(err)
	}
	p.Unlock()
	files := map[string]string{
		ManifestFile:          `{"apps":[{"name":"web","image":{"name":"example.com/web"}}]}`,
		PidFile:               "42",
		PrivateUsersFile:      "268435456:65536",
		AppStatusDir + "/web": "3",
		ReadyFile:             "",
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(p.File(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.File(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	full, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	brief, err := p.Brief()
	if err != nil {
		t.Fatal(err)
	}
	if full.Pid != 42 || full.Apps["web"] != 3 || !full.Ready || full.PrivateUsers == "" {
		t.Errorf("Status = %+v; want pid, app status, ready and uid range", full)
	}
	want := full
	want.Pid, want.Apps, want.Ready, want.PrivateUsers = 0, nil, false, ""
	if !reflect.DeepEqual(brief, want) {
		t.Errorf("Brief = %+v\nwant %+v", brief, want)
	}
	if brief.State != PhaseExited || brief.Started.IsZero() || !slices.Equal(brief.AppList, []string{"web"}) {
		t.Errorf("Brief = %+v; want exited, started, app web", brief)
	}
}

// TestStatusAppStatusDirSymlink: a status directory the pod replaced by a
// symlink is not followed; the pod recorded no status.
func TestStatusAppStatusDirSymlink(t *testing.T) {
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "web"), []byte("7"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []State{Preparing, Running} {
		if err := p.Transition(s); err != nil {
			t.Fatal(err)
		}
	}
	p.Unlock()
	if err := os.MkdirAll(filepath.Dir(p.File(AppStatusDir)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, p.File(AppStatusDir)); err != nil {
		t.Fatal(err)
	}
	st, err := p.Status()
	if err != nil || len(st.Apps) != 0 {
		t.Errorf("Status: apps %v, err %v; want none and no error", st.Apps, err)
	}
}

// TestAppsRecord: list reads the apps record when there is one, which
// every writer of the manifest removes before and writes again after; a
// missing one (a crash between the two) or an invalid one sends it to the
// manifest itself.
func TestAppsRecord(t *testing.T) {
	id := "sha512-" + strings.Repeat("ab", 64)
	one := `{"apps":[{"name":"web","image":{"name":"example.com/web","id":"` + id + `"}}]}`
	two := `{"apps":[{"name":"web","image":{"name":"example.com/web","id":"` + id + `"}},{"name":"db"}]}`
	for _, tc := range []struct {
		name string
		// change runs after the record of manifest one was written.
		change func(t *testing.T, p *Pod)
		want   []string
	}{
		{"recorded", func(t *testing.T, p *Pod) {}, []string{"web"}},
		{"manifest rewritten", func(t *testing.T, p *Pod) {
			rewrite(t, p, two, true)
		}, []string{"web", "db"}},
		{"rewritten, same size", func(t *testing.T, p *Pod) {
			rewrite(t, p, strings.Replace(one, `"web"`, `"bew"`, 1), true)
		}, []string{"bew"}},
		{"crash before the record", func(t *testing.T, p *Pod) {
			rewrite(t, p, two, false)
		}, []string{"web", "db"}},
		{"rewritten behind the writers' back", func(t *testing.T, p *Pod) {
			writeRename(t, p.File(ManifestFile), two)
		}, []string{"web"}}, // the record is trusted, not checked against the manifest
		{"no record", func(t *testing.T, p *Pod) { os.Remove(p.File(AppsFile)) }, []string{"web"}},
		{"invalid record", func(t *testing.T, p *Pod) {
			writeRename(t, p.File(AppsFile), recordHead(t, p)+"Web\x1b[2J\t\t\n")
		}, []string{"web"}},
		{"invalid created", func(t *testing.T, p *Pod) {
			head, _, _ := strings.Cut(recordHead(t, p), "\n")
			writeRename(t, p.File(AppsFile), head+"\nsoon\nother\t\t\n")
		}, []string{"web"}},
		{"forged record", func(t *testing.T, p *Pod) {
			writeRename(t, p.File(AppsFile), recordHead(t, p)+"other\t\t\n")
		}, []string{"other"}}, // root's file, as the manifest: trusted alike, but validated
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.File(ManifestFile), []byte(one), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := p.RecordApps(); err != nil {
				t.Fatal(err)
			}
			tc.change(t, p)
			for _, f := range []func() (Status, error){p.Brief, p.Status} {
				st, err := f()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(st.AppList, tc.want) {
					t.Errorf("apps %q, want %q", st.AppList, tc.want)
				}
				if created := p.stampTime(CreatedFile); !st.Created.Equal(created) {
					t.Errorf("created %v, want the stamp's %v", st.Created, created)
				}
				if st.AppList[0] == "web" && (st.Images[0] != id || st.Names[0] != "example.com/web") {
					t.Errorf("image %q %q, want %q example.com/web", st.Images[0], st.Names[0], id)
				}
			}
		})
	}
}

// rewrite writes the pod's manifest as stage0 does (ForgetApps, the
// manifest, RecordApps), or as a crash before the record would leave it.
func rewrite(t *testing.T, p *Pod, manifest string, record bool) {
	t.Helper()
	if err := p.ForgetApps(); err != nil {
		t.Fatal(err)
	}
	writeRename(t, p.File(ManifestFile), manifest)
	if !record {
		return
	}
	if err := p.RecordApps(); err != nil {
		t.Fatal(err)
	}
}

// recordHead returns the first two lines of the pod's apps record: the
// manifest's identity and the created stamp.
func recordHead(t *testing.T, p *Pod) string {
	t.Helper()
	b, err := os.ReadFile(p.File(AppsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfterN(string(b), "\n", 3)
	return lines[0] + lines[1]
}

// writeRename replaces path with data in one rename, as stage0 writes.
func writeRename(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestNetworked: status says whether the pod has a network cache, so that
// list reads none for the pods (most) that have none.
func TestNetworked(t *testing.T) {
	for _, has := range []bool{false, true} {
		p, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if has {
			if err := os.Mkdir(p.File(NetDir), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []func() (Status, error){p.Brief, p.Status} {
			st, err := f()
			if err != nil {
				t.Fatal(err)
			}
			if st.Networked != has {
				t.Errorf("Networked %v, want %v", st.Networked, has)
			}
		}
	}
}
