package podunit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// The app sandbox's side of the app entrypoints that does not depend on
// how the pod is isolated (docs/app-sandbox.md). Paths are relative to the
// pod directory, the entrypoints' working directory; the caller reloads
// or drives the pod's systemd afterwards.

// AddApp makes app name of the pod manifest (stage0 has added it and its
// rootfs) ready to start in a running sandbox: it writes its bundle with
// bundle and its unit (SandboxUnit), and clears a status left by an
// earlier app of that name.
func AddApp(name string, bundle BundleFunc) (App, error) {
	pm, apps, err := ReadPod()
	if err != nil {
		return App{}, err
	}
	var a *App
	for i := range apps {
		if apps[i].Name == name {
			a = &apps[i]
		}
	}
	if a == nil {
		return App{}, fmt.Errorf("add app %s: %w: not in the pod manifest", name, pod.ErrNoApp)
	}
	if err := WriteBundle(pm, name, bundle); err != nil {
		return App{}, err
	}
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return App{}, fmt.Errorf("add app %s: %w", name, err)
	}
	defer root.Close()
	err = errors.Join(root.MkdirAll(rel(UnitDir), 0o755),
		root.WriteFile(rel(UnitDir)+"/"+UnitName(name), []byte(SandboxUnit(*a)), 0o644),
		ClearStatus(name))
	if err != nil {
		return App{}, fmt.Errorf("add app %s: %w", name, err)
	}
	return *a, nil
}

// RemoveApp removes what AddApp and the app's run left in the stage1
// rootfs: its unit and its exit status.
func RemoveApp(name string) error {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err == nil {
		err = errors.Join(ignoreNotExist(root.Remove(rel(UnitDir)+"/"+UnitName(name))), ClearStatus(name), root.Close())
	}
	if err != nil {
		return fmt.Errorf("remove app %s: %w", name, err)
	}
	return nil
}

// ClearStatus removes app name's exit status, before it starts again.
func ClearStatus(name string) error {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("clear status of %s: %w", name, err)
	}
	defer root.Close()
	for _, d := range []string{pod.InPodStatusDir, pod.InPodOOMDir} {
		if err := ignoreNotExist(root.Remove(rel(d) + "/" + name)); err != nil {
			return fmt.Errorf("clear status of %s: %w", name, err)
		}
	}
	return nil
}

// AppOptionsFile, in the pod directory (out of the pod's reach), keeps the
// bundle options a sandbox's run used, AC_METADATA_URL among them, for the
// apps added later.
const AppOptionsFile = "stage1-app-options.json"

// WriteAppOptions records o for ReadAppOptions.
func WriteAppOptions(o appspec.Options) error {
	b, err := json.Marshal(o)
	if err == nil {
		err = os.WriteFile(AppOptionsFile, b, 0o600)
	}
	if err != nil {
		return fmt.Errorf("record app options: %w", err)
	}
	return nil
}

// ReadAppOptions returns the options WriteAppOptions recorded.
func ReadAppOptions() (appspec.Options, error) {
	var o appspec.Options
	b, err := safefile.ReadFileAt(".", AppOptionsFile, pod.MaxStateFileSize)
	if err == nil {
		err = json.Unmarshal(b, &o)
	}
	if err != nil {
		return o, fmt.Errorf("read app options: %w", err)
	}
	return o, nil
}
