package oci

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// flakyRegistry serves the layout b (manifest by tag "t" and blobs by
// digest, for any repository) and answers the first fails requests for
// each path with status, or, with status 0, never answers them.
func flakyRegistry(t *testing.T, b *layoutBuilder, root ocispec.Descriptor, fails, status int) string {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		if n <= fails {
			if status == 0 {
				<-r.Context().Done()
				return
			}
			if status == http.StatusTooManyRequests {
				w.Header().Set("Retry-After", "0")
			}
			http.Error(w, "not now", status)
			return
		}
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		if id == "t" {
			id = root.Digest.String()
		}
		_, hex, _ := strings.Cut(id, ":")
		data, err := os.ReadFile(filepath.Join(b.dir, "blobs", "sha256", filepath.Base(hex)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// reachable starts servers with start until one answers a dial: on a
// shared host, NAT rules a leaked pod left (CNI portmap, any port) can
// divert a loopback port the kernel just handed out.
func reachable(t *testing.T, start func() string) string {
	t.Helper()
	for range 10 {
		addr := start()
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatal("no loopback port reachable: check `iptables -t nat -S OUTPUT` for leaked DNAT rules")
	return ""
}

// TestRegistryTransient: a registry that fails each request a few times
// (500, 429, 503) and then answers is retried with backoff to success; one
// that keeps failing or never answers ends in one line naming the cause,
// within a bounded time.
func TestRegistryTransient(t *testing.T) {
	b := newTestLayout(t)
	root := b.build(simpleImage(runtime.GOARCH))
	for _, tt := range []struct {
		name          string
		fails, status int
		retries       int
		want          error
		says          string
	}{
		{"500 twice then OK", 2, http.StatusInternalServerError, 3, nil, ""},
		{"429 twice then OK", 2, http.StatusTooManyRequests, 3, nil, ""},
		{"503 three times then OK", 3, http.StatusServiceUnavailable, 3, nil, ""},
		{"500 more often than retried", 3, http.StatusInternalServerError, 2, ErrRegistry, "500"},
		{"429 without retries", 1, http.StatusTooManyRequests, -1, ErrRegistry, "429"},
		{"never answers", 1, 0, -1, ErrTimeout, "did not answer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := reachable(t, func() string { return flakyRegistry(t, b, root, tt.fails, tt.status) })
			start := time.Now()
			img, err := open(t, "docker://"+addr+"/x/y:t", Options{PlainHTTP: true, Timeout: time.Second, Retries: tt.retries, Backoff: 5 * time.Millisecond})
			if err == nil {
				var got string
				got, err = readAll(t, img)
				if err == nil && got != "a=1 b=22 c=333" {
					t.Errorf("layers %q", got)
				}
			}
			if tt.says == "" {
				if err != nil {
					t.Fatalf("error %v, want success after retries", err)
				}
				return
			}
			checkErr(t, err, tt.want, tt.says)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
