package prepare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
)

// ReadManifest reads and parses the pod manifest of p.
func ReadManifest(p *pod.Pod) (*schema.PodManifest, error) {
	b, err := p.ReadFile(pod.ManifestFile, pod.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("pod %s: read manifest: %w", p.UUID, err)
	}
	return pod.ParseManifest(b)
}

// ErrAppExists means an app sandbox already has an app of that name.
var ErrAppExists = errors.New("the pod already has an app of that name")

// AddApp adds app a to app sandbox p, whose manifest lock the caller
// holds: its rootfs (an overlay on the store's trees, or a copy, as the
// pod's were made), its image manifest, and last the pod manifest with it.
// The app may mount the sandbox's volumes only. It returns the app's
// name; on error nothing of the app is left.
func AddApp(ctx context.Context, imgs Images, p *pod.Pod, a App, inherit []string) (name string, err error) {
	pm, err := ReadManifest(p)
	if err != nil {
		return "", err
	}
	if !pod.IsSandbox(pm) {
		return "", fmt.Errorf("pod %s is not an app sandbox", p.UUID)
	}
	one, err := Manifest(imgs, Options{Apps: []App{a}, Volumes: pm.Volumes, InheritEnv: inherit})
	if err != nil {
		return "", err
	}
	ra := one.Apps[0]
	name = ra.Name.String()
	if pm.Apps.Get(ra.Name) != nil {
		return "", fmt.Errorf("app %s: %w", name, ErrAppExists)
	}
	if len(one.Volumes) > len(pm.Volumes) {
		return "", fmt.Errorf("app %s: mount point %s needs a volume: give the sandbox a --volume %s", name, one.Volumes[len(pm.Volumes)].Name, one.Volumes[len(pm.Volumes)].Name)
	}
	records, err := readMounts(p)
	if err != nil {
		return "", fmt.Errorf("add app %s: %w", name, err)
	}
	_, err = os.Stat(p.File("copied"))
	copied := err == nil
	lowers, err := trees(ctx, imgs, a.Image, a.Layers, copied)
	if err != nil {
		return "", fmt.Errorf("add app %s: %w", name, err)
	}
	rec := mountRecord{Target: pod.AppRootfs(name), Lowers: lowers,
		Upper: "overlay/app-" + name + "/upper", Work: "overlay/app-" + name + "/work"}
	defer func() {
		if err != nil {
			err = errors.Join(err, removeApp(p, name))
		}
	}()
	// The target is in the stage1's tree, which a running KVM guest
	// writes: refused if the way there has a symlink (Mount also mounts
	// through a handle; a copy is made right after this check).
	dir, err := mount.MkdirAllBeneath(p.Path(), rec.Target)
	if err != nil {
		return name, fmt.Errorf("add app %s: %w", name, err)
	}
	dir.Close()
	if err := writeJSON(p.File(mountsFile), append(records, rec), true); err != nil {
		return name, err
	}
	if copied {
		err = copyTrees(p, []mountRecord{rec})
	}
	if err == nil {
		err = Mount(p) // the pod runs
	}
	if err != nil {
		return name, err
	}
	im, err := imgs.Manifest(a.Image)
	if err == nil {
		err = writeJSONBeneath(p, pod.AppManifest(name), im)
	}
	if err != nil {
		return name, fmt.Errorf("add app %s: %w", name, err)
	}
	pm.Apps = append(pm.Apps, ra)
	return name, writeManifest(p, pm)
}

// RemoveApp removes app name from app sandbox p, whose manifest lock the
// caller holds, once the stage1 has forgotten it: the pod manifest first,
// then its rootfs (unmounted) and overlay dirs.
func RemoveApp(p *pod.Pod, name string) error {
	pm, err := ReadManifest(p)
	if err != nil {
		return err
	}
	pm.Apps = slices.DeleteFunc(pm.Apps, func(ra schema.RuntimeApp) bool { return ra.Name.String() == name })
	if err := writeManifest(p, pm); err != nil {
		return err
	}
	return removeApp(p, name)
}

// removeApp removes what AddApp made for app name, but the manifest entry.
func removeApp(p *pod.Pod, name string) error {
	dir := p.File(pod.AppDir(name))
	if err := mount.UnmountAll(dir); err != nil {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	var errs []error
	if records, err := readMounts(p); err == nil {
		records = slices.DeleteFunc(records, func(r mountRecord) bool { return r.Target == pod.AppRootfs(name) })
		errs = append(errs, writeJSON(p.File(mountsFile), records, true))
	}
	// The app's dir is in the stage1's tree, which a running KVM guest
	// writes: removed beneath the pod dir, never through a symlink.
	errs = append(errs, mount.RemoveAllBeneath(p.Path(), pod.AppDir(name)), mount.RemoveAll(p.File("overlay/app-"+name)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	return nil
}

// writeManifest replaces the pod manifest in one rename, its apps record
// removed before and written again after (pod.ForgetApps).
func writeManifest(p *pod.Pod, pm *schema.PodManifest) error {
	tmp := p.File(pod.ManifestFile + ".new")
	if err := writeJSON(tmp, pm, true); err != nil {
		return err
	}
	if err := p.ForgetApps(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p.File(pod.ManifestFile)); err != nil {
		return fmt.Errorf("write pod manifest: %w", err)
	}
	// The manifest is written: should the record fail, there is none,
	// and list reads the manifest instead. Not worth failing for.
	_ = p.RecordApps()
	return nil
}

// writeJSONBeneath writes v to file rel of the pod dir, below which no
// component may be a symlink and the file itself must be a new or regular
// one: rel is in the stage1's tree, which a running KVM guest writes.
func writeJSONBeneath(p *pod.Pod, rel string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(rel), err)
	}
	dir, err := mount.MkdirAllBeneath(p.Path(), filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	f, err := os.OpenFile(filepath.Join(mount.FDPath(dir), filepath.Base(rel)),
		os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("write %s: not a regular file", rel)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}
