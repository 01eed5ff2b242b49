package podunit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
)

// The steps of a run entrypoint that do not depend on how the pod is
// isolated. Paths are relative to the pod directory, run's working directory.

// KeepLock checks the lock fd inherited from stage0 and keeps it from
// leaking into the pod: a directory fd on the host is a way out of any root.
func KeepLock() error {
	fd, err := strconv.Atoi(os.Getenv(pod.EnvLockFD))
	if err != nil {
		return fmt.Errorf("run: %w: %s=%q", ErrUsage, pod.EnvLockFD, os.Getenv(pod.EnvLockFD))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("run: lock fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	return nil
}

// BundleFunc writes the bundle stage2 runs app ra from into dir: its OCI
// runtime spec and the files the spec names (the stage1s use pkg/appspec).
// appRoot is the app's rootfs.
type BundleFunc func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, appRoot *os.Root) error

// WriteBundles writes every app's bundle beside its rootfs.
func WriteBundles(pm *schema.PodManifest, write BundleFunc) error {
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		name := ra.Name.String()
		b, err := os.ReadFile(pod.AppManifest(name))
		if err != nil {
			return fmt.Errorf("read image manifest of %s: %w", name, err)
		}
		var img schema.ImageManifest
		if err := json.Unmarshal(b, &img); err != nil {
			return fmt.Errorf("parse image manifest of %s: %w", name, err)
		}
		root, err := os.OpenRoot(pod.AppRootfs(name))
		if err != nil {
			return fmt.Errorf("open rootfs of %s: %w", name, err)
		}
		err = write(pod.AppDir(name), pm, ra, &img, root)
		root.Close()
		if err != nil {
			return fmt.Errorf("write bundle of %s: %w", name, err)
		}
	}
	return nil
}

// PrepareRoot writes the machine-id (the pod UUID without dashes) and the
// apps' units into the stage1 rootfs and clears what a previous boot left.
func PrepareRoot(uuid string, apps []App, interactive bool) error {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("open stage1 rootfs: %w", err)
	}
	defer root.Close()
	files := map[string]string{"etc/machine-id": pod.MachineID(uuid) + "\n"}
	for name, u := range Units(apps, interactive) {
		files[rel(UnitDir)+"/"+name] = u
	}
	var errs []error
	for _, p := range []string{FailedFile, ReadyFile} {
		errs = append(errs, ignoreNotExist(root.Remove(rel(p))))
	}
	for _, d := range []string{UnitDir, StatusDir, JournalDir, VolumesDir} {
		errs = append(errs, root.MkdirAll(rel(d), 0o755))
	}
	for p, content := range files {
		errs = append(errs, root.WriteFile(p, []byte(content), 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepare stage1 rootfs: %w", err)
	}
	return nil
}

// EmptyVolume makes the empty volume v as a directory of the stage1
// rootfs, at /skiff/volumes/<name>, with the mode and owner it asks for.
func EmptyVolume(v types.Volume) error {
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
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	defer root.Close()
	dir := rel(VolumesDir) + "/" + v.Name.String()
	err = root.Mkdir(dir, mode)
	if err == nil || errors.Is(err, os.ErrExist) {
		err = errors.Join(root.Lchown(dir, uid, gid), root.Chmod(dir, mode))
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	return nil
}

// PodExit reads what the hooks recorded in the stage1 rootfs: the status
// of the first app that failed, or 0 when every app has a status and none
// failed.
func PodExit(rootfs string, apps []App) (int, error) {
	if b, err := os.ReadFile(filepath.Join(rootfs, FailedFile)); err == nil {
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
	for _, a := range apps {
		if _, err := readStatus(rootfs, a.Name); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func readStatus(rootfs, app string) (int, error) {
	b, err := os.ReadFile(filepath.Join(rootfs, StatusDir, app))
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
