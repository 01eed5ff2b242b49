package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/skiffpod/skiff/pkg/aci"
)

// The oci section: skiff against podman and skopeo on OCI images served by
// one local docker-registry on loopback (plain http), built here offline:
//
//	big    5 layers, ~123 MB uncompressed: a base (busybox and redis
//	       rootfs from bin/images), then 4 layers of 25 MB of random hex
//	       text (compresses to about half, as binaries and data do)
//	second the base layer of big and one 5 MB data layer of its own
//	small  busybox and one 3 MB data layer (~5 MB)
//
// plus big's rootfs as an ACI (the same files) for skiff's ACI run.
var (
	ociParts  = flag.String("oci", "fetch,share,run,prepare", "parts of the oci section to run: fetch, share, run, prepare")
	ociFetchN = flag.Int("oci-fetch-n", 10, "runs per contender for the oci fetch comparison")
)

// ociBench is the registry, images and peers' state the oci parts share.
type ociBench struct {
	cfg      config
	dir      string
	addr     string // the registry's host:port
	regLog   string // its access log
	stop     func()
	big      string // references without transport, ADDR/bench/NAME:1
	second   string
	small    string
	baseBlob string // digest of the base layer's blob
	aciFile  string // big's rootfs as an ACI
	sizes    map[string]int64
}

func benchOCI(ctx context.Context, cfg config) error {
	if err := needTools(map[string]string{"docker-registry": "docker-registry", "skopeo": "skopeo", "podman": "podman",
		"runc": "runc", "systemd-nspawn": "systemd-container"}); err != nil {
		return err
	}
	parts := map[string]func(*ociBench, context.Context) error{
		"fetch": (*ociBench).fetch, "share": (*ociBench).share, "run": (*ociBench).run, "prepare": (*ociBench).prepare,
	}
	var todo []string
	for _, p := range strings.Split(*ociParts, ",") {
		if parts[p] == nil {
			return fmt.Errorf("unknown oci part %q (want fetch, share, run, prepare)", p)
		}
		todo = append(todo, p)
	}
	o, err := setupOCI(ctx, cfg)
	if err != nil {
		return err
	}
	defer o.close(ctx)
	for _, p := range todo {
		if err := parts[p](o, ctx); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

func setupOCI(ctx context.Context, cfg config) (*ociBench, error) {
	o := &ociBench{cfg: cfg, dir: filepath.Join(cfg.scratch, "oci"), sizes: map[string]int64{}}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	if err := o.startRegistry(); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := o.buildImages(ctx); err != nil {
		o.stop()
		return nil, err
	}
	fmt.Printf("\noci: images built and pushed to the registry on %s in %s\n", o.addr, ms(time.Since(start)))
	return o, nil
}

// startRegistry starts Debian's docker-registry on a free loopback port,
// its log (a "response completed" line per request, with the bytes
// written) in a file.
func (o *ociBench) startRegistry() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	o.addr = l.Addr().String()
	l.Close()
	cfgFile := filepath.Join(o.dir, "registry.yml")
	o.regLog = filepath.Join(o.dir, "registry.log")
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(o.dir, "registry"), o.addr)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(o.regLog)
	if err != nil {
		return err
	}
	cmd := exec.Command("docker-registry", "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	o.stop = func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() }
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", o.addr); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			o.stop()
			return fmt.Errorf("docker-registry on %s did not start (log %s)", o.addr, o.regLog)
		}
	}
}

func (o *ociBench) close(ctx context.Context) {
	// podman's storage: its images go, so no mount is left below scratch.
	output(ctx, nil, "podman", o.podman("rmi", "-a", "-f")...)
	o.stop()
}

// aciRootfs returns the rootfs entries of an ACI as layer entries (the
// "rootfs/" prefix cut, the manifest left out), with their contents.
func aciRootfs(path string) ([]layerEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := aci.Decompress(f)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var es []layerEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return es, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		name, ok := strings.CutPrefix(h.Name, "rootfs/")
		if !ok || name == "" {
			continue
		}
		h.Name = name
		if h.Typeflag == tar.TypeLink {
			h.Linkname = strings.TrimPrefix(h.Linkname, "rootfs/")
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		es = append(es, layerEntry{h, body})
	}
}

type layerEntry struct {
	h    *tar.Header
	body []byte
}

// dataLayer is n files of size bytes of random hex text under dir,
// seeded by seed: the same bytes in every run.
func dataLayer(dir string, seed uint64, n, size int) []layerEntry {
	rng := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	mt := time.Unix(1700000000, 0)
	es := []layerEntry{{&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}, nil}}
	raw := make([]byte, size/2)
	for i := range n {
		for j := 0; j < len(raw); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(raw); k++ {
				raw[j+k] = byte(v >> (8 * k))
			}
		}
		body := []byte(hex.EncodeToString(raw))
		es = append(es, layerEntry{&tar.Header{Name: fmt.Sprintf("%s/f%03d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644,
			Size: int64(len(body)), ModTime: mt}, body})
	}
	return es
}

// prefixed returns es with prefix before every name and hard link target.
func prefixed(prefix string, es []layerEntry) []layerEntry {
	out := make([]layerEntry, len(es))
	for i, e := range es {
		h := *e.h
		h.Name = prefix + h.Name
		if h.Typeflag == tar.TypeLink {
			h.Linkname = prefix + h.Linkname
		}
		out[i] = layerEntry{&h, e.body}
	}
	return out
}

func tarOf(es []layerEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		if err := tw.WriteHeader(e.h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), tw.Close()
}

// ociLayout writes an OCI image layout at dir holding one image tagged
// "1" with the given layers (plain tars, gzipped here) and returns the
// gzipped blobs' digests.
func ociLayout(dir string, layers [][]byte) ([]string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	blob := func(b []byte) (string, int, error) {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		return "sha256:" + h, len(b), os.WriteFile(filepath.Join(dir, "blobs", "sha256", h), b, 0o644)
	}
	// Layers are compressed in parallel: most of the build's time.
	gzs := make([][]byte, len(layers))
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Go(func() {
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(l)
			zw.Close()
			gzs[i] = gz.Bytes()
		})
	}
	wg.Wait()
	var diffIDs, digests []string
	var descs []map[string]any
	for i, l := range layers {
		sum := sha256.Sum256(l)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
		d, n, err := blob(gzs[i])
		if err != nil {
			return nil, err
		}
		digests = append(digests, d)
		descs = append(descs, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/bin/sh"}, "Env": []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cd, cn, err := blob(cfg)
	if err != nil {
		return nil, err
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs})
	md, mn, err := blob(man)
	if err != nil {
		return nil, err
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{"mediaType": "application/vnd.oci.image.manifest.v1+json",
		"digest": md, "size": mn, "annotations": map[string]string{"org.opencontainers.image.ref.name": "1"}}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		return nil, err
	}
	return digests, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// buildImages builds the three images, pushes them with skopeo and writes
// big's rootfs as an ACI.
func (o *ociBench) buildImages(ctx context.Context) error {
	busybox, err := aciRootfs(filepath.Join(o.cfg.images, "busybox.aci"))
	if err != nil {
		return err
	}
	redis, err := aciRootfs(filepath.Join(o.cfg.images, "redis.aci"))
	if err != nil {
		return err
	}
	// The base: busybox, then what redis adds (a name once, busybox's).
	base := busybox
	have := map[string]bool{}
	for _, e := range busybox {
		have[strings.TrimSuffix(e.h.Name, "/")] = true
	}
	for _, e := range redis {
		if !have[strings.TrimSuffix(e.h.Name, "/")] {
			base = append(base, e)
		}
	}
	tars := func(layers ...[]layerEntry) ([][]byte, int64, error) {
		var out [][]byte
		var n int64
		for _, l := range layers {
			t, err := tarOf(l)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, t)
			n += int64(len(t))
		}
		return out, n, nil
	}
	bigLayers := [][]layerEntry{base}
	for i := range 4 {
		bigLayers = append(bigLayers, dataLayer(fmt.Sprintf("data%d", i), uint64(i+1), 100, 250<<10))
	}
	images := []struct {
		name   string
		ref    *string
		layers [][]layerEntry
	}{
		{"big", &o.big, bigLayers},
		{"second", &o.second, [][]layerEntry{base, dataLayer("second", 100, 20, 250<<10)}},
		{"small", &o.small, [][]layerEntry{busybox, dataLayer("small", 200, 12, 250<<10)}},
	}
	for _, img := range images {
		ts, n, err := tars(img.layers...)
		if err != nil {
			return err
		}
		layout := filepath.Join(o.dir, "layout-"+img.name)
		digests, err := ociLayout(layout, ts)
		if err != nil {
			return err
		}
		if img.name == "big" {
			o.baseBlob = digests[0]
		}
		*img.ref = o.addr + "/bench/" + img.name + ":1"
		o.sizes[img.name] = n
		if _, err := output(ctx, nil, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:"+layout+":1", "docker://"+*img.ref); err != nil {
			return err
		}
		if err := os.RemoveAll(layout); err != nil {
			return err
		}
	}
	// big's rootfs as an ACI: the same entries, layer by layer.
	var all []layerEntry
	for _, l := range bigLayers {
		all = append(all, l...)
	}
	man := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"bench/big-aci","labels":[{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],` +
		`"app":{"exec":["/bin/sh"],"user":"0","group":"0"}}`
	mt := time.Unix(1700000000, 0)
	aciTar, err := tarOf(append([]layerEntry{
		{&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(man)), ModTime: mt}, []byte(man)},
		{&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}, nil},
	}, prefixed("rootfs/", all)...))
	if err != nil {
		return err
	}
	o.aciFile = filepath.Join(o.dir, "big.aci")
	f, err := os.Create(o.aciFile)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	zw.Write(aciTar)
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// skiffArgs is skiff's argv for a store dir, with the global flags.
func (o *ociBench) skiffArgs(store string, args ...string) []string {
	return append([]string{"--dir=" + store, "--local-config=" + filepath.Join(o.dir, "config"), "--insecure-options=image,http"}, args...)
}

// podman's argv: its own storage below scratch, runc and cgroupfs (crun
// refuses this host's hybrid cgroup layout; PID 1 is not systemd).
func (o *ociBench) podman(args ...string) []string {
	p := filepath.Join(o.dir, "podman")
	return append([]string{"--root=" + filepath.Join(p, "root"), "--runroot=" + filepath.Join(p, "run"), "--tmpdir=" + filepath.Join(p, "tmp"),
		"--storage-driver=overlay", "--runtime=runc", "--cgroup-manager=cgroupfs", "--events-backend=file"}, args...)
}

// freshDir runs f in a new directory below the oci scratch, removed
// (untimed) afterwards.
func (o *ociBench) freshDir(name string, f func(d string) (time.Duration, error)) func() (time.Duration, error) {
	id := 0
	return func() (time.Duration, error) {
		id++
		d := filepath.Join(o.dir, name+"-"+strconv.Itoa(id))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		t, err := f(d)
		if err != nil {
			return t, err
		}
		return t, os.RemoveAll(d)
	}
}

func (o *ociBench) fetchContenders(ctx context.Context) []contender {
	return []contender{
		{"skiff fetch (empty store)", o.freshDir("skiff-fetch", func(d string) (time.Duration, error) {
			return timeCmd(ctx, nil, o.cfg.skiff, o.skiffArgs(d, "fetch", "docker://"+o.big)...)
		})},
		{"podman pull (empty storage)", func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, "podman", o.podman("pull", "--quiet", "--tls-verify=false", o.big)...)
			if err != nil {
				return d, err
			}
			_, err = output(ctx, nil, "podman", o.podman("rmi", "-a", "-f")...)
			return d, err
		}},
		{"skopeo copy docker:// oci: (empty dir)", o.freshDir("skopeo", func(d string) (time.Duration, error) {
			return timeCmd(ctx, nil, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+o.big, "oci:"+filepath.Join(d, "layout")+":1")
		})},
	}
}

// fetch times a cold fetch of big by each contender.
func (o *ociBench) fetch(ctx context.Context) error {
	cs := o.fetchContenders(ctx)
	runs, err := interleave(*ociFetchN, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, fmt.Sprintf("oci: fetch a %d-layer image of %.0f MB (%.0f MB gzipped) from a local registry",
		5, float64(o.sizes["big"])/1e6, float64(o.served(o.big))/1e6), cs, runs, 1)
	target(os.Stdout, "skiff fetch ≤ 0.8× podman pull", ratio(sums[0].median, sums[1].median), 0.8)
	return nil
}

// target prints a target line with MET or NOT MET.
func target(w io.Writer, what string, r, limit float64) {
	verdict := "MET"
	if r > limit {
		verdict = "NOT MET"
	}
	fmt.Fprintf(w, "target %s: %s (%.2f×)\n", what, verdict, r)
}

// served is the size of what the registry holds for ref's layers and
// config (from skopeo's view of the manifest).
func (o *ociBench) served(ref string) int64 {
	out, err := output(context.Background(), nil, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
	if err != nil {
		return 0
	}
	var m struct {
		Config struct{ Size int64 }
		Layers []struct{ Size int64 }
	}
	json.Unmarshal([]byte(out), &m)
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// transfer is what the registry served during one command: bytes in
// response bodies and the blobs fetched.
type transfer struct {
	bytes int64
	blobs []string
}

// logLine is one request in docker-registry's log (logrus text format).
var logLine = regexp.MustCompile(`msg="response completed".*http\.request\.method=(\w+).*http\.request\.uri="([^"]+)".*http\.response\.written=(\d+)`)

// counted runs f and returns what the registry served meanwhile, read
// from its log (it logs each request once the response is complete).
func (o *ociBench) counted(f func() error) (transfer, error) {
	before, err := os.Stat(o.regLog)
	if err != nil {
		return transfer{}, err
	}
	if err := f(); err != nil {
		return transfer{}, err
	}
	time.Sleep(200 * time.Millisecond) // the last line is written after the response
	lf, err := os.Open(o.regLog)
	if err != nil {
		return transfer{}, err
	}
	defer lf.Close()
	if _, err := lf.Seek(before.Size(), io.SeekStart); err != nil {
		return transfer{}, err
	}
	return parseRegistryLog(lf)
}

// parseRegistryLog adds up the requests in a docker-registry log: the
// bytes of all response bodies and the blobs fetched with a GET.
func parseRegistryLog(r io.Reader) (transfer, error) {
	var t transfer
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[3], 10, 64)
		t.bytes += n
		if i := strings.Index(m[2], "/blobs/"); i >= 0 && m[1] == "GET" && n > 0 {
			t.blobs = append(t.blobs, m[2][i+len("/blobs/"):])
		}
	}
	return t, sc.Err()
}

// share fetches big, then second (which shares big's base layer) into one
// store with each tool, and reports the bytes the registry served.
func (o *ociBench) share(ctx context.Context) error {
	skiffStore := filepath.Join(o.cfg.scratch, "oci-share", "store") // where cleanup looks
	skopeoDir := filepath.Join(o.dir, "share-skopeo", "layout")
	defer os.RemoveAll(skiffStore)
	defer os.RemoveAll(filepath.Dir(skopeoDir))
	if err := os.MkdirAll(filepath.Dir(skopeoDir), 0o755); err != nil {
		return err
	}
	if _, err := output(ctx, nil, "podman", o.podman("rmi", "-a", "-f")...); err != nil {
		return err
	}
	tools := []struct {
		name string
		get  func(ref string) error
	}{
		{"skiff fetch", func(ref string) error {
			_, err := output(ctx, nil, o.cfg.skiff, o.skiffArgs(skiffStore, "fetch", "docker://"+ref)...)
			return err
		}},
		{"podman pull", func(ref string) error {
			_, err := output(ctx, nil, "podman", o.podman("pull", "--quiet", "--tls-verify=false", ref)...)
			return err
		}},
		{"skopeo copy", func(ref string) error {
			tag := strings.TrimPrefix(ref[strings.LastIndex(ref, "/"):], "/")
			_, err := output(ctx, nil, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+skopeoDir+":"+strings.ReplaceAll(tag, ":", "-"))
			return err
		}},
	}
	fmt.Printf("\noci: bytes the registry served: big, then second (which shares big's %s base layer), into one store\n", o.baseBlob[:19])
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tbig\tsecond\tblobs for second\tbase layer again\t\n")
	var errs []error
	for _, tool := range tools {
		var ts [2]transfer
		for i, ref := range []string{o.big, o.second} {
			t, err := o.counted(func() error { return tool.get(ref) })
			if err != nil {
				return err
			}
			ts[i] = t
		}
		again := "no"
		for _, b := range ts[1].blobs {
			if b == o.baseBlob {
				again = "YES"
				if tool.name == "skiff fetch" {
					errs = append(errs, errors.New("skiff fetched the shared base layer again"))
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%.2f MB\t%.2f MB\t%d\t%s\t\n", tool.name, float64(ts[0].bytes)/1e6, float64(ts[1].bytes)/1e6, len(ts[1].blobs), again)
	}
	tw.Flush()
	if _, err := output(ctx, nil, "podman", o.podman("rmi", "-a", "-f")...); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// run times /bin/true in big: skiff from the OCI image, skiff from the
// same rootfs as an ACI, and podman run --rm (runc); no network for any.
func (o *ociBench) run(ctx context.Context) error {
	store := filepath.Join(o.cfg.scratch, "oci-run", "store") // where cleanup looks
	ociRun := o.skiffArgs(store, "run", "--net=none", "docker://"+o.big, "--exec=/bin/true")
	aciRun := o.skiffArgs(store, "run", "--net=none", o.aciFile, "--exec=/bin/true")
	podRun := o.podman("run", "--rm", "--network=none", "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096", o.big, "/bin/true")
	gc := func() error {
		_, err := output(ctx, nil, o.cfg.skiff, o.skiffArgs(store, "gc", "--grace-period=0")...)
		return err
	}
	// Warm-up: fetches, renders, imports the stage1, pulls for podman.
	if _, err := output(ctx, nil, "podman", o.podman("pull", "--quiet", "--tls-verify=false", o.big)...); err != nil {
		return err
	}
	for _, argv := range [][]string{ociRun, aciRun} {
		if _, err := output(ctx, nil, o.cfg.skiff, argv...); err != nil {
			return err
		}
	}
	if _, err := output(ctx, nil, "podman", podRun...); err != nil {
		return err
	}
	if err := gc(); err != nil {
		return err
	}
	skiffRun := func(argv []string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, o.cfg.skiff, argv...)
			if err != nil {
				return d, err
			}
			return d, gc()
		}
	}
	cs := []contender{
		{"skiff run docker://…/big (OCI)", skiffRun(ociRun)},
		{"skiff run big.aci (same rootfs)", skiffRun(aciRun)},
		{"podman run --rm (runc)", func() (time.Duration, error) { return timeCmd(ctx, nil, "podman", podRun...) }},
	}
	runs, err := interleave(o.cfg.n, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, "oci: /bin/true in big, stage1-ns, no network", cs, runs, 1)
	target(os.Stdout, "OCI run ≤ 1.1× ACI run", ratio(sums[0].median, sums[1].median), 1.1)
	target(os.Stdout, "OCI run ≤ 0.5× podman run", ratio(sums[0].median, sums[2].median), 0.5)
	evs, err := traceRun(ctx, o.dir, nil, o.cfg.skiff, ociRun...)
	if err != nil {
		return err
	}
	printBreakdown(os.Stdout, "oci: breakdown of one traced skiff run of big (execve trace; slower than the median):", evs, nsPhases)
	if err := gc(); err != nil {
		return err
	}
	if evs, err = traceRun(ctx, o.dir, nil, "podman", podRun...); err != nil {
		return err
	}
	// The last event is podman's own exit (its cleanup child exits before).
	evs = append(evs, event{evs[len(evs)-1].at, "end"})
	printBreakdown(os.Stdout, "oci: breakdown of one traced podman run (execve trace; slower than the median):", evs, []phase{
		{"podman: storage, container, mount; exec conmon", regexp.MustCompile(`^exec \S*/conmon `)},
		{"conmon, runc create and start: to the app's exec", regexp.MustCompile(`^exec /bin/true `)},
		{"the app (/bin/true)", regexp.MustCompile(`^exit /bin/true$`)},
		{"cleanup (podman container cleanup, --rm), exit", regexp.MustCompile(`^end$`)},
	})
	_, err = output(ctx, nil, "podman", o.podman("rmi", "-a", "-f")...)
	return err // the store goes with the scratch dir, after cleanup's gc
}

// prepare times skiff prepare of big against small, both in the store.
func (o *ociBench) prepare(ctx context.Context) error {
	store := filepath.Join(o.cfg.scratch, "oci-prepare", "store") // where cleanup looks
	prep := func(img string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			start := time.Now()
			uuid, err := output(ctx, nil, o.cfg.skiff, o.skiffArgs(store, "prepare", img, "--exec=/bin/true")...)
			d := time.Since(start)
			if err != nil {
				return d, err
			}
			_, err = output(ctx, nil, o.cfg.skiff, o.skiffArgs(store, "rm", strings.TrimSpace(uuid))...)
			return d, err
		}
	}
	cs := []contender{
		{fmt.Sprintf("skiff prepare big (%.0f MB, 5 layers)", float64(o.sizes["big"])/1e6), prep("docker://" + o.big)},
		{fmt.Sprintf("skiff prepare small (%.1f MB, 2 layers)", float64(o.sizes["small"])/1e6), prep("docker://" + o.small)},
		// stage0's share of the OCI-vs-ACI run, without a pod's noise.
		{"skiff prepare big.aci (same rootfs)", prep(o.aciFile)},
	}
	for _, c := range cs { // warm-up: fetch, import the stage1
		if _, err := c.once(); err != nil {
			return err
		}
	}
	runs, err := interleave(o.cfg.n, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, "oci: prepare a pod (overlays on the layer trees)", cs, runs, 1)
	target(os.Stdout, "prepare big ≤ 1.1× prepare small", ratio(sums[0].median, sums[1].median), 1.1)
	return nil
}
