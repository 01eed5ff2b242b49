// Package metadata provides the appc metadata service of one pod
// (appc spec, "App Container Metadata Service"; docs/metadata.md): the pod
// manifest, UUID and annotations, each app's image manifest, image ID and
// annotations, and the HMAC identity endpoints, served over HTTP under
// /<token>/acMetadata/v1/. The token (128 random bits) and the HMAC key live
// only in the Service's memory: the stage1 run process serves its own pod,
// and the token in AC_METADATA_URL is what tells the pod's requests from
// anyone else's.
package metadata

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// Prefix is the path of the service below the token.
const Prefix = "/acMetadata/v1"

// maxForm bounds the body of a sign or verify request.
const maxForm = 1 << 20

const (
	typeJSON = "application/json"
	typeText = "text/plain; charset=us-ascii"
)

// Service is the metadata service of one pod, safe for concurrent use.
// One made by ForPod follows the pod manifest as stage0 changes it (apps
// added to and removed from a running app sandbox).
type Service struct {
	token string
	key   []byte // HMAC-SHA512 key of the pod; never leaves this process
	uuid  string

	follow bool // ForPod's: read the pod dir again when its manifest changed

	mu   sync.Mutex
	data *podData
}

// podData is what the service says about the pod, as of one pod manifest.
type podData struct {
	stamp    stamp
	manifest []byte // the pod manifest as stage0 wrote it
	podAnn   []byte // its annotations, as JSON
	apps     map[string]app
}

// stamp tells one version of the pod manifest file from another: stage0
// replaces it by rename, so a change is a new inode.
type stamp struct {
	ino, size int64
	mtime     time.Time
}

// app is what the service answers about one app.
type app struct {
	manifest []byte // the image manifest, as stored in the pod
	id       string // the image ID
	ann      []byte // image annotations overridden by the pod manifest's, as JSON
}

// New makes the service of the pod uuid, with the pod manifest pm (its
// bytes as stage0 wrote them) and each app's image manifest by app name,
// a fresh random token and a fresh random HMAC key.
func New(uuid string, pm []byte, images map[string][]byte) (*Service, error) {
	d, err := newData(pm, images)
	if err != nil {
		return nil, err
	}
	return newService(uuid, d)
}

// newService makes the service of pod uuid saying d.
func newService(uuid string, d *podData) (*Service, error) {
	id, err := types.NewUUID(uuid)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	s := &Service{uuid: id.String(), data: d}
	tok := make([]byte, 16)
	s.key = make([]byte, sha512.BlockSize)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("metadata: token: %w", err)
	}
	if _, err := rand.Read(s.key); err != nil {
		return nil, fmt.Errorf("metadata: key: %w", err)
	}
	s.token = hex.EncodeToString(tok)
	return s, nil
}

// newData parses the pod manifest pm and its apps' image manifests.
func newData(pm []byte, images map[string][]byte) (*podData, error) {
	var m schema.PodManifest
	if err := json.Unmarshal(pm, &m); err != nil {
		return nil, fmt.Errorf("metadata: parse pod manifest: %w", err)
	}
	s := &podData{manifest: pm, apps: map[string]app{}}
	var err error
	if s.podAnn, err = json.Marshal(m.Annotations); err != nil {
		return nil, fmt.Errorf("metadata: pod annotations: %w", err)
	}
	for _, ra := range m.Apps {
		name := ra.Name.String()
		b, ok := images[name]
		if !ok {
			return nil, fmt.Errorf("metadata: app %s: no image manifest", name)
		}
		var img schema.ImageManifest
		if err := json.Unmarshal(b, &img); err != nil {
			return nil, fmt.Errorf("metadata: app %s: parse image manifest: %w", name, err)
		}
		ann := append(types.Annotations(nil), img.Annotations...)
		for _, a := range ra.Annotations {
			ann.Set(a.Name, a.Value)
		}
		if ann == nil {
			ann = types.Annotations{}
		}
		a := app{manifest: b, id: ra.Image.ID.String()}
		if a.ann, err = json.Marshal(ann); err != nil {
			return nil, fmt.Errorf("metadata: app %s: annotations: %w", name, err)
		}
		s.apps[name] = a
	}
	return s, nil
}

// ForPod makes the service of the pod whose directory is the working
// directory (a stage1's run) from the pod manifest and the apps' image
// manifests stage0 wrote there. Run reads them before the pod starts, so
// nothing the pod does later changes what the service says about its
// apps. When stage0 replaces the pod manifest (skiff app add, app rm), the
// next request reads it again, and the image manifests of the apps it
// did not know (docs/metadata.md).
func ForPod(uuid string) (*Service, error) {
	d, err := readData(nil)
	if err != nil {
		return nil, err
	}
	s, err := newService(uuid, d)
	if err != nil {
		return nil, err
	}
	s.follow = true
	return s, nil
}

// manifestStamp is the pod manifest's stamp.
func manifestStamp() (stamp, error) {
	fi, err := os.Lstat(pod.ManifestFile)
	if err != nil {
		return stamp{}, fmt.Errorf("metadata: pod manifest: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return stamp{}, fmt.Errorf("metadata: pod manifest: no inode")
	}
	return stamp{ino: int64(st.Ino), size: fi.Size(), mtime: fi.ModTime()}, nil
}

// readData reads the pod manifest in the working directory and the image
// manifests of its apps, taking those of the apps old knew under the same
// image from old.
func readData(old *podData) (*podData, error) {
	st, err := manifestStamp()
	if err != nil {
		return nil, err
	}
	pm, err := safefile.ReadFileAt(".", pod.ManifestFile, pod.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("metadata: read pod manifest: %w", err)
	}
	m, err := pod.ParseManifest(pm)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	images := map[string][]byte{}
	for _, ra := range m.Apps {
		name := ra.Name.String()
		if old != nil {
			if a, ok := old.apps[name]; ok && a.id == ra.Image.ID.String() {
				images[name] = a.manifest
				continue
			}
		}
		if images[name], err = safefile.ReadFileAt(".", pod.AppManifest(name), pod.MaxManifestSize); err != nil {
			return nil, fmt.Errorf("metadata: read image manifest of %s: %w", name, err)
		}
	}
	d, err := newData(pm, images)
	if err != nil {
		return nil, err
	}
	d.stamp = st
	return d, nil
}

// current returns what the service says now: for ForPod's, read again if
// the pod manifest changed since (on a failure to, the last good read).
func (s *Service) current() *podData {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.follow {
		return s.data
	}
	if st, err := manifestStamp(); err == nil && st != s.data.stamp {
		if d, err := readData(s.data); err == nil {
			s.data = d
		}
	}
	return s.data
}

// URL is AC_METADATA_URL for a service listening at addr (host:port).
func (s *Service) URL(addr string) string { return "http://" + addr + "/" + s.token }

// Serve answers requests on l until l is closed, and returns then.
func (s *Service) Serve(l net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	if err := srv.Serve(l); !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("metadata: serve: %w", err)
	}
	return nil
}

// ServeHTTP answers one request. A path without the pod's token is not
// found, exactly like an unknown path, so a guess learns nothing.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		http.NotFound(w, r)
		return
	}
	p, ok := strings.CutPrefix("/"+rest, Prefix+"/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	d := s.current()
	switch p {
	case "pod/manifest":
		s.get(w, r, typeJSON, d.manifest)
	case "pod/uuid":
		s.get(w, r, typeText, []byte(s.uuid))
	case "pod/annotations":
		s.get(w, r, typeJSON, d.podAnn)
	case "pod/hmac/sign":
		s.sign(w, r)
	case "pod/hmac/verify":
		s.verify(w, r)
	default:
		name, what, ok := strings.Cut(strings.TrimPrefix(p, "apps/"), "/")
		a, found := d.apps[name]
		if !ok || !strings.HasPrefix(p, "apps/") || !found {
			http.NotFound(w, r)
			return
		}
		switch what {
		case "annotations":
			s.get(w, r, typeJSON, a.ann)
		case "image/manifest":
			s.get(w, r, typeJSON, a.manifest)
		case "image/id":
			s.get(w, r, typeText, []byte(a.id))
		default:
			http.NotFound(w, r)
		}
	}
}

func (s *Service) get(w http.ResponseWriter, r *http.Request, typ string, body []byte) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Write(body)
}

// form parses a POSTed form; it answers the error itself and returns false.
func form(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if _, ok := r.PostForm["content"]; !ok {
		http.Error(w, "no content", http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Service) mac(content string) []byte {
	h := hmac.New(sha512.New, s.key)
	h.Write([]byte(content))
	return h.Sum(nil)
}

// sign answers the base64 HMAC-SHA512 of the form's content.
func (s *Service) sign(w http.ResponseWriter, r *http.Request) {
	if !form(w, r) {
		return
	}
	w.Header().Set("Content-Type", typeText)
	w.Write([]byte(base64.StdEncoding.EncodeToString(s.mac(r.PostForm.Get("content")))))
}

// verify answers 200 when signature is this pod's signature of content and
// uuid names this pod, 403 otherwise: the key of another pod is only in that
// pod's service (docs/metadata.md).
func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	if !form(w, r) {
		return
	}
	sig, err := base64.StdEncoding.DecodeString(r.PostForm.Get("signature"))
	if err != nil {
		http.Error(w, "bad signature: "+err.Error(), http.StatusBadRequest)
		return
	}
	uuid, err := types.NewUUID(r.PostForm.Get("uuid"))
	if err != nil {
		http.Error(w, "bad uuid: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", typeText)
	if uuid.String() != s.uuid || !hmac.Equal(sig, s.mac(r.PostForm.Get("content"))) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("signature does not match\n"))
		return
	}
	w.Write([]byte("ok\n"))
}
