//go:build e2e

package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The provenance tests check the run policy (docs/policy.md): what an
// image's provenance lets it do when it is named by name, file, URL or ID.

// storedImage is one row of `image list --format=json`.
type storedImage struct {
	ID, Name, Provenance, Signer, TrustedPrefix string
}

func listImages(t *testing.T, e *env) map[string]storedImage {
	t.Helper()
	var imgs []storedImage
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json")), &imgs); err != nil {
		t.Fatal(err)
	}
	m := map[string]storedImage{}
	for _, im := range imgs {
		m[im.ID] = im
	}
	return m
}

// unsigned copies a test image to a directory with no .asc beside it.
func unsigned(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	copyFile(t, image(t, name), p)
	return p
}

// wantRefused checks that a skiff command failed with one line from the
// run policy that says how to get past it.
func wantRefused(t *testing.T, what string, out, errs string, code int, mention ...string) {
	t.Helper()
	lines := errorLines(errs)
	if code != 254 || len(lines) != 1 || !strings.Contains(lines[0], "refused by the run policy") {
		t.Errorf("%s: exit %d, stderr %q; want 254 and one line saying the run policy refused it\nstdout: %s", what, code, errs, out)
		return
	}
	for _, m := range mention {
		if !strings.Contains(lines[0], m) {
			t.Errorf("%s: %q does not mention %q", what, lines[0], m)
		}
	}
}

// TestInsecureImageByName is issue 10's "an insecurely fetched image does
// not run by name without the flag", and the policy's other defaults: a
// verified image runs by name, any image by its full ID.
func TestInsecureImageByName(t *testing.T) {
	e := newEnv(t)
	lone := unsigned(t, "probe.aci")
	id := strings.TrimSpace(e.mustRun("--insecure-options=image", "fetch", "--full", lone))
	if im := listImages(t, e)[id]; im.Provenance != "insecure" || im.Signer != "" {
		t.Errorf("image list after an insecure fetch: %+v, want provenance insecure, no signer", im)
	}
	if out := e.mustRun("image", "list"); !strings.Contains(out, "PROVENANCE") || !strings.Contains(out, "insecure") {
		t.Errorf("image list table lacks the provenance:\n%s", out)
	}

	out, errs, code := e.run("run", "--stage1=ns", "skiff.local/probe", "--", "-exit=0")
	wantRefused(t, "run by name", out, errs, code, "skiff.local/probe", "insecure", "--insecure-options=image")
	out, errs, code = e.run("prepare", "--stage1=ns", "skiff.local/probe")
	wantRefused(t, "prepare by name", out, errs, code)
	// A short ID prefix is a convenience, not a digest the user typed.
	out, errs, code = e.run("run", "--stage1=ns", id[:19], "--", "-exit=0")
	wantRefused(t, "run by ID prefix", out, errs, code)
	// Nor does a verifying fetch hand out the insecure copy's ID (which
	// would then run by ID): it tries to fetch a verified one, and fails.
	out, errs, code = e.run("fetch", "--full", "skiff.local/probe")
	wantRefused(t, "verifying fetch by name", out, errs, code, "fetching it again failed")
	// A URL or file imported insecurely before is no way around it either:
	// the file is verified again, and fails for want of a signature.
	if _, errs, code := e.run("run", "--stage1=ns", lone, "--", "-exit=0"); code != 254 || !strings.Contains(errs, "signature") {
		t.Errorf("run of the unsigned file without the flag: exit %d %q", code, errs)
	}
	if out := e.mustRun("list", "--no-legend"); strings.TrimSpace(out) != "" {
		t.Errorf("a refused run left pods behind:\n%s", out)
	}

	// With the flag on the run itself, and by its full ID, it runs.
	if out, errs, code := e.run("--insecure-options=image", "run", "--stage1=ns", "skiff.local/probe", "--", "-exit=11"); code != 11 {
		t.Errorf("run by name with --insecure-options=image: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := e.run("run", "--stage1=ns", id, "--", "-exit=12"); code != 12 {
		t.Errorf("run by full image ID: exit %d\n%s%s", code, out, errs)
	}

	// The same bytes fetched with a good signature become verified, and run
	// by name; an insecure import again does not weaken that.
	e.mustRun("fetch", image(t, "probe.aci"))
	e.mustRun("--insecure-options=image", "fetch", lone)
	if im := listImages(t, e)[id]; im.Provenance != "verified" || im.Signer == "" || im.TrustedPrefix != "skiff.local" {
		t.Errorf("image list after a verified fetch: %+v, want verified by a key for skiff.local", im)
	}
	if out, errs, code := e.run("run", "--stage1=ns", "skiff.local/probe", "--", "-exit=13"); code != 13 {
		t.Errorf("run of a verified image by name: exit %d\n%s%s", code, out, errs)
	}
}

// TestInsecureDependency: a verified image whose dependency, found by name
// in the store, was fetched insecurely does not run without the flag.
func TestInsecureDependency(t *testing.T) {
	e := newEnv(t)
	e.mustRun("--insecure-options=image", "fetch", unsigned(t, "busybox.aci"))
	e.mustRun("fetch", image(t, "probe-layered.aci"))
	var m struct {
		Dependencies []struct{ ImageName string }
	}
	if err := json.Unmarshal([]byte(e.mustRun("image", "cat-manifest", "skiff.local/probe-layered")), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Dependencies) == 0 || m.Dependencies[0].ImageName != "skiff.local/busybox" {
		t.Fatalf("probe-layered.aci depends on %+v; this test needs skiff.local/busybox", m.Dependencies)
	}
	out, errs, code := e.run("run", "--stage1="+stubACI, "skiff.local/probe-layered", "--", "-exit=0")
	wantRefused(t, "run with an insecure dependency", out, errs, code, "dependency", "skiff.local/busybox")
	e.mustRun("--insecure-options=image", "run", "--stage1="+stubACI, "skiff.local/probe-layered", "--", "-exit=0")
}

// TestNameIsNotAFile: a file in the current directory whose path equals an
// appc name does not replace the image of that name, even a validly signed
// one (here: probe.aci and its signature, saved as skiff.local/busybox).
func TestNameIsNotAFile(t *testing.T) {
	e := newEnv(t)
	busybox := strings.TrimSpace(e.mustRun("fetch", "--full", image(t, "busybox.aci")))
	cwd := t.TempDir()
	os.Mkdir(filepath.Join(cwd, "skiff.local"), 0o755)
	copyFile(t, image(t, "probe.aci"), filepath.Join(cwd, "skiff.local", "busybox"))
	copyFile(t, image(t, "probe.aci.asc"), filepath.Join(cwd, "skiff.local", "busybox.asc"))
	runIn := func(args ...string) string {
		t.Helper()
		c := exec.Command(skiffBin, append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)...)
		c.Dir = cwd
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			t.Fatalf("skiff %s in %s: %v\n%s%s", strings.Join(args, " "), cwd, err, out.String(), errb.String())
		}
		return out.String()
	}
	if got := strings.TrimSpace(runIn("fetch", "--full", "skiff.local/busybox")); got != busybox {
		t.Errorf("fetch skiff.local/busybox in a dir holding such a file gave %s, want the stored busybox %s", got, busybox)
	}
	uuid := strings.TrimSpace(runIn("prepare", "--stage1="+stubACI, "skiff.local/busybox"))
	if out := e.mustRun("cat-manifest", uuid); !strings.Contains(out, busybox) {
		t.Errorf("pod prepared from skiff.local/busybox does not use the stored busybox %s:\n%s", busybox, out)
	}
	// Written as a path, the file is what is meant.
	if got := strings.TrimSpace(runIn("fetch", "--full", "./skiff.local/busybox")); got == busybox {
		t.Errorf("fetch ./skiff.local/busybox gave the stored busybox, want the file")
	}
}

// TestStage1Policy: a stage1 by name passes the policy like any image; one
// by path is trusted by location (docs/stage1-abi.md).
func TestStage1Policy(t *testing.T) {
	e := newEnv(t)
	probe := image(t, "probe.aci")
	e.mustRun("run", "--stage1="+stubACI, probe, "--", "-exit=0") // imports the stub by location
	var stub storedImage
	for _, im := range listImages(t, e) {
		if im.Name == "skiff.dev/stage1-stub" {
			stub = im
		}
	}
	if stub.Provenance != "insecure" {
		t.Errorf("stub stage1 imported from a file: %+v, want provenance insecure", stub)
	}
	out, errs, code := e.run("run", "--stage1=skiff.dev/stage1-stub", probe, "--", "-exit=0")
	wantRefused(t, "stage1 by name", out, errs, code, "skiff.dev/stage1-stub")
	e.mustRun("--insecure-options=image", "run", "--stage1=skiff.dev/stage1-stub", probe, "--", "-exit=0")
	e.mustRun("run", "--stage1="+stub.ID, probe, "--", "-exit=0")
}

// TestPolicyFile: the policy in --local-config changes what runs, and a bad
// one fails every run with one line naming the file and the cause.
func TestPolicyFile(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("--insecure-options=image", "fetch", "--full", unsigned(t, "probe.aci")))
	policyFile := filepath.Join(e.config, "policy.json")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(policyFile, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(ref string) (string, string, int) {
		return e.run("run", "--stage1="+stubACI, ref, "--", "-exit=0")
	}

	write(`{"names": {"skiff.local/probe": ["verified", "insecure"]}}`)
	if out, errs, code := run("skiff.local/probe"); code != 0 {
		t.Errorf("policy accepting insecure for skiff.local/probe: exit %d\n%s%s", code, out, errs)
	}
	write(`{"acceptImageIDs": false}`)
	out, errs, code := run(id)
	wantRefused(t, "run by ID with acceptImageIDs false", out, errs, code, policyFile)

	for _, tt := range []struct{ name, data, mention string }{
		{"unknown key", `{"names": {}, "registry": {}}`, `unknown key "registry"`},
		{"duplicate key", `{"default": ["verified"], "default": ["insecure"]}`, `duplicate key "default"`},
		{"bad value", `{"names": {"skiff.local": ["signed"]}}`, `unknown provenance "signed"`},
		{"not JSON", `names: skiff.local`, "invalid character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			write(tt.data)
			_, errs, code := e.with(t).run("--insecure-options=image", "run", "--stage1="+stubACI, image(t, "probe.aci"), "--", "-exit=0")
			lines := errorLines(errs)
			if code != 254 || len(lines) != 1 || !strings.Contains(lines[0], policyFile) || !strings.Contains(lines[0], tt.mention) {
				t.Errorf("exit %d, stderr %q; want 254 and one line naming %s and %q", code, errs, policyFile, tt.mention)
			}
		})
	}
}

// TestRevokedKey: an image verified by a key that is no longer trusted
// (`skiff trust --remove`) no longer runs by name without the flag.
func TestRevokedKey(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("fetch", "--full", image(t, "busybox.aci")))
	im := listImages(t, e)[id]
	if im.Provenance != "verified" || im.Signer == "" {
		t.Fatalf("fetched busybox: %+v, want verified", im)
	}
	run := func(flags ...string) (string, string, int) {
		return e.run(append(flags, "run", "--stage1="+stubACI, "skiff.local/busybox", "--exec=/bin/true")...)
	}
	if out, errs, code := run(); code != 0 {
		t.Fatalf("verified image by name: exit %d\n%s%s", code, out, errs)
	}
	e.mustRun("trust", "--remove", im.Signer, "--prefix", "skiff.local")
	out, errs, code := run()
	wantRefused(t, "run after its key was removed", out, errs, code, "no longer trusted")
	if out, errs, code := run("--insecure-options=image"); code != 0 {
		t.Errorf("with --insecure-options=image: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := e.run("run", "--stage1="+stubACI, id, "--exec=/bin/true"); code != 0 {
		t.Errorf("by full image ID: exit %d\n%s%s", code, out, errs)
	}
}
