//go:build e2e

package tests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/tests/cri"
)

// A standalone kubelet v1.37.2 (static pods, no API server; built by
// `tests/cri/tools.sh kubelet`, which make test-kubelet runs) drives a CRI
// runtime: a two-container pod with a hostPort reached from the host, an
// exec readiness probe and an HTTP liveness probe; a crashing container
// the kubelet restarts; a pod removed when its manifest is; on skiff, a
// static pod on stage1-kvm by annotation (no API server, so no
// RuntimeClass). Gated by
// SKIFF_KUBELET=1, which make test and make test-kubelet set once the
// kubelet is built (minutes, the first time; cached after).

func requireKubelet(t *testing.T) string {
	t.Helper()
	if os.Getenv("SKIFF_KUBELET") != "1" {
		t.Skip("the kubelet harness: run make test or make test-kubelet (they build the kubelet once and set SKIFF_KUBELET=1)")
	}
	return criTool(t, "kubelet")
}

// TestKubelet runs the kubelet checks on each CRI runtime: containerd +
// runc (the reference, proving the harness) and skiff cri on stage1-ns
// (skipped, saying why, while skiff has no cri command).
func TestKubelet(t *testing.T) {
	kubelet := requireKubelet(t)
	for _, tc := range []struct {
		name  string
		start func(*testing.T) string
		kvm   bool
	}{
		{"containerd", startContainerd, false},
		{"skiff", skiffCRI, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "containerd" && os.Getenv("SKIFF_CRI_REFERENCE") != "1" {
				t.Skip("the reference runtime: set SKIFF_CRI_REFERENCE=1 (make test-kubelet does)")
			}
			kubeletChecks(t, kubelet, tc.start(t), tc.kvm)
		})
	}
}

// startKubelet runs the kubelet against endpoint; cleanup stops it, then
// puts back what it changed on the host.
func startKubelet(t *testing.T, bin, endpoint string) cri.Kubelet {
	t.Helper()
	k := cri.Kubelet{Dir: t.TempDir(), Endpoint: endpoint, Port: freePort(t), Healthz: freePort(t)}
	if err := os.MkdirAll(k.Manifests(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.Dir, "config.json"), []byte(k.Config()), 0o644); err != nil {
		t.Fatal(err)
	}
	host, err := cri.SaveHost()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(k.Dir, "kubelet.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(bin, k.Args()...)
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { c.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		// Stop the pods first (manifests gone), so the runtime's cleanup
		// finds nothing the kubelet would restart.
		os.RemoveAll(k.Manifests())
		os.MkdirAll(k.Manifests(), 0o755)
		time.Sleep(3 * time.Second)
		c.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			c.Process.Kill()
			<-exited
		}
		if err := host.Restore(k.Dir); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("kubelet log ends:\n%s", cri.Tail(logPath, 40))
		}
	})
	waitFor(t, "the kubelet's healthz", 90*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("kubelet exited; its log ends:\n%s", cri.Tail(logPath, 40))
		default:
		}
		r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", k.Healthz))
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return k
}

// kubeletPod is the part of a v1.Pod the checks read from the kubelet's /pods.
type kubeletPod struct {
	Metadata struct{ Name string }
	Status   struct {
		Phase             string
		Conditions        []struct{ Type, Status string }
		ContainerStatuses []struct {
			Name         string
			Ready        bool
			RestartCount int
		}
	}
}

// kubeletPods lists the kubelet's pods (static pods carry their status
// there when there is no API server).
func kubeletPods(t *testing.T, k cri.Kubelet) map[string]kubeletPod {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	r, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/pods", k.Port))
	if err != nil {
		return nil
	}
	defer r.Body.Close()
	var list struct{ Items []kubeletPod }
	if err := json.NewDecoder(r.Body).Decode(&list); err != nil {
		return nil
	}
	m := map[string]kubeletPod{}
	for _, p := range list.Items {
		m[p.Metadata.Name] = p
	}
	return m
}

func writeManifest(t *testing.T, k cri.Kubelet, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(k.Manifests(), name+".yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// kubeletChecks runs the kubelet against the CRI runtime at endpoint;
// with kvm, also a static pod on skiff's kvm handler.
func kubeletChecks(t *testing.T, bin, endpoint string, kvm bool) {
	k := startKubelet(t, bin, endpoint)
	hostPort := freePort(t)
	const node = "skiff-test-node"
	if kvm {
		// Written first: the VM boots (seconds under TCG) while the
		// other checks run.
		writeManifest(t, k, "vm", `apiVersion: v1
kind: Pod
metadata:
  name: vm
  namespace: default
  annotations: {skiff.dev/runtime-handler: kvm}
spec:
  containers:
  - name: vm
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: [sh, -c, "echo in a vm; exec sleep 3600"]
`)
	}

	writeManifest(t, k, "web", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/nginx:1.14-2
    ports: [{containerPort: 80, hostPort: %d}]
    readinessProbe:
      exec: {command: [cat, /var/run/nginx.pid]}
      periodSeconds: 1
    livenessProbe:
      httpGet: {path: /, port: 80}
      periodSeconds: 2
  - name: side
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: [sh, -c, "echo side up; exec sleep 3600"]
`, hostPort))
	writeManifest(t, k, "crash", `apiVersion: v1
kind: Pod
metadata: {name: crash, namespace: default}
spec:
  restartPolicy: Always
  containers:
  - name: crash
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: [sh, -c, "echo crashing; exit 3"]
`)

	t.Run("readiness", func(t *testing.T) {
		waitFor(t, "pod web Ready (exec readiness probe) with both containers", 3*time.Minute, func() bool {
			p := kubeletPods(t, k)["web-"+node]
			ready := 0
			for _, c := range p.Status.ContainerStatuses {
				if c.Ready {
					ready++
				}
			}
			return ready == 2
		})
	})
	t.Run("hostPort", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
		var body string
		waitFor(t, "an answer on "+url, time.Minute, func() bool {
			r, err := http.Get(url)
			if err != nil {
				return false
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			body = string(b)
			return r.StatusCode == 200
		})
		if !strings.Contains(body, "nginx") {
			t.Errorf("%s answered %q, want the web container's page", url, body)
		}
	})
	t.Run("liveness", func(t *testing.T) {
		// The HTTP liveness probe passes: after several periods the web
		// container has not been restarted.
		time.Sleep(8 * time.Second)
		for _, c := range kubeletPods(t, k)["web-"+node].Status.ContainerStatuses {
			if c.RestartCount != 0 {
				t.Errorf("container %s restarted %d times, want 0 (liveness probe passing)", c.Name, c.RestartCount)
			}
		}
	})
	t.Run("restart", func(t *testing.T) {
		waitFor(t, "the kubelet to restart the crashing container twice", 3*time.Minute, func() bool {
			for _, c := range kubeletPods(t, k)["crash-"+node].Status.ContainerStatuses {
				if c.RestartCount >= 2 {
					return true
				}
			}
			return false
		})
	})
	t.Run("remove", func(t *testing.T) {
		if err := os.Remove(filepath.Join(k.Manifests(), "web.yaml")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "pod web gone from the kubelet and its containers stopped", 2*time.Minute, func() bool {
			if _, ok := kubeletPods(t, k)["web-"+node]; ok {
				return false
			}
			out, err := cri.Crictl(context.Background(), endpoint, "ps", "-q", "--label", "io.kubernetes.pod.name=web-"+node)
			return err == nil && strings.TrimSpace(out) == ""
		})
		if r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); err == nil {
			r.Body.Close()
			t.Errorf("hostPort %d still answers after the pod was removed", hostPort)
		}
	})
	if !kvm {
		return
	}
	t.Run("kvm", func(t *testing.T) {
		var id string
		waitFor(t, "pod vm Running with its container", 6*time.Minute, func() bool {
			p := kubeletPods(t, k)["vm-"+node]
			out, err := cri.Crictl(context.Background(), endpoint, "ps", "-q", "--state", "running", "--label", "io.kubernetes.pod.name=vm-"+node)
			id = strings.TrimSpace(out)
			return p.Status.Phase == "Running" && err == nil && id != "" && !strings.Contains(id, "\n")
		})
		pods, err := cri.Crictl(context.Background(), endpoint, "pods", "-o", "json", "--label", "io.kubernetes.pod.name=vm-"+node)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(pods, `"runtimeHandler": "kvm"`) {
			t.Errorf("crictl pods: sandbox of vm not on the kvm handler:\n%s", pods)
		}
		// In a VM: the container sees the guest's kernel, not the host's.
		host, err := exec.Command("uname", "-r").Output()
		if err != nil {
			t.Fatal(err)
		}
		guest, err := cri.Crictl(context.Background(), endpoint, "exec", id, "uname", "-r")
		if err != nil {
			t.Fatalf("crictl exec uname -r: %v", err)
		}
		if g, h := strings.TrimSpace(guest), strings.TrimSpace(string(host)); g == "" || g == h {
			t.Errorf("kernel in pod vm %q, host's %q: want the guest's own", g, h)
		}
		if err := os.Remove(filepath.Join(k.Manifests(), "vm.yaml")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "pod vm gone from the kubelet and its sandbox stopped", 3*time.Minute, func() bool {
			if _, ok := kubeletPods(t, k)["vm-"+node]; ok {
				return false
			}
			out, err := cri.Crictl(context.Background(), endpoint, "pods", "-q", "--state", "ready", "--label", "io.kubernetes.pod.name=vm-"+node)
			return err == nil && strings.TrimSpace(out) == ""
		})
	})
}
