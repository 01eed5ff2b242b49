//go:build e2e

package tests

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
)

// The appc metadata service (docs/metadata.md) as apps see it.

// mdsScript reads every endpoint from inside an app with busybox's wget.
// The signature is base64: + / = are escaped for the form.
const mdsScript = `u=$AC_METADATA_URL/acMetadata/v1
echo "URL=$AC_METADATA_URL"
uuid=$(wget -qO- "$u/pod/uuid")
echo "UUID=$uuid"
echo "ID=$(wget -qO- "$u/apps/$AC_APP_NAME/image/id")"
echo "IMAGE=$(wget -qO- "$u/apps/$AC_APP_NAME/image/manifest" | tr -d '\n ')"
echo "ANNOTATIONS=$(wget -qO- "$u/apps/$AC_APP_NAME/annotations")"
echo "POD=$(wget -qO- "$u/pod/manifest" | tr -d '\n ')"
sig=$(wget -qO- --post-data=content=hello "$u/pod/hmac/sign" | sed 's/+/%2B/g; s,/,%2F,g; s/=/%3D/g')
wget -qO- --post-data="content=hello&uuid=$uuid&signature=$sig" "$u/pod/hmac/verify" >/dev/null && echo VERIFY=ok
wget -qO- --post-data="content=hullo&uuid=$uuid&signature=$sig" "$u/pod/hmac/verify" >/dev/null 2>&1 || echo FORGERY=refused
wget -qO- "${AC_METADATA_URL%/*}/0123456789abcdef0123456789abcdef/acMetadata/v1/pod/uuid" >/dev/null 2>&1 || echo WRONG_TOKEN=refused
`

var mdsURL = regexp.MustCompile(`URL=(http://127\.0\.0\.1:\d+/([0-9a-f]{32}))\r?\n`)

func TestMetadataNS(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { exec.Command("ip", "link", "del", "skiff-mdstest").Run() })
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "mdstest", "plugins": [
		{"type": "bridge", "bridge": "skiff-mdstest", "isGateway": true,
		 "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.16.33.0/24"}]], "dataDir": %q}}]}`, filepath.Join(t.TempDir(), "ipam"))
	os.MkdirAll(filepath.Join(e.config, "net.d"), 0o755)
	if err := os.WriteFile(filepath.Join(e.config, "net.d", "mdstest.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, net := range []string{"default", "host", "none", "mdstest"} {
		t.Run(net, func(t *testing.T) { metadataPod(t, e, "ns", net) })
	}

	// Two running pods: neither can read the other's data, and what the
	// host can reach of a pod with its own network is nothing.
	t.Run("isolation", func(t *testing.T) {
		start := func(net string) string {
			c, out := e.start("run", "--stage1=ns", "--net="+net, image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c",
				`echo "URL=$AC_METADATA_URL"; sleep 300`)
			var m []string
			waitFor(t, "the pod's URL", 2*time.Minute, func() bool {
				m = mdsURL.FindStringSubmatch(out.String())
				return m != nil || c.ProcessState != nil
			})
			if m == nil {
				t.Fatalf("no URL:\n%s", out)
			}
			uuids := uuidsIn(e.mustRun("list", "--format=json"))
			t.Cleanup(func() {
				for _, u := range uuids {
					e.run("stop", "--force", u)
				}
			})
			return m[1]
		}
		hostA := start("host")
		hostB := start("host")
		private := start("default")
		get := func(url string) int {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(url + "/acMetadata/v1/pod/uuid")
			if err != nil {
				return 0
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if got := get(hostA); got != 200 {
			t.Errorf("host-network pod A's own URL from the host: %d, want 200", got)
		}
		// B's token at A's address, A's token at B's.
		aAddr, aTok, _ := strings.Cut(strings.TrimPrefix(hostA, "http://"), "/")
		bAddr, bTok, _ := strings.Cut(strings.TrimPrefix(hostB, "http://"), "/")
		if got := get("http://" + aAddr + "/" + bTok); got != 404 {
			t.Errorf("pod B's token at pod A's service: %d, want 404", got)
		}
		if got := get("http://" + bAddr + "/" + aTok); got != 404 {
			t.Errorf("pod A's token at pod B's service: %d, want 404", got)
		}
		if got := get(private); got == 200 {
			t.Errorf("the host read the metadata of a pod on its own network at %s", private)
		}
	})
}

// metadataPod runs a pod of two apps on stage1 and net; the first reads
// every endpoint from inside, the second prints its AC_METADATA_URL.
func metadataPod(t *testing.T, e *env, stage1, net string) {
	save := filepath.Join(t.TempDir(), "uuid")
	out, errs, code := e.run("run", "--stage1="+stage1, "--net="+net, "--uuid-file-save="+save,
		image(t, "busybox.aci"), "--name=first", "--exec=/bin/sh", "--", "-c", mdsScript, "---",
		image(t, "busybox.aci"), "--name=second", "--exec=/bin/sh", "--", "-c", `echo "SECOND=$AC_METADATA_URL"`)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	b, _ := os.ReadFile(save)
	uuid := strings.TrimSpace(string(b))
	m := mdsURL.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no AC_METADATA_URL with a 128-bit token:\n%s", out)
	}
	if dirs, _ := filepath.Glob(filepath.Join(e.dir, "pods", "*", uuid)); len(dirs) == 1 {
		if s1, err := pod.ReadStage1(dirs[0]); err != nil || !s1.Supports(pod.FeatureMetadata) {
			t.Errorf("stage1-%s does not announce feature %s (%v)", stage1, pod.FeatureMetadata, err)
		}
	} else {
		t.Errorf("pod dir of %s: %v", uuid, dirs)
	}
	got := outputVars(out)
	for k, want := range map[string]string{
		"UUID": uuid, "SECOND": m[1], "VERIFY": "ok", "FORGERY": "refused", "WRONG_TOKEN": "refused", "ANNOTATIONS": "[]",
	} {
		if got[k] != want {
			t.Errorf("%s=%q, want %q", k, got[k], want)
		}
	}
	if !strings.HasPrefix(got["ID"], "sha512-") || !strings.Contains(got["POD"], `"id":"`+got["ID"]+`"`) {
		t.Errorf("image id %q is not the pod manifest's", got["ID"])
	}
	if !strings.Contains(got["IMAGE"], `"name":"skiff.local/busybox"`) || !strings.Contains(got["POD"], `"name":"second"`) {
		t.Errorf("image or pod manifest wrong:\n%s", out)
	}
	// The pod has ended; the service with it.
	if resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(m[1] + "/acMetadata/v1/pod/uuid"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("the service of an ended pod still answers on the host")
		}
	}
}

// TestMetadataKVM: the same from a VM's apps (through the guest agent
// and the skiff.fwd port), with and without a pod network.
func TestMetadataKVM(t *testing.T) {
	e := newEnv(t)
	for _, net := range []string{"default", "none"} {
		t.Run(net, func(t *testing.T) { metadataPod(t, e, "kvm", net) })
	}
}

// outputVars maps NAME to value for each NAME=value line apps printed (after
// the console's "name[pid]: " prefix).
func outputVars(out string) map[string]string {
	vars := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSuffix(l, "\r")
		if i := strings.Index(l, "]: "); i >= 0 {
			l = l[i+3:]
		}
		if k, v, ok := strings.Cut(l, "="); ok {
			vars[k] = v
		}
	}
	return vars
}
