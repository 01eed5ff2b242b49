// Package stage1image assembles a stage1 image at build time: the minimal
// systemd every pod boots, gathered from the build host with the shared
// libraries it loads, the stage1's multi-call binary and stage2, and a
// manifest naming the entrypoints (docs/stage1-abi.md). Each stage1's
// mkimage command adds what is its own. Nothing here runs in a pod; the
// in-pod layout it follows is package podunit's.
package stage1image

import (
	"archive/tar"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// ImageOptions say what a stage1 image holds besides the minimal systemd
// every pod boots and the manifest naming the entrypoints.
type ImageOptions struct {
	Name     string   // the image's name, e.g. skiff.dev/stage1-ns
	Stage1   string   // the static multi-call stage1 binary, installed as /skiff/run
	Stage2   string   // the static stage2 binary
	Version  string   // the image's version label
	HostRoot string   // the tree systemd is taken from, "/" on a build host
	Features []string // the optional ABI features the stage1 offers (pod.Feature*)

	Links     []string          // more names for /skiff/run besides enter, stop, gc and hook
	HostFiles []string          // more host executables to carry, with their libraries
	Files     map[string]string // more files: path in the rootfs -> file on the build host
	Units     map[string]string // more static units, by name
	Wants     []string          // units default.target wants in every pod, besides the apps'
	Symlinks  map[string]string // more symlinks: path in the rootfs -> target
	// Apps, when set, links and announces the app sandbox's entrypoints
	// (pod.AppEntrypoints) as /skiff/<name>.
	Apps bool
	// Init, when set, is where the pod's systemd goes instead of
	// /usr/lib/systemd/systemd, which then is a link to /skiff/run: the
	// stage1's own first step as the pod's init (stage1-ns: nspawn's
	// filter, stage1-ns/nspawn/filter.go).
	Init string

	// Omit, when set, leaves out the entries it reports, by tar name
	// (directories end in "/").
	Omit func(name string) bool

	// Compress wraps the tar stream; nil means gzip.
	Compress func(io.Writer) (io.WriteCloser, error)
}

// JournaldConf is the pod journald's configuration, in both stage1s.
const JournaldConf = "[Journal]\nRateLimitIntervalSec=0\nSystemMaxUse=" + JournalMaxUse + "\nRuntimeMaxUse=" + JournalRuntimeMaxUse + "\n"

// JournalMaxUse caps each pod's persistent journal (/var/log/journal in
// the stage1 rootfs); JournalRuntimeMaxUse its volatile one in /run
// (memory; the pods write to /var/log/journal from the start).
const (
	JournalMaxUse        = "256M"
	JournalRuntimeMaxUse = "16M"
)

// systemdFiles are the host's systemd pieces a pod needs: PID 1, journald,
// the final shutdown helper and systemctl (for debugging inside a pod).
var systemdFiles = []string{
	"/usr/lib/systemd/systemd",
	"/usr/lib/systemd/systemd-journald",
	"/usr/lib/systemd/systemd-shutdown",
	"/usr/bin/systemctl",
}

// libDirs are searched for shared libraries after an ELF file's RUNPATH.
var libDirs = []string{
	"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
	"/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
}

// staticUnits is the minimal systemd the pod boots: journald, its sockets,
// and the targets a clean poweroff goes through. run adds the apps' units
// and default.target to /etc/systemd/system.
var staticUnits = map[string]string{
	"systemd-journald.socket": `[Unit]
Description=Journal Socket
DefaultDependencies=no
Before=sockets.target
IgnoreOnIsolate=yes

[Socket]
ListenDatagram=/run/systemd/journal/socket
ListenStream=/run/systemd/journal/stdout
PassCredentials=yes
PassSecurity=yes
ReceiveBuffer=8M
Service=systemd-journald.service
SocketMode=0666
Timestamping=us
`,
	"systemd-journald-dev-log.socket": `[Unit]
Description=Journal Socket (/dev/log)
DefaultDependencies=no
Before=sockets.target
IgnoreOnIsolate=yes

[Socket]
ListenDatagram=/run/systemd/journal/dev-log
PassCredentials=yes
PassSecurity=yes
Service=systemd-journald.service
SocketMode=0666
Symlinks=/dev/log
Timestamping=us
ReceiveBuffer=8M
SendBuffer=8M
`,
	// The hook sets journald's "flushed" flag so that it writes to
	// /var/log/journal at once, without a journal-flush service. journald
	// stays up during the poweroff (IgnoreOnIsolate) until
	// systemd-poweroff.service has waited for it to drain.
	"systemd-journald.service": `[Unit]
Description=Journal Service
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket systemd-journald-dev-log.socket
IgnoreOnIsolate=yes

[Service]
Type=notify
ExecStartPre=/skiff/hook journal
ExecStart=/usr/lib/systemd/systemd-journald
Sockets=systemd-journald.socket systemd-journald-dev-log.socket
StandardOutput=null
Restart=always
RestartSec=0
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
FileDescriptorStoreMax=4224
`,
	"system.slice":    "[Unit]\nDescription=System Slice\nDefaultDependencies=no\n",
	"sockets.target":  "[Unit]\nDescription=Sockets\nDefaultDependencies=no\n",
	"shutdown.target": "[Unit]\nDescription=Shutdown\nDefaultDependencies=no\n",
	"umount.target":   "[Unit]\nDescription=Unmount All Filesystems\nDefaultDependencies=no\n",
	"final.target":    "[Unit]\nDescription=Final Step\nDefaultDependencies=no\n",
	"poweroff.target": "[Unit]\nDescription=Power-Off\nDefaultDependencies=no\n" +
		"Requires=systemd-poweroff.service\nAfter=systemd-poweroff.service\n" +
		"AllowIsolate=yes\nJobTimeoutSec=300s\nJobTimeoutAction=poweroff-force\n",
	"systemd-poweroff.service": "[Unit]\nDescription=Power Off\nDefaultDependencies=no\n" +
		"Requires=shutdown.target umount.target final.target\n" +
		"After=shutdown.target umount.target final.target\nSuccessAction=poweroff-force\nFailureAction=poweroff-force\n\n" +
		"[Service]\nType=oneshot\nExecStart=-" + podunit.HookPath + " journal-sync\nTimeoutStartSec=240s\n",
}

// BuildImage writes the stage1 image o describes, a compressed ACI, to w.
func BuildImage(w io.Writer, o ImageOptions) error {
	if err := buildImage(w, o); err != nil {
		return fmt.Errorf("build %s image: %w", o.Name, err)
	}
	return nil
}

func buildImage(w io.Writer, o ImageOptions) error {
	bins := append(append([]string{}, systemdFiles...), o.HostFiles...)
	libs, err := elfClosure(o.HostRoot, bins)
	if err != nil {
		return err
	}
	man, err := imageManifest(o.Name, o.Version, o.Apps, o.Features)
	if err != nil {
		return err
	}
	compress := o.Compress
	if compress == nil {
		compress = func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriter(w), nil }
	}
	zw, err := compress(w)
	if err != nil {
		return err
	}
	t := &tarWriter{tw: tar.NewWriter(zw), seen: map[string]bool{}, omit: o.Omit}
	t.file("manifest", 0o644, man)
	for _, d := range []string{"usr/bin", "usr/lib64", "etc", "var/log/journal", "opt/stage2",
		"skiff/status", "skiff/volumes", "dev", "proc", "sys", "run", "tmp", "etc/systemd/system"} {
		t.dir("rootfs/" + d)
	}
	// Merged /usr, as on the build host; nspawn wants an os-release and a /usr.
	for _, l := range [][2]string{{"bin", "usr/bin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}, {"sbin", "usr/bin"}} {
		t.symlink("rootfs/"+l[0], l[1])
	}
	id := path.Base(o.Name)
	t.file("rootfs/etc/os-release", 0o644, []byte("NAME=\"skiff "+id+"\"\nID=skiff-"+id+"\nVERSION_ID="+o.Version+"\n"))
	// The journal is where `skiff logs` and `journalctl -M` read app output:
	// journald's default rate limit (10000 lines per 30 s per unit) would
	// silently drop a loud app's lines. Without a rate limit, a size cap
	// keeps a loud pod from filling the host's disk (journald's default
	// is 10% of the filesystem, up to 4G, per pod): journald rotates and
	// drops the oldest entries beyond it (docs/stage1-ns.md).
	t.file("rootfs/etc/systemd/journald.conf.d/skiff.conf", 0o644, []byte(JournaldConf))
	for _, f := range append(bins, libs...) {
		if f == systemdFiles[0] && o.Init != "" {
			t.hostFile("rootfs"+o.Init, filepath.Join(o.HostRoot, f), 0o755)
			t.symlink("rootfs/"+usrPath(f), "/skiff/run")
			continue
		}
		t.hostFile("rootfs/"+usrPath(f), filepath.Join(o.HostRoot, f), 0o755)
	}
	units := map[string]string{}
	maps.Copy(units, staticUnits)
	maps.Copy(units, o.Units)
	for _, n := range slices.Sorted(maps.Keys(units)) {
		t.file("rootfs"+podunit.ImageUnitDir+"/"+n, 0o644, []byte(units[n]))
	}
	for _, n := range o.Wants {
		t.symlink("rootfs"+podunit.ImageUnitDir+"/default.target.wants/"+n, "../"+n)
	}
	t.hostFile("rootfs/skiff/run", o.Stage1, 0o755)
	links := append([]string{"enter", "stop", "gc", "hook"}, o.Links...)
	if o.Apps {
		links = append(links, pod.AppEntrypoints...)
	}
	for _, ep := range links {
		t.symlink("rootfs/skiff/"+ep, "run")
	}
	t.hostFile("rootfs"+podunit.Stage2Path, o.Stage2, 0o755)
	for _, p := range slices.Sorted(maps.Keys(o.Files)) {
		t.hostFile("rootfs/"+rel(p), o.Files[p], 0o644)
	}
	for _, p := range slices.Sorted(maps.Keys(o.Symlinks)) {
		t.symlink("rootfs/"+rel(p), o.Symlinks[p])
	}
	if t.err == nil {
		t.err = errors.Join(t.tw.Close(), zw.Close())
	}
	return t.err
}

func imageManifest(imageName, version string, apps bool, features []string) ([]byte, error) {
	name, err := types.NewACIdentifier(imageName)
	if err != nil {
		return nil, err
	}
	labels := types.Labels{{Name: "version", Value: version}, {Name: "os", Value: "linux"}, {Name: "arch", Value: runtime.GOARCH}}
	eps := map[string]string{
		pod.EntrypointRun:   "/skiff/run",
		pod.EntrypointEnter: "/skiff/enter",
		pod.EntrypointStop:  "/skiff/stop",
		pod.EntrypointGC:    "/skiff/gc",
	}
	if apps {
		for _, ep := range pod.AppEntrypoints {
			eps[ep] = "/skiff/" + ep
		}
	}
	m := schema.ImageManifest{
		ACKind:      schema.ImageManifestKind,
		ACVersion:   schema.AppContainerVersion,
		Name:        *name,
		Labels:      labels,
		Annotations: pod.Stage1Annotations(eps, features...),
	}
	if len(features) > 0 {
		m.Annotations.Set(pod.AnnotationFeatures, strings.Join(features, ","))
	}
	return json.MarshalIndent(m, "", "  ")
}

// usrPath places a host path in the image's merged /usr.
func usrPath(p string) string { return "usr/" + strings.TrimPrefix(strings.TrimPrefix(p, "/usr"), "/") }

// elfClosure returns the shared libraries (and the ELF interpreter) that
// the given executables under root load, transitively, as paths relative
// to root.
func elfClosure(root string, bins []string) ([]string, error) {
	seen := map[string]bool{}
	// RUNPATHs seen so far: a library may need one its executable's
	// RUNPATH found, which the loader reuses by soname.
	var dirs []string
	var out []string
	queue := append([]string{}, bins...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		f, err := elf.Open(filepath.Join(root, p))
		if err != nil {
			return nil, fmt.Errorf("read ELF %s: %w", p, err)
		}
		var deps []string
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, _ := io.ReadAll(prog.Open())
				deps = append(deps, strings.TrimRight(string(b), "\x00"))
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read ELF %s: %w", p, err)
		}
		for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
			rp, _ := f.DynString(tag)
			for _, s := range rp {
				for _, d := range strings.Split(s, ":") {
					dirs = append([]string{strings.ReplaceAll(d, "$ORIGIN", path.Dir(p))}, dirs...)
				}
			}
		}
		f.Close()
		for _, lib := range needed {
			found := ""
			for _, d := range append(dirs, libDirs...) {
				if _, err := os.Stat(filepath.Join(root, d, lib)); err == nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("%s needs %s: not found", p, lib)
			}
			deps = append(deps, found)
		}
		// The loader finds a library once by its name: libc's own
		// ld-linux-x86-64.so.2 is the interpreter.
		for _, d := range deps {
			if !seen[path.Base(d)] {
				seen[path.Base(d)] = true
				out = append(out, d)
				queue = append(queue, d)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// tarWriter writes a reproducible tar, keeping the first error.
type tarWriter struct {
	tw   *tar.Writer
	seen map[string]bool
	omit func(name string) bool
	err  error
}

var epoch = time.Unix(0, 0)

func (t *tarWriter) header(h *tar.Header) bool {
	if t.err != nil || t.seen[h.Name] {
		return false
	}
	// Parent directories first, as extractors expect (also those of an
	// entry that is omitted, unless they are too).
	if dir := path.Dir(strings.TrimSuffix(h.Name, "/")); dir != "." && !t.seen[dir+"/"] {
		t.dir(dir)
	}
	if t.omit != nil && t.omit(h.Name) {
		return false
	}
	t.seen[h.Name] = true
	h.ModTime, h.Format = epoch, tar.FormatPAX
	t.err = t.tw.WriteHeader(h)
	return t.err == nil
}

func (t *tarWriter) dir(name string) {
	t.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
}

func (t *tarWriter) symlink(name, target string) {
	t.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

func (t *tarWriter) file(name string, mode int64, b []byte) {
	if t.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b))}) {
		_, t.err = t.tw.Write(b)
	}
}

func (t *tarWriter) hostFile(name, src string, mode int64) {
	if t.err != nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.err = err
		return
	}
	t.file(name, mode, b)
}

// rel makes an in-pod absolute path relative to the rootfs.
func rel(p string) string { return strings.TrimPrefix(p, "/") }
