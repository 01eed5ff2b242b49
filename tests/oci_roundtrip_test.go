//go:build e2e

package tests

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The OCI round trip (fetch → tag → push → fetch back by digest), the
// image commands on OCI images, and images made by other tools: umoci
// (layers with whiteouts, a hard link), podman save (docker-archive), and
// an index with two platforms, one of them with a zstd layer.

// TestOCIRoundTrip: an image fetched, tagged and pushed keeps its digest
// and comes back by digest from its new name; export, extract, render,
// cat-manifest and verify work on it; a damaged stored blob is never
// uploaded and verify finds it; a damaged layer tree is found too.
func TestOCIRoundTrip(t *testing.T) {
	ref := pushProbe(t, "skiff/rt", "rt")
	addr, _, _ := registry(t)
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image,http", ref))
	digest := "sha256:" + strings.TrimPrefix(id, "sha256-")

	// cat-manifest prints the manifest as fetched: it hashes to the digest.
	sum := sha256.Sum256([]byte(e.mustRun("image", "cat-manifest", id)))
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		t.Errorf("cat-manifest hashes to %s, want %s", got, digest)
	}

	copyRef := "docker://" + addr + "/skiff/rt-copy:2"
	e.mustRun("image", "tag", id, copyRef)
	mustContain(t, e.mustRun("image", "list"), addr+"/skiff/rt-copy", addr+"/skiff/rt ")
	if _, errs, code := e.run("image", "tag", id, "docker://"+addr+"/x@"+digest); code != 2 || !strings.Contains(errs, "TAG") {
		t.Errorf("tag by digest: exit %d: %s", code, errs)
	}
	// Plain http only when asked for.
	if _, errs, code := e.run("image", "push", copyRef); code == 0 || !strings.Contains(errs, "http") {
		t.Errorf("push over plain http without the option: exit %d: %s", code, errs)
	}
	out, errs, code := e.run("--insecure-options=http", "image", "push", copyRef)
	if code != 0 || strings.TrimSpace(out) != "docker://"+addr+"/skiff/rt-copy@"+digest {
		t.Fatalf("push: exit %d, printed %q\n%s", code, out, errs)
	}
	mustContain(t, errs, "uploaded")
	// The registry serves the manifest under the tag with the same digest.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/skiff/rt-copy/manifests/2", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		t.Errorf("the registry's manifest for rt-copy:2 does not hash to %s", digest)
	}
	// Pushed again, every blob is already there.
	_, errs, _ = e.run("--insecure-options=http", "image", "push", id, copyRef)
	if strings.Contains(errs, "uploaded") || !strings.Contains(errs, "already in the registry") {
		t.Errorf("second push uploaded again:\n%s", errs)
	}

	// Back by digest from the new name, into a fresh store: same ID, runs.
	e2 := newEnv(t)
	pinned := "docker://" + addr + "/skiff/rt-copy@" + digest
	if got := strings.TrimSpace(e2.mustRun("fetch", "--full", "--insecure-options=http", pinned)); got != id {
		t.Errorf("fetched back as %s, want %s", got, id)
	}
	out, errs, code = e2.run("run", "--stage1=ns", "--insecure-options=http", pinned, "--", "-read-file=/marker")
	if code != 0 || !strings.Contains(out, "READ_FILE=rt") {
		t.Errorf("run of the pushed image: exit %d\n%s%s", code, out, errs)
	}

	// export writes an oci-archive that comes back as the same image.
	archive := filepath.Join(t.TempDir(), "rt.tar")
	e.mustRun("image", "export", id, archive)
	if got := strings.TrimSpace(e2.mustRun("fetch", "--full", "--insecure-options=image", "oci-archive:"+archive+":1")); got != id {
		t.Errorf("export re-imported as %s, want %s", got, id)
	}
	// extract merges the layers: whiteout and opaque dir applied.
	dir := filepath.Join(t.TempDir(), "rootfs")
	e.mustRun("image", "extract", "--rootfs-only", id, dir)
	if b, err := os.ReadFile(filepath.Join(dir, "marker")); err != nil || string(b) != "rt" {
		t.Errorf("extract: marker %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "motd")); err != nil || string(b) != "hello" {
		t.Errorf("extract: /motd (symlink to a hard link below) %q %v", b, err)
	}
	for _, p := range []string{"gone", "opq/old"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("extract: /%s not hidden", p)
		}
	}
	// render prints the layer trees, top first.
	if dirs := strings.Fields(e.mustRun("image", "render", id)); len(dirs) != 2 || !strings.Contains(dirs[0], "/cas/layer/") {
		t.Errorf("render: %v", dirs)
	}

	// A damaged layer blob in the store: push refuses it (nothing of it in
	// the registry), export refuses it, verify names it.
	top := probeTop(t, "rt")
	blobSum := sha256.Sum256(gzipped(top))
	blob := filepath.Join(e.dir, "cas", "blobs", "sha256", hex.EncodeToString(blobSum[:]))
	good, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the top layer's blob is not kept: %v", err)
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(blob, bad, 0o600)
	_, errs, code = e.run("--insecure-options=http", "image", "push", id, "docker://"+addr+"/skiff/rt-bad:1")
	if code == 0 || !strings.Contains(errs, "digest mismatch") || strings.Count(errs, "skiff:") != 1 {
		t.Errorf("push of a damaged blob: exit %d, want one line naming the digest mismatch:\n%s", code, errs)
	}
	if resp, err := http.Head("http://" + addr + "/v2/skiff/rt-bad/blobs/sha256:" + hex.EncodeToString(blobSum[:])); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("the damaged blob reached the registry: %v %v", resp.Status, err)
	}
	if resp, err := http.Head("http://" + addr + "/v2/skiff/rt-bad/manifests/1"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("a manifest was pushed after a failed blob: %v %v", resp.Status, err)
	}
	if _, errs, code := e.run("image", "export", id, filepath.Join(t.TempDir(), "bad.tar")); code == 0 || !strings.Contains(errs, "corrupt") {
		t.Errorf("export of a damaged blob: exit %d: %s", code, errs)
	}
	if out, _, code := e.run("image", "verify"); code == 0 || !strings.Contains(out, "corrupt blob") {
		t.Errorf("verify of a damaged layer blob: exit %d\n%s", code, out)
	}
	os.WriteFile(blob, good, 0o600)
	// A damaged layer tree is found by verify.
	diff := sha256.Sum256(top)
	marker := filepath.Join(e.dir, "cas", "layer", hex.EncodeToString(diff[:]), "rootfs", "marker")
	os.WriteFile(marker, []byte("changed"), 0o644)
	if out, _, code := e.run("image", "verify"); code == 0 || !strings.Contains(out, "damaged tree") {
		t.Errorf("verify of a damaged layer tree: exit %d\n%s", code, out)
	}
	e.mustRun("image", "verify", "--repair")
	if out := e.mustRun("image", "list", "--no-legend"); strings.Contains(out, "skiff/rt") {
		t.Errorf("the image of a repaired layer is still listed:\n%s", out)
	}
	checkOCIStore(t, e)
	checkOCIStore(t, e2)
}

// umociProbe builds the probe with Debian's umoci: a base layer with a
// passwd, a hard link and files the second layer deletes (umoci writes
// them as whiteouts), then a config with a user by name, a volume and a
// port.
func umociProbe(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Fatal("umoci missing: run tests/install-deps.sh (make test does)")
	}
	tmp := t.TempDir()
	layout, bundle := filepath.Join(tmp, "layout"), filepath.Join(tmp, "bundle")
	sh := func(script string) {
		t.Helper()
		c := exec.Command("sh", "-ec", script)
		c.Env = append(os.Environ(), "L="+layout, "B="+bundle, "PROBE="+image(t, "probe"))
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	sh(`umoci init --layout "$L"; umoci new --image "$L:1"; umoci unpack --image "$L:1" "$B"
		R="$B/rootfs"; mkdir -p "$R/bin" "$R/etc" "$R/opq"; cp "$PROBE" "$R/bin/probe"
		printf 'root:x:0:0::/:/bin/sh\napp:x:1234:4321::/:/bin/sh\n' > "$R/etc/passwd"
		printf 'root:x:0:\napp:x:4321:\n' > "$R/etc/group"
		echo -n hello > "$R/etc/motd"; ln "$R/etc/motd" "$R/etc/motd.hard"
		echo x > "$R/gone"; echo old > "$R/opq/old"
		umoci repack --refresh-bundle --image "$L:1" "$B"
		rm "$R/gone" "$R/opq/old"; echo -n umoci > "$R/marker"; ln -s etc/motd.hard "$R/motd"
		umoci repack --image "$L:1" "$B"
		umoci config --image "$L:1" --config.entrypoint /bin/probe --config.user app --config.workingdir /opq \
			--config.env FROM_UMOCI=yes --config.volume /data --config.exposedports 8080/tcp`)
	return layout
}

// platformImage pushes an index of two images: linux/amd64, whose top
// layer is zstd-compressed, and linux/arm64 (the same probe inside; only
// the choice is tested).
var platformImage = struct {
	once sync.Once
	ref  string
}{}

func pushPlatformImage(t *testing.T) string {
	t.Helper()
	platformImage.once.Do(func() {
		addr, _, _ := registry(t)
		dir := filepath.Join(t.TempDir(), "layout")
		cfg := map[string]any{"Entrypoint": []string{"/bin/probe"}, "Env": []string{"FROM_INDEX=yes"}}
		amd := ociManifest(t, dir, [][]byte{probeBase(t), layerTar(t, []tarEntry{{name: "marker", body: "amd64-zstd"}})}, map[int]bool{1: true}, "amd64", cfg)
		arm := ociManifest(t, dir, [][]byte{probeBase(t), layerTar(t, []tarEntry{{name: "marker", body: "arm64"}})}, nil, "arm64", cfg)
		// The layout's tag names the index (skopeo copies one image).
		idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{amd, arm}})
		d, n := ociBlob(t, dir, idx)
		ociIndex(t, dir, map[string]any{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": n,
			"annotations": map[string]string{"org.opencontainers.image.ref.name": "1"}})
		platformImage.ref = "docker://" + addr + "/skiff/multi:1"
		skopeo(t, "--all", "oci:"+dir+":1", platformImage.ref)
	})
	if platformImage.ref == "" {
		t.Fatal("the two-platform image was not pushed")
	}
	return platformImage.ref
}

// TestOCIMixedPod: an ACI app, an image umoci built and an image from a
// two-platform index with a zstd layer, in one pod, on both stage1s; on
// ns, the umoci image's whiteouts and config, --platform and a
// docker-archive that podman saved.
func TestOCIMixedPod(t *testing.T) {
	multi := pushPlatformImage(t)
	layout := umociProbe(t)
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, errs, code := e.run("run", "--stage1="+s, "--insecure-options=image,http",
			image(t, "probe.aci"), "--", "-print-env=AC_APP_NAME",
			"---", "oci:"+layout+":1", "--", "-print-env=FROM_UMOCI", "-print-user", "-print-cwd", "-read-file=/motd", "-check-masked=/gone",
			"---", multi, "--", "-print-env=FROM_INDEX", "-read-file=/marker")
		if code != 0 {
			t.Fatalf("mixed pod: exit %d\n%s%s", code, out, errs)
		}
		mustContain(t, out, "AC_APP_NAME=probe", "FROM_UMOCI=yes", "UID=1234", "GID=4321", "CWD=/opq",
			"READ_FILE=hello", "MASKED_EXISTS=false", "FROM_INDEX=yes", "READ_FILE=amd64-zstd")
		if s != "ns" {
			return
		}
		// umoci's whiteout of a file in a directory hides it too.
		out, errs, code = e.run("run", "--stage1=ns", "--insecure-options=image", "oci:"+layout+":1", "--", "-check-masked=/opq/old")
		if code != 0 || !strings.Contains(out, "MASKED_EXISTS=false") {
			t.Errorf("/opq/old visible: exit %d\n%s%s", code, out, errs)
		}
		mustContain(t, e.mustRun("--insecure-options=image", "image", "cat-manifest", "--app", "oci:"+layout+":1"),
			`"8080-tcp"`, `"volume-data"`, `"group": "4321"`)
		// --platform picks the other manifest of the index.
		out, errs, code = e.run("--platform=linux/arm64", "run", "--stage1=ns", "--insecure-options=image,http", multi, "--", "-read-file=/marker")
		if code != 0 || !strings.Contains(out, "READ_FILE=arm64") {
			t.Errorf("--platform=linux/arm64: exit %d\n%s%s", code, out, errs)
		}
		// podman save of an image podman imported: a docker-archive.
		archive := podmanSave(t)
		out, errs, code = e.run("run", "--stage1=ns", "--insecure-options=image", "docker-archive:"+archive, "--", "-print-env=FROM_PODMAN", "-print-user")
		if code != 0 || !strings.Contains(out, "FROM_PODMAN=yes") || !strings.Contains(out, "UID=1234") {
			t.Errorf("podman docker-archive: exit %d\n%s%s", code, out, errs)
		}
		checkOCIStore(t, e)
	})
}

// podmanSave imports a rootfs with the probe into a podman store of its
// own (so nothing of the host's is touched) and saves it as a
// docker-archive.
func podmanSave(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman missing: run tests/install-deps.sh (make test does)")
	}
	tmp := t.TempDir()
	probe, err := os.ReadFile(image(t, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(tmp, "rootfs.tar")
	os.WriteFile(rootfs, layerTar(t, []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/probe", body: string(probe), mode: 0o755},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", body: "root:x:0:0::/:/bin/sh\napp:x:1234:4321::/:/bin/sh\n"},
	}), 0o644)
	podman := []string{"--root=" + filepath.Join(tmp, "root"), "--runroot=" + filepath.Join(tmp, "run"),
		"--storage-driver=vfs", "--cgroup-manager=cgroupfs", "--runtime=runc"}
	archive := filepath.Join(tmp, "saved.tar")
	for _, args := range [][]string{
		{"import", "--change", `ENTRYPOINT ["/bin/probe"]`, "--change", "USER app", "--change", "ENV FROM_PODMAN=yes", rootfs, "localhost/skiff/podman-probe:1"},
		{"save", "--format=docker-archive", "-o", archive, "localhost/skiff/podman-probe:1"},
	} {
		if out, err := exec.Command("podman", append(podman, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("podman %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("podman", append(podman, "rmi", "-a", "-f")...).Run() })
	return archive
}
