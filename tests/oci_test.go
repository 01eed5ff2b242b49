//go:build e2e

package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// OCI images end to end: built here as OCI layouts (the layer tars written
// by the test, so whiteouts and opaque dirs are exactly what the spec
// says), pushed to Debian's real docker-registry with skopeo, fetched and
// run by skiff on both stage1s.

// ociRegistry is one docker-registry per test binary, started on first use.
var ociRegistry struct {
	once sync.Once
	addr string
	root string // its storage
	log  string // its access log
	err  error
}

func registry(t *testing.T) (addr, root, logPath string) {
	t.Helper()
	for _, bin := range []string{"docker-registry", "skopeo"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s missing: run tests/install-deps.sh (make test does)", bin)
		}
	}
	r := &ociRegistry
	r.once.Do(func() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.err = err
			return
		}
		r.addr = l.Addr().String()
		l.Close()
		dir, err := os.MkdirTemp("", "skiff-e2e-registry-")
		if err != nil {
			r.err = err
			return
		}
		r.root, r.log = filepath.Join(dir, "storage"), filepath.Join(dir, "log")
		cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", r.root, r.addr)
		os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
		logf, err := os.Create(r.log)
		if err != nil {
			r.err = err
			return
		}
		cmd := exec.Command("docker-registry", "serve", filepath.Join(dir, "config.yml"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if r.err = cmd.Start(); r.err != nil {
			return
		}
		registryStop = func() { cmd.Process.Kill(); cmd.Wait(); logf.Close(); os.RemoveAll(dir) }
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := net.Dial("tcp", r.addr); err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				r.err = fmt.Errorf("registry on %s did not start", r.addr)
				return
			}
		}
	})
	if r.err != nil {
		t.Fatalf("start registry: %v", r.err)
	}
	return r.addr, r.root, r.log
}

// registryStop is called by TestMain's cleanup (see ociCleanup).
var registryStop = func() {}

// tarEntry is one entry of a layer built by the test.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func layerTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// ociLayout writes an OCI layout at dir with one image tagged tag: the
// given layers (gzipped) and config.
func ociLayout(t *testing.T, dir, tag string, layers [][]byte, config map[string]any) {
	t.Helper()
	desc := ociManifest(t, dir, layers, nil, "amd64", config)
	desc["annotations"] = map[string]string{"org.opencontainers.image.ref.name": tag}
	ociIndex(t, dir, desc)
}

// ociBlob writes b into the layout at dir; it returns b's digest and size.
func ociBlob(t *testing.T, dir string, b []byte) (string, int) {
	t.Helper()
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", h), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + h, len(b)
}

// ociManifest writes an image for linux/arch into the layout at dir: its
// layers (gzipped, or zstd-compressed where zstdLayers says), config and
// manifest. It returns the manifest's descriptor.
func ociManifest(t *testing.T, dir string, layers [][]byte, zstdLayers map[int]bool, arch string, config map[string]any) map[string]any {
	t.Helper()
	var diffIDs []string
	var descs []map[string]any
	for i, l := range layers {
		sum := sha256.Sum256(l)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
		mt, blob := "application/vnd.oci.image.layer.v1.tar+gzip", gzipped(l)
		if zstdLayers[i] {
			enc, _ := zstd.NewWriter(nil)
			mt, blob = "application/vnd.oci.image.layer.v1.tar+zstd", enc.EncodeAll(l, nil)
		}
		d, n := ociBlob(t, dir, blob)
		descs = append(descs, map[string]any{"mediaType": mt, "digest": d, "size": n})
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "config": config,
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cd, cn := ociBlob(t, dir, cfg)
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs})
	md, mn := ociBlob(t, dir, man)
	return map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
		"platform": map[string]string{"os": "linux", "architecture": arch}}
}

// ociIndex writes the layout's index.json listing manifests.
func ociIndex(t *testing.T, dir string, manifests ...map[string]any) {
	t.Helper()
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// probeBase is the shared base layer: the probe, a passwd with a user by
// name, and files the next layer deletes (a whiteout) or hides (an
// opaque directory).
func probeBase(t *testing.T) []byte {
	probe, err := os.ReadFile(image(t, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	return layerTar(t, []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/probe", body: string(probe), mode: 0o755},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n"},
		{name: "etc/group", body: "root:x:0:\napp:x:4321:\n"},
		{name: "gone", body: "deleted above"},
		{name: "opq/", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/old", body: "hidden above"},
		{name: "work/", typ: tar.TypeDir, mode: 0o777},
		{name: "etc/motd", body: "hello"},
		{name: "etc/motd.hard", typ: tar.TypeLink, link: "etc/motd"}, // a hard link within the layer
	})
}

// probeTop is the top layer of the probe image: a whiteout, an opaque
// directory, a marker file and a symlink into the layer below.
func probeTop(t *testing.T, marker string) []byte {
	return layerTar(t, []tarEntry{
		{name: ".wh.gone"},
		{name: "opq/", typ: tar.TypeDir, mode: 0o755},
		{name: "opq/.wh..wh..opq"},
		{name: "opq/new", body: "new"},
		{name: "marker", body: marker},
		{name: "motd", typ: tar.TypeSymlink, link: "etc/motd.hard"},
	})
}

// ociProbeImage builds the probe as a two-layer OCI image with the
// given top-layer marker; images with different markers share the base.
func ociProbeImage(t *testing.T, marker string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	ociLayout(t, dir, "1", [][]byte{probeBase(t), probeTop(t, marker)}, map[string]any{
		"Entrypoint":   []string{"probe"}, // relative: found in the image's PATH
		"Cmd":          []string{"-print-user", "-print-cwd"},
		"Env":          []string{"PATH=/bin", "FROM_OCI=yes"},
		"User":         "app",
		"WorkingDir":   "/work",
		"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}},
		"Volumes":      map[string]any{"/data": map[string]any{}},
		"Labels":       map[string]string{"org.example.marker": marker},
	})
	return dir
}

func skopeo(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("skopeo", append([]string{"copy", "--quiet", "--dest-tls-verify=false"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy %v: %v\n%s", args, err, out)
	}
}

// pushProbe builds the probe image with marker and pushes it as repo:1.
func pushProbe(t *testing.T, repo, marker string) string {
	t.Helper()
	addr, _, _ := registry(t)
	skopeo(t, "oci:"+ociProbeImage(t, marker)+":1", "docker://"+addr+"/"+repo+":1")
	return "docker://" + addr + "/" + repo + ":1"
}

func TestOCIFetchAndRun(t *testing.T) {
	ref := pushProbe(t, "skiff/probe", "one")
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		// A tag without a signature is refused, naming both ways out.
		_, errs, code := e.run("fetch", "--insecure-options=http", ref)
		if code == 0 || !strings.Contains(errs, "@sha256:") || !strings.Contains(errs, "--insecure-options=image") || strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("unsigned tag: exit %d, want one line naming a digest pin and --insecure-options=image:\n%s", code, errs)
		}
		out, errs, code := e.run("fetch", "--full", "--insecure-options=image,http", ref)
		if code != 0 {
			t.Fatalf("fetch: exit %d\n%s", code, errs)
		}
		id := strings.TrimSpace(out)
		if !strings.HasPrefix(id, "sha256-") || strings.Count(errs, "fetched") != 2 {
			t.Errorf("fetch printed %q; progress:\n%s", id, errs)
		}
		flags := []string{"run", "--stage1=" + s, "--insecure-options=image,http"}
		out, errs, code = e.run(append(flags, ref)...)
		if code != 0 {
			t.Fatalf("run: exit %d\n%s%s", code, out, errs)
		}
		// Entrypoint+Cmd, User by name (its primary group from the image's
		// passwd), WorkingDir.
		mustContain(t, out+errs, "UID=1234", "GID=4321", "USERNAME=app", "CWD=/work")
		// Arguments replace Cmd; the layers stack with whiteout and opaque
		// dir; Env; the image volume is an empty volume.
		out, errs, code = e.run(append(flags, ref, "--", "-print-env=FROM_OCI", "-read-file=/motd", "-check-masked=/opq/old", "-print-mounts", "-print-args", "--", "x")...)
		all := out + errs
		// /motd: a symlink into the base layer, to a hard link made there;
		// /opq/old: hidden by the opaque directory above.
		mustContain(t, all, "FROM_OCI=yes", "READ_FILE=hello", "MASKED_EXISTS=false", "ARGC=1", "ARG=x", "MOUNT=/data ")
		mustNotContain(t, all, "UID=1234")
		if code != 0 {
			t.Errorf("run with args: exit %d\n%s", code, all)
		}
		if s != "ns" {
			return // the rest is stage1-independent: checked once
		}
		// The whiteout hides the base layer's file (the opaque dir: above,
		// on both stage1s); apps that succeed, so a pod that hangs fails.
		out, errs, code = e.run(append(flags, ref, "--", "-read-file=/opq/new", "-check-masked=/gone")...)
		if code != 0 || !strings.Contains(out, "READ_FILE=new") || !strings.Contains(out, "MASKED_EXISTS=false") {
			t.Errorf("/gone visible or /opq/new missing: exit %d\n%s%s", code, out, errs)
		}
		// Copied instead of stacked, the whiteout and opaque dir still hide.
		noOverlay := []string{"run", "--stage1=" + s, "--insecure-options=image,http", "--no-overlay", ref, "--"}
		for _, args := range [][]string{{"-read-file=/opq/new", "-check-masked=/gone"}, {"-check-masked=/opq/old"}} {
			out, errs, code = e.run(append(noOverlay, args...)...)
			if code != 0 || !strings.Contains(out, "MASKED_EXISTS=false") {
				t.Errorf("--no-overlay %v: visible: exit %d\n%s%s", args, code, out, errs)
			}
		}
		// --exec replaces Entrypoint and drops Cmd.
		out, _, _ = e.run(append(flags, ref, "--exec=/bin/probe", "--", "-print-args")...)
		mustContain(t, out, "ARGC=0")
		list := e.mustRun("image", "list")
		mustContain(t, list, "KIND", "LAYERS", "oci", "skiff/probe", "insecure")
		var imgs []ociListed
		json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json")), &imgs)
		imgs = slices.DeleteFunc(imgs, func(i ociListed) bool { return i.Kind == "aci" }) // the stage1
		if len(imgs) != 1 || imgs[0].Kind != "oci" || imgs[0].OCI == nil || len(imgs[0].OCI.Layers) != 2 || "sha256-"+strings.TrimPrefix(imgs[0].OCI.Digest, "sha256:") != id ||
			imgs[0].Digest != imgs[0].OCI.Digest {
			t.Errorf("image list json: %+v", imgs)
		}
		// The DIGEST column: the manifest digest, whole with --full.
		mustContain(t, list, "DIGEST", "sha256:"+strings.TrimPrefix(id, "sha256-")[:12])
		mustContain(t, e.mustRun("image", "list", "--full"), "sha256:"+strings.TrimPrefix(id, "sha256-"))
		// ExposedPorts → ports, Labels → annotations, Volumes → mount points.
		mustContain(t, e.mustRun("image", "cat-manifest", "--app", id), "/bin/probe", `"group": "4321"`, `"8080-tcp"`,
			`"org.example.marker": "one"`, `"volume-data"`)
		// By digest: digest-pinned, runs without --insecure-options=image.
		pinned := strings.TrimSuffix(ref, ":1") + "@sha256:" + strings.TrimPrefix(id, "sha256-")
		out, errs, code = e.run("run", "--stage1="+s, "--insecure-options=http", pinned)
		if code != 0 || !strings.Contains(out, "UID=1234") {
			t.Errorf("run by digest: exit %d\n%s%s", code, out, errs)
		}
		mustContain(t, e.mustRun("image", "list"), "digest-pinned")
		checkOCIStore(t, e)
		// Pods mount its layers: rm refuses while they exist.
		if _, errs, code := e.run("image", "rm", id); code == 0 || !strings.Contains(errs, "in use") {
			t.Errorf("image rm of an image pods use: exit %d: %s", code, errs)
		}
		for _, u := range uuidsIn(e.mustRun("list", "--format=json")) {
			e.mustRun("rm", u) // pods that use the image, or fsck would say so after rm
		}
		e.mustRun("image", "rm", id)
		checkOCIStore(t, e)
		if ents, _ := os.ReadDir(filepath.Join(e.dir, "cas", "layer")); len(ents) != 0 {
			t.Errorf("layers left after image rm: %v", ents)
		}
	})
}

type ociListed struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Digest string `json:"digest"`
	OCI    *struct {
		Digest string   `json:"digest"`
		Layers []string `json:"layers"`
	} `json:"oci"`
}

// checkOCIStore wants fsck clean, with no temp or partial layer about.
func checkOCIStore(t *testing.T, e *env) {
	t.Helper()
	out, errs, code := e.run("fsck")
	// Other tests on this shared machine create and remove the skiff group
	// meanwhile, which turns owners wrong: not this test's concern.
	var probs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" && !strings.Contains(l, ": owner ") {
			probs = append(probs, l)
		}
	}
	if code != 0 && len(probs) > 0 {
		t.Errorf("fsck: exit %d\n%s%s", code, out, errs)
	}
	ents, _ := os.ReadDir(filepath.Join(e.dir, "cas", "layer"))
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), ".tmp-") {
			t.Errorf("partial layer left: %s", en.Name())
		}
	}
}

// A second image sharing the base layer does not download it again, and
// two fetches of one image at once unpack each layer once.
func TestOCISharedLayers(t *testing.T) {
	one := pushProbe(t, "skiff/shared-one", "one")
	two := pushProbe(t, "skiff/shared-two", "two")
	_, _, logPath := registry(t)
	e := newEnv(t)
	base := probeBase(t)
	sum := sha256.Sum256(gzipped(base))
	baseBlob := "sha256:" + hex.EncodeToString(sum[:])
	blobGets := func() int {
		b, _ := os.ReadFile(logPath)
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "GET /v2/") && strings.Contains(l, "/blobs/"+baseBlob) {
				n++
			}
		}
		return n
	}
	before := blobGets()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { e.mustRun("fetch", "--insecure-options=image,http", one) })
	}
	wg.Wait()
	afterOne := blobGets()
	_, errs, code := e.run("fetch", "--insecure-options=image,http", two)
	if code != 0 {
		t.Fatalf("fetch two: %s", errs)
	}
	mustContain(t, errs, "already in the store")
	if got := blobGets() - afterOne; got != 0 {
		t.Errorf("the shared base layer was downloaded %d more times for the second image", got)
	}
	if got := afterOne - before; got < 1 || got > 2 {
		t.Errorf("two concurrent fetches downloaded the base layer %d times", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "cas", "layer")); len(ents) != 3 {
		t.Errorf("cas/layer has %d entries, want 3 (base + two tops): %v", len(ents), ents)
	}
	checkOCIStore(t, e)
}

func gzipped(b []byte) []byte {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(b)
	zw.Close()
	return gz.Bytes()
}

// oci:, oci-archive: and docker-archive: references run (mixed pods:
// TestOCIMixedPod).
func TestOCILocalTransports(t *testing.T) {
	layout := ociProbeImage(t, "local")
	tmp := t.TempDir()
	archive := filepath.Join(tmp, "probe.tar")
	if out, err := exec.Command("tar", "-C", layout, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	dockerArchive := filepath.Join(tmp, "probe-docker.tar")
	skopeo(t, "oci:"+layout+":1", "docker-archive:"+dockerArchive+":skiff/probe:1")
	e := newEnv(t)
	// On a terminal (script(1) makes one), a bar per layer instead of lines.
	tty, err := exec.Command("script", "-qec", "stty cols 100 rows 40; "+strings.Join([]string{skiffBin, "--dir=" + e.dir, "--local-config=" + e.config,
		"--insecure-options=image", "--platform=linux/amd64", "fetch", "oci:" + layout + ":1"}, " "), "/dev/null").CombinedOutput()
	if err != nil || !strings.Contains(string(tty), "layer 2/2 sha256:") || !strings.Contains(string(tty), "MiB") || strings.Contains(string(tty), "fetched") {
		t.Errorf("fetch on a terminal: %v, want a bar per layer:\n%q", err, tty)
	}
	// A terminal of unknown width (0 columns) gets lines: mpb would draw nothing.
	tty, err = exec.Command("script", "-qec", strings.Join([]string{skiffBin, "--dir=" + e.dir, "--local-config=" + e.config,
		"--insecure-options=image", "fetch", "oci:" + layout + ":1"}, " "), "/dev/null").CombinedOutput()
	if err != nil || !strings.Contains(string(tty), "layer 2/2 sha256:") {
		t.Errorf("fetch on a 0-column terminal: %v, want lines:\n%q", err, tty)
	}
	for _, ref := range []string{"oci:" + layout + ":1", "oci-archive:" + archive + ":1", "docker-archive:" + dockerArchive} {
		out, errs, code := e.run("run", "--stage1=ns", "--insecure-options=image", ref)
		if code != 0 || !strings.Contains(out, "UID=1234") {
			t.Errorf("%s: exit %d\n%s%s", ref, code, out, errs)
		}
	}
	// The layout's tag moved to new content: the run sees it.
	ociLayout(t, layout, "1", [][]byte{probeBase(t), layerTar(t, []tarEntry{{name: "marker", body: "moved"}})},
		map[string]any{"Entrypoint": []string{"/bin/probe"}})
	out, errs, code := e.run("run", "--stage1=ns", "--insecure-options=image", "oci:"+layout+":1", "--", "-read-file=/marker")
	if code != 0 || !strings.Contains(out, "READ_FILE=moved") {
		t.Errorf("re-tagged layout: exit %d\n%s%s", code, out, errs)
	}
	checkOCIStore(t, e)
}

// Bad input: a tampered blob in the registry is one line naming the
// digest mismatch, and the store stays clean.
func TestOCITamperedBlob(t *testing.T) {
	ref := pushProbe(t, "skiff/tampered", "tampered")
	_, root, _ := registry(t)
	top := probeTop(t, "tampered")
	sum, diff := sha256.Sum256(gzipped(top)), sha256.Sum256(top)
	h := hex.EncodeToString(sum[:])
	data := filepath.Join(root, "docker", "registry", "v2", "blobs", "sha256", h[:2], h, "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatalf("registry blob: %v", err)
	}
	b[len(b)/2] ^= 0xff
	os.WriteFile(data, b, 0o644)
	e := newEnv(t)
	_, errs, code := e.run("fetch", "--insecure-options=image,http", ref)
	var errLines []string
	for _, l := range strings.Split(errs, "\n") {
		if strings.HasPrefix(l, "skiff:") {
			errLines = append(errLines, l)
		}
	}
	// A flipped byte in a gzip stream is corrupt input before it is a
	// digest mismatch: either way the error names the layer.
	if code == 0 || len(errLines) != 1 || !strings.Contains(errLines[0], "layer sha256:"+hex.EncodeToString(diff[:])[:12]) {
		t.Errorf("tampered blob: exit %d, want one error naming the layer:\n%s", code, errs)
	}
	if out := e.mustRun("image", "list", "--no-legend"); strings.TrimSpace(out) != "" {
		t.Errorf("a refused image is listed:\n%s", out)
	}
	checkOCIStore(t, e)
}

// A fetch killed at any point leaves no partial layer or image visible:
// verify is clean, nothing is listed, gc removes the leftovers, and the
// next fetch works.
func TestOCIKilledMidFetch(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "layout")
	big := layerTar(t, []tarEntry{{name: "big", body: strings.Repeat("\x00", 256<<20)}})
	ociLayout(t, layout, "1", [][]byte{probeBase(t), big}, map[string]any{"Entrypoint": []string{"/bin/probe"}})
	ref := "oci:" + layout + ":1"
	e := newEnv(t)
	for _, after := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond} {
		c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config, "--insecure-options=image", "fetch", ref)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		c.Process.Kill()
		c.Wait()
		if out, _, code := e.run("image", "verify"); code != 0 || !strings.Contains(out, "consistent") {
			t.Errorf("killed after %s: store not consistent (exit %d):\n%s", after, code, out)
		}
		for _, l := range strings.Split(e.mustRun("image", "list", "--no-legend"), "\n") {
			if strings.Contains(l, " oci ") {
				t.Errorf("killed after %s: image listed: %s", after, l)
			}
		}
	}
	// The next fetch restarts each interrupted layer cleanly.
	e.mustRun("--insecure-options=image", "fetch", ref)
	checkOCIStore(t, e)
	// Without a next fetch, image gc removes what a kill left.
	e.mustRun("image", "rm", ref)
	c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config, "--insecure-options=image", "fetch", ref)
	c.Start()
	time.Sleep(300 * time.Millisecond)
	c.Process.Kill()
	c.Wait()
	e.mustRun("image", "gc", "--grace-period=0")
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "cas", "layer")); len(ents) != 0 {
		t.Errorf("after gc: %v", ents)
	}
	if blobs, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "blob-*")); len(blobs) != 0 {
		t.Errorf("layer blob copies left after gc: %v", blobs)
	}
}

// Bad references and images: one line naming the cause, no panic, the
// store unchanged.
func TestOCIBadInput(t *testing.T) {
	addr, _, _ := registry(t)
	ghost := filepath.Join(t.TempDir(), "ghost")
	ociLayout(t, ghost, "1", [][]byte{probeBase(t)}, map[string]any{"Entrypoint": []string{"/bin/probe"}, "User": "ghost"})
	e := newEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--insecure-options=image,http", "fetch", "docker://" + addr + "/skiff/none:1"}, "not found"},
		{[]string{"--insecure-options=image", "fetch", "docker://" + addr + "/skiff/none:1"}, "http"},
		{[]string{"--insecure-options=image", "fetch", "oci:" + ghost + ":1"}, `user "ghost"`},
		{[]string{"--insecure-options=image", "fetch", "oci:" + ghost + ":2"}, "2"},
		{[]string{"--insecure-options=image", "fetch", "oci:/nonexistent/layout:1"}, "/nonexistent/layout"},
		{[]string{"--insecure-options=image", "fetch", "docker:busybox"}, "docker://"},
		{[]string{"--insecure-options=image", "run", "--stage1=ns", "docker://" + addr + "/Upper/case"}, "Upper"},
		{[]string{"--insecure-options=image", "--platform=linux/arm64", "fetch", "oci:" + ghost + ":1"}, "linux/arm64"},
		{[]string{"--insecure-options=image", "--platform=linux", "fetch", "oci:" + ghost + ":1"}, "os/arch"},
	} {
		_, errs, code := e.run(tt.args...)
		var lines []string
		for _, l := range strings.Split(errs, "\n") {
			if strings.HasPrefix(l, "skiff:") {
				lines = append(lines, l)
			}
		}
		t.Logf("%v: %s", tt.args[len(tt.args)-1], errs)
		if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], tt.want) || strings.Contains(errs, "goroutine") {
			t.Errorf("%v: exit %d, want one error line naming %q:\n%s", tt.args, code, tt.want, errs)
		}
	}
	for _, l := range strings.Split(e.mustRun("image", "list", "--no-legend"), "\n") {
		if strings.Contains(l, " oci ") {
			t.Errorf("image listed: %s", l)
		}
	}
	checkOCIStore(t, e)
}

// The image's StopSignal is what skiff stop sends the app.
func TestOCIStopSignal(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "layout")
	ociLayout(t, layout, "1", [][]byte{probeBase(t)}, map[string]any{"Entrypoint": []string{"/bin/probe", "-sleep=300s"}, "StopSignal": "SIGINT"})
	e := newEnv(t)
	save := filepath.Join(t.TempDir(), "uuid")
	c, out := e.start("run", "--stage1=ns", "--insecure-options=image", "--uuid-file-save="+save, "oci:"+layout+":1")
	var uuid string
	waitFor(t, "the pod to be ready", 2*time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		_, _, code := e.run("status", "--wait-ready=1s", uuid)
		return uuid != "" && code == 0
	})
	e.mustRun("stop", uuid)
	c.Wait()
	if !strings.Contains(out.String(), "SIGNAL=interrupt") {
		t.Errorf("the app was not stopped by SIGINT:\n%s", out)
	}
	e.mustRun("rm", uuid)
}
