package podunit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// maxHosts bounds the hosts lines stage0 writes for a pod.
const maxHosts = 1 << 20

// PodHosts returns the lines stage0 wrote for every app's /etc/hosts when
// it attached the pod (the working directory) to its networks: the pod's
// addresses with its hostname, and --hosts-entry's. None without a network.
func PodHosts() ([]byte, error) {
	b, err := safefile.ReadFile(pod.NetHosts, maxHosts)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pod hosts: %w", err)
	}
	return b, nil
}

// AppendHosts adds lines to the hosts file appspec.Write put in the app's
// bundle dir.
func AppendHosts(dir string, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, appspec.HostsFile), os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("write hosts: %w", err)
	}
	_, err = f.Write(lines)
	return errors.Join(err, f.Close())
}

// NetReady ends the wait that Units' netWait puts before the apps, once
// stage0 has attached the pod (the working directory) to its networks:
// it adds the hosts lines stage0 wrote then (PodHosts) to every app's
// hosts file, and only then creates pod.InPodNetReady, which starts them.
func NetReady(apps []App) error {
	hosts, err := PodHosts()
	if err != nil {
		return err
	}
	for _, a := range apps {
		if err := AppendHosts(pod.AppDir(a.Name), hosts); err != nil {
			return fmt.Errorf("app %s: %w", a.Name, err)
		}
	}
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("network ready: %w", err)
	}
	defer root.Close()
	f, err := root.OpenFile(rel(pod.InPodNetReady), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("network ready: %w", err)
	}
	return f.Close()
}
