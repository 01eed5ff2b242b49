//go:build e2e

package tests

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPeopleListTimes: list has rkt's columns and a line per app; CREATED
// is when the pod was created, whatever later writes do to its
// directory's mtime, and STARTED is empty until the pod runs; status
// prints rkt's lines to a script and a table with --format=table.
func TestPeopleListTimes(t *testing.T) {
	e := newEnv(t)
	before := time.Now().Truncate(time.Second)
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", image(t, "busybox.aci"), "--name=one", "--exec=/bin/true", "---",
		image(t, "busybox.aci"), "--name=two", "--exec=/bin/true"))
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.Local)
	dir := filepath.Join(e.dir, "pods", "prepared", uuid)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(e.mustRun("list"), "\n")
	mustContain(t, lines[0], "UUID      APP  IMAGE NAME           STATE     CREATED              STARTED  NETWORKS")
	created := func(line string) time.Time {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("list line %q: want a creation time", line)
		}
		c, err := time.ParseInLocation(time.DateTime, f[4]+" "+f[5], time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := created(lines[1]); c.Before(before) || c.After(time.Now()) {
		t.Errorf("CREATED %v, want the creation time (after %v):\n%s", c, before, strings.Join(lines, "\n"))
	}
	if f := strings.Fields(lines[1]); f[0] != uuid[:8] || f[1] != "one" || f[2] != "skiff.local/busybox" || f[3] != "prepared" || len(f) != 6 {
		t.Errorf("pod line %q: want uuid, app one, image, prepared, created and no STARTED", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) != 2 || f[0] != "two" {
		t.Errorf("second app's line %q: want only APP and IMAGE NAME", lines[2])
	}
	e.mustRun("run-prepared", uuid)
	lines = strings.Split(e.mustRun("list", "--no-legend"), "\n")
	f := strings.Split(lines[0], "\t")
	if len(f) != 7 || f[3] != "exited" || f[5] == "" {
		t.Fatalf("list after the run: %q, want exited with a STARTED time", lines[0])
	}
	mustContain(t, e.mustRun("status", uuid), "state=exited\n", "started=", "app-one=0\n", "app-two=0\n")
	mustContain(t, e.mustRun("status", "--format=table", uuid),
		"UUID ", "STATE ", uuid+"  exited ", "APP  IMAGE NAME           EXIT STATUS\none  skiff.local/busybox  0\ntwo  skiff.local/busybox  0\n")
}

// TestPeopleOutputPrefix: an app's lines carry the same prefix whether
// the pod has one app or two, on either stage1: rkt's
// "[   12.345678] app[5]: line".
func TestPeopleOutputPrefix(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		bb := image(t, "busybox.aci")
		for _, tc := range []struct {
			name string
			args []string
			apps []string
		}{
			{"one app", []string{bb, "--name=one", "--exec=/bin/echo", "--", "hello-one"}, []string{"one"}},
			{"two apps", []string{bb, "--name=a", "--exec=/bin/echo", "--", "hello-a", "---", bb, "--name=b", "--exec=/bin/echo", "--", "hello-b"}, []string{"a", "b"}},
		} {
			out, errs, code := e.run(append([]string{"run", "--stage1=" + s}, tc.args...)...)
			if code != 0 {
				t.Fatalf("%s: exit %d:\n%s%s", tc.name, code, out, errs)
			}
			for _, app := range tc.apps {
				re := regexp.MustCompile(`(?m)^\[ *\d+\.\d{6}\] ` + app + `\[\d+\]: hello-` + app + "\r?$")
				if !re.MatchString(out) {
					t.Errorf("%s: no line %q in the output:\n%s", tc.name, re, out)
				}
			}
		}
	})
}

// TestPeopleConfig: skiff config shows what the local config dir holds
// (trusted keys, registries.conf, policy.json) and the stage1 images, as
// lines and as JSON, never a credential; a broken file is an error.
func TestPeopleConfig(t *testing.T) {
	e := newEnv(t)
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(e.config, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("registries.conf", "[[registry]]\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:5000\"\n[aliases]\nredis = \"docker.io/library/redis\"\n")
	write("policy.json", `{"acceptImageIDs": false}`)
	write("auth.json", `{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpzM2NyZXQ="}}}`)
	out := e.mustRun("--insecure-options=http", "config")
	mustContain(t, out, "dir "+e.dir+"\n", "local-config "+e.config+"\n", "insecure-options http\n",
		"auth-files "+filepath.Join(e.config, "auth.json"), "policy "+filepath.Join(e.config, "policy.json")+"\n",
		"trusted-key skiff.local ", "registry docker.io mirror=127.0.0.1:5000\n", "alias redis=docker.io/library/redis\n",
		"network default ", "stage1 ns: ", "stage1 kvm: ")
	var c struct {
		TrustedKeys []struct{ Prefix, Fingerprint string }
		Stage1      []struct{ Name, Path string }
	}
	js := e.mustRun("config", "--format=json")
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.TrustedKeys) != 1 || c.TrustedKeys[0].Prefix != "skiff.local" || len(c.TrustedKeys[0].Fingerprint) != 40 || len(c.Stage1) < 2 {
		t.Errorf("config JSON: %s", js)
	}
	if strings.Contains(out+js, "dXNlcjpzM2NyZXQ") {
		t.Errorf("config shows a credential:\n%s%s", out, js)
	}
	write("policy.json", `{"acceptImageIDs": "yes"}`)
	if _, errs, code := e.run("config"); code != 254 || !strings.Contains(errs, "policy") || strings.Count(errs, "\n") != 1 {
		t.Errorf("config with a broken policy.json: exit %d, %q; want 254 and one line naming it", code, errs)
	}
}

// TestPeopleExport: skiff export writes an exited pod's app as it left it
// (image, dependencies and the app's changes, flat) to an ACI that runs;
// a running pod, a missing app name and an existing or symlinked output
// are refused with one line and exit 254, nothing written.
func TestPeopleExport(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(t.TempDir(), "out.aci")
	bb, layered := image(t, "busybox.aci"), image(t, "probe-layered.aci")
	refused := func(what string, args ...string) {
		t.Helper()
		o, errs, code := e.run(append([]string{"export"}, args...)...)
		if code != 254 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "skiff: ") {
			t.Errorf("export of %s: exit %d, %q %q; want 254 and one line", what, code, o, errs)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("export of %s left %s", what, out)
		}
	}

	// A running pod.
	save := filepath.Join(t.TempDir(), "uuid")
	cmd, log := e.start("run", "--stage1=ns", "--uuid-file-save="+save, bb, "--exec=/bin/sleep", "--", "120")
	var running string
	waitFor(t, "the pod's uuid", time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		running = strings.TrimSpace(string(b))
		return running != ""
	})
	if o, errs, code := e.run("status", "--wait-ready=90s", running); code != 0 {
		t.Fatalf("status --wait-ready: exit %d\n%s%s\n%s", code, o, errs, log)
	}
	refused("a running pod", running, out)
	e.mustRun("stop", running)
	cmd.Wait()

	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns",
		layered, "--name=changer", "--exec=/bin/sh", "--", "-c", "echo changed >/etc/motd && rm /bin/ls && mkdir /new && echo x >/new/f", "---",
		bb, "--name=other", "--exec=/bin/true"))
	refused("a prepared pod", uuid, "changer", out)
	e.mustRun("run-prepared", uuid)
	refused("a pod of two apps without APP", uuid, out)
	refused("an app the pod does not have", uuid, "nosuch", out)
	os.Symlink(filepath.Join(t.TempDir(), "target"), out)
	if _, errs, code := e.run("export", uuid, "changer", out); code != 254 || !strings.Contains(errs, out) {
		t.Errorf("export to a symlink: exit %d, %q", code, errs)
	}
	os.Remove(out)

	e.mustRun("export", "--app=changer", uuid, out)
	if _, errs, code := e.run("export", uuid, "changer", out); code != 254 || !strings.Contains(errs, "--overwrite") {
		t.Errorf("export over an existing file: exit %d, %q; want 254 naming --overwrite", code, errs)
	}
	e.mustRun("export", "--overwrite", uuid, "changer", out)
	m, err := exec.Command("tar", "-xOf", out, "manifest").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(m), "dependencies") || !strings.Contains(string(m), `"name":"skiff.local/probe-layered"`) {
		t.Errorf("exported manifest: %s; want the image's, without dependencies", m)
	}
	list, err := exec.Command("tar", "-tf", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(list), "rootfs/probe\n", "rootfs/bin/busybox\n", "rootfs/new/f\n")
	if strings.Contains(string(list), "rootfs/bin/ls\n") {
		t.Errorf("the removed /bin/ls is in the export")
	}
	got := e.mustRun("run", "--stage1=ns", "--insecure-options=image", out, "--exec=/bin/cat", "--", "/etc/motd", "/new/f")
	mustContain(t, got, "changed\n", "x\n")
}

// TestPeopleCompletion: --stage1 completes to the short names of the
// stage1 images installed beside skiff, pods to their UUIDs, images to
// the stored names.
func TestPeopleCompletion(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("__complete", "run", "--stage1=")
	mustContain(t, out, "--stage1=ns\tskiff.dev/stage1-ns ", "--stage1=kvm\tskiff.dev/stage1-kvm ")
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", image(t, "busybox.aci"), "--exec=/bin/true"))
	mustContain(t, e.mustRun("__complete", "run-prepared", ""), uuid+"\tprepared busybox\n")
	mustContain(t, e.mustRun("__complete", "prepare", "--stage1=ns", "skiff.local/b"), "skiff.local/busybox\n")
}

// TestPeopleTrustURL: skiff trust fetches a key over https (the server's
// certificate trusted through SSL_CERT_FILE, as any CA the host trusts),
// refuses to trust it unreviewed from a script, trusts it with
// --skip-fingerprint-review, and refuses plain http.
func TestPeopleTrustURL(t *testing.T) {
	e := newEnv(t)
	key, err := os.ReadFile(image(t, "test-key.asc"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(key) }))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"SSL_CERT_FILE=" + ca}
	url := srv.URL + "/key.asc"
	_, errs, code := e.runCtx(context.Background(), env, "trust", "--prefix=example.com/app", url)
	if code != 254 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "--skip-fingerprint-review") {
		t.Errorf("trust from a script without review: exit %d, %q; want 254 and one line naming --skip-fingerprint-review", code, errs)
	}
	if l := e.mustRun("trust", "--list"); strings.Contains(l, "example.com/app") {
		t.Errorf("the unreviewed key was trusted:\n%s", l)
	}
	out, errs, code := e.runCtx(context.Background(), env, "trust", "--prefix=example.com/app", "--skip-fingerprint-review", url)
	if code != 0 || !strings.Contains(out, "for prefix example.com/app") {
		t.Fatalf("trust --skip-fingerprint-review: exit %d, %q %q", code, out, errs)
	}
	mustContain(t, e.mustRun("trust", "--list"), "example.com/app ")
	if _, errs, code := e.run("trust", "--prefix=example.com/b", "--skip-fingerprint-review", "http://"+strings.TrimPrefix(srv.URL, "https://")+"/key.asc"); code != 254 || !strings.Contains(errs, "not an https URL") {
		t.Errorf("trust over plain http: exit %d, %q", code, errs)
	}
}
