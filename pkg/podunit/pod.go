package podunit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// The steps of a run entrypoint that do not depend on how the pod is
// isolated. Paths are relative to the pod directory, run's working directory.

// ReadPod reads the pod manifest and what the units need of its apps.
func ReadPod() (*schema.PodManifest, []App, error) {
	b, err := safefile.ReadFileAt(".", pod.ManifestFile, pod.MaxManifestSize)
	if err != nil {
		return nil, nil, fmt.Errorf("read pod manifest: %w", err)
	}
	pm, err := pod.ParseManifest(b)
	if err != nil {
		return nil, nil, err
	}
	apps, err := AppsOf(pm)
	if err != nil {
		return nil, nil, err
	}
	return pm, apps, nil
}

// Prepare does what every run does before it boots the pod: it reads the
// pod manifest, writes the apps' bundles, takes the sockets the service
// manager passed (ListenFDs) and writes the stage1 rootfs's units
// (PrepareRootUnits) with those that give apps readiness and sockets
// (ActivationUnits, with listen). It returns the manifest, the apps and the
// sockets to hand the pod's systemd; an interactive pod has exactly one app.
func Prepare(log *slog.Logger, uuid string, interactive, netWait bool, bundle BundleFunc, listen ListenAddr) (*schema.PodManifest, []App, []*os.File, error) {
	pm, apps, err := ReadPod()
	if err != nil {
		return nil, nil, nil, err
	}
	if interactive && len(apps) != 1 {
		return nil, nil, nil, fmt.Errorf("run: %w: --interactive needs exactly one app, the pod has %d", ErrUsage, len(apps))
	}
	if interactive && PipedStdin() {
		apps[0].Stdin, interactive = StdinFIFO, false
	}
	if err := WriteBundles(pm, bundle); err != nil {
		return nil, nil, nil, err
	}
	imgs, err := ImageManifests(pm)
	if err != nil {
		return nil, nil, nil, err
	}
	listeners, err := ListenFDs()
	if err != nil {
		return nil, nil, nil, err
	}
	extra, pass, err := ActivationUnits(log, imgs, listeners, listen)
	if err != nil {
		return nil, nil, nil, err
	}
	limit, err := PidsLimit(pm)
	if err != nil {
		for _, f := range pass {
			f.Close()
		}
		return nil, nil, nil, err
	}
	maps.Copy(extra, pidsUnits(limit))
	if err := PrepareRootUnits(uuid, apps, interactive, netWait, extra); err != nil {
		for _, f := range pass {
			f.Close()
		}
		return nil, nil, nil, err
	}
	return pm, apps, pass, nil
}

// PipedStdin reports whether the stage1's stdin is not a terminal. An
// interactive pod then does not get a console: nspawn's console ends the
// pod when its input ends, so a piped stdin reaches the app through a
// FIFO instead (FeedStdin), with end of file where the pipe ends.
func PipedStdin() bool { return !term.IsTerminal(int(os.Stdin.Fd())) }

// FeedStdin makes StdinFIFO in the stage1 rootfs and copies in into it
// until in ends. It keeps its end open until the app has started (it holds
// the read end then; a FIFO with no end open loses what it holds), so the
// app reads everything and then end of file.
func FeedStdin(rootfs string, in io.Reader) error {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	dir, err := root.Open(rel(SkiffDir))
	root.Close()
	if err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	defer dir.Close()
	name := path.Base(StdinFIFO)
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	if err := unix.Mkfifoat(int(dir.Fd()), name, 0o600); err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	// Read-write: the open does not wait for a reader, and the app's open
	// (by the pod's systemd) does not wait for a writer.
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("stdin pipe: %w", err)
	}
	fifo := os.NewFile(uintptr(fd), StdinFIFO)
	started := func() bool {
		_, err := os.Stat(filepath.Join(rootfs, pod.InPodReadyFile))
		if err != nil {
			ents, _ := os.ReadDir(filepath.Join(rootfs, pod.InPodStatusDir))
			return len(ents) > 0
		}
		return true
	}
	go func() {
		io.Copy(fifo, in)
		for !started() {
			time.Sleep(50 * time.Millisecond)
		}
		fifo.Close()
	}()
	return nil
}

// BundleFunc writes the bundle stage2 runs app ra from into dir: its OCI
// runtime spec and the files the spec names (the stage1s use pkg/appspec).
// appRoot is the app's rootfs.
type BundleFunc func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, appRoot *os.Root) error

// AppBundle returns the BundleFunc both stage1s use: the app's OCI spec
// from pkg/appspec with o, its notify socket bound in (NotifyBind), and
// the hosts lines stage0 wrote for the pod (PodHosts) added.
func AppBundle(o appspec.Options) (BundleFunc, error) {
	hosts, err := PodHosts()
	if err != nil {
		return nil, err
	}
	return AppBundleHosts(o, hosts), nil
}

// AppBundleHosts is AppBundle with the given hosts lines: none for a pod
// whose network is still being attached (they come with NetReady).
func AppBundleHosts(o appspec.Options, hosts []byte) BundleFunc {
	return func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, root *os.Root) error {
		s, err := appspec.Build(pm, ra, img, root, o)
		if err != nil {
			return err
		}
		NotifyBind(s, img)
		if err := appspec.Write(dir, s); err != nil {
			return err
		}
		return AppendHosts(dir, hosts)
	}
}

// ImageManifests reads every app's image manifest, by app name.
func ImageManifests(pm *schema.PodManifest) (map[string]*schema.ImageManifest, error) {
	imgs := map[string]*schema.ImageManifest{}
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		b, err := safefile.ReadFileAt(".", pod.AppManifest(name), pod.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("read image manifest of %s: %w", name, err)
		}
		var img schema.ImageManifest
		if err := strictjson.Unmarshal(b, &img); err != nil {
			return nil, fmt.Errorf("parse image manifest of %s: %w", name, err)
		}
		imgs[name] = &img
	}
	return imgs, nil
}

// WriteBundles writes every app's bundle beside its rootfs.
func WriteBundles(pm *schema.PodManifest, write BundleFunc) error {
	imgs, err := ImageManifests(pm)
	if err != nil {
		return err
	}
	for i := range pm.Apps {
		if err := writeBundle(pm, &pm.Apps[i], imgs[pm.Apps[i].Name.String()], write); err != nil {
			return err
		}
	}
	return nil
}

// WriteBundle writes the bundle of app name alone, as WriteBundles does
// for every app.
func WriteBundle(pm *schema.PodManifest, name string, write BundleFunc) error {
	imgs, err := ImageManifests(pm)
	if err != nil {
		return err
	}
	for i := range pm.Apps {
		if pm.Apps[i].Name.String() == name {
			return writeBundle(pm, &pm.Apps[i], imgs[name], write)
		}
	}
	return fmt.Errorf("write bundle of %s: %w", name, pod.ErrNoApp)
}

func writeBundle(pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, write BundleFunc) error {
	name := ra.Name.String()
	// The app's dir is in the stage1's tree, which a KVM guest writes
	// while an app sandbox runs (app-add): named through handles opened
	// without following a symlink it could have planted.
	dir, err := mount.MkdirAllBeneath(".", pod.AppDir(name))
	if err != nil {
		return fmt.Errorf("write bundle of %s: %w", name, err)
	}
	defer dir.Close()
	rootfs, err := mount.MkdirAllBeneath(mount.FDPath(dir), "rootfs")
	if err != nil {
		return fmt.Errorf("open rootfs of %s: %w", name, err)
	}
	defer rootfs.Close()
	root, err := os.OpenRoot(mount.FDPath(rootfs))
	if err != nil {
		return fmt.Errorf("open rootfs of %s: %w", name, err)
	}
	err = write(mount.FDPath(dir), pm, ra, img, root)
	root.Close()
	if err != nil {
		return fmt.Errorf("write bundle of %s: %w", name, err)
	}
	return nil
}

// PrepareRootUnits writes the machine-id (the pod UUID without dashes), the
// apps' units and the extra unit files (by path relative to the unit
// directory, such as ActivationUnits') into the stage1 rootfs and clears
// what a previous boot left.
func PrepareRootUnits(uuid string, apps []App, interactive, netWait bool, extra map[string]string) error {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("open stage1 rootfs: %w", err)
	}
	defer root.Close()
	files := map[string]string{"etc/machine-id": pod.MachineID(uuid) + "\n"}
	for name, u := range Units(apps, interactive, netWait) {
		files[rel(UnitDir)+"/"+name] = u
	}
	for name, u := range extra {
		files[rel(UnitDir)+"/"+name] = u
	}
	var errs []error
	for _, p := range []string{FailedFile, pod.InPodReadyFile, StoppingFile, pod.InPodNetReady} {
		errs = append(errs, ignoreNotExist(root.Remove(rel(p))))
	}
	for _, d := range []string{UnitDir, pod.InPodStatusDir, JournalDir, VolumesDir} {
		errs = append(errs, root.MkdirAll(rel(d), 0o755))
	}
	for p, content := range files {
		errs = append(errs, root.MkdirAll(path.Dir(p), 0o755), root.WriteFile(p, []byte(content), 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepare stage1 rootfs: %w", err)
	}
	return nil
}

// EmptyVolume makes the empty volume v as a directory of the stage1
// rootfs, at /skiff/volumes/<name>, with the mode and owner it asks for;
// root is the host uid of the pod's uid 0 (0 without a user namespace).
func EmptyVolume(v types.Volume, root int) error {
	mode, uid, gid := os.FileMode(0o755), 0, 0
	if v.Mode != nil {
		m, err := strconv.ParseUint(*v.Mode, 8, 32)
		if err != nil {
			return fmt.Errorf("volume %s: mode %q: %w", v.Name, *v.Mode, err)
		}
		mode = os.FileMode(m)
	}
	if v.UID != nil {
		uid = *v.UID
	}
	if v.GID != nil {
		gid = *v.GID
	}
	r, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	defer r.Close()
	dir := rel(VolumesDir) + "/" + v.Name.String()
	err = r.Mkdir(dir, mode)
	if err == nil || errors.Is(err, os.ErrExist) {
		err = errors.Join(r.Lchown(dir, root+uid, root+gid), r.Chmod(dir, mode))
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	return nil
}

// PodExit reads what the hooks recorded in the stage1 rootfs: the status
// of the first app that failed, or 0 when every app has a status and none
// failed. A pod that was asked to stop (see Stopping) may have apps that
// never started: they did not fail.
func PodExit(rootfs string, apps []App) (int, error) {
	if b, err := safefile.ReadFileAt(rootfs, rel(FailedFile), pod.MaxStateFileSize); err == nil {
		name := string(b)
		n, err := readStatus(rootfs, name)
		if err != nil {
			return 0, err
		}
		if n == 0 { // failed without a status of its own (e.g. a pre-start handler)
			n = 1
		}
		return n, nil
	}
	_, err := os.Stat(filepath.Join(rootfs, StoppingFile))
	stopped := err == nil
	for _, a := range apps {
		if _, err := readStatus(rootfs, a.Name); err != nil && !(stopped && errors.Is(err, os.ErrNotExist)) {
			return 0, err
		}
	}
	return 0, nil
}

// Stopping records in the stage1 rootfs that the pod was asked to stop,
// before the pod's systemd is asked for the poweroff. The pod can write
// its rootfs: the file is made inside it, never through a symlink out.
func Stopping(rootfs string) error {
	root, err := os.OpenRoot(rootfs)
	if err == nil {
		err = errors.Join(root.WriteFile(rel(StoppingFile), nil, 0o644), root.Close())
	}
	if err != nil {
		return fmt.Errorf("record stop request: %w", err)
	}
	return nil
}

func readStatus(rootfs, app string) (int, error) {
	b, err := safefile.ReadFileAt(rootfs, filepath.Join(rel(pod.InPodStatusDir), app), pod.MaxStateFileSize)
	if err != nil {
		return 0, fmt.Errorf("app %s has no exit status: %w", app, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("exit status of app %s: %w", app, err)
	}
	return n, nil
}

// rel makes an in-pod absolute path relative to the stage1 rootfs.
func rel(p string) string { return strings.TrimPrefix(p, "/") }

func ignoreNotExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
