package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"

	"github.com/skiffpod/skiff/pkg/imageref"
)

// layoutBlobs reads the image an umoci layout tags "t" as Push wants it;
// damage, if set, flips a byte of that blob as it is read.
func layoutBlobs(t *testing.T, layout string, damage digest.Digest) (*Blobs, digest.Digest) {
	t.Helper()
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil || json.Unmarshal(b, &idx) != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, b)
	}
	d := idx.Manifests[0].Digest
	raw, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	return &Blobs{Manifest: raw, MediaType: idx.Manifests[0].MediaType, Open: func(d digest.Digest) (io.ReadCloser, error) {
		b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", d.Encoded()))
		if d == damage {
			b[len(b)/2] ^= 1
		}
		return io.NopCloser(bytes.NewReader(b)), err
	}}, d
}

// TestPush: to a real registry with TLS and basic auth, the image keeps
// its digest and opens again from the registry; a damaged blob is never
// committed and no manifest is put; no credentials or an unknown CA are
// refused in one line.
func TestPush(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	caDir, cert, key := testCA(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600)
	reg := startRegistry(t, fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key),
		fmt.Sprintf("auth:\n  htpasswd:\n    realm: test\n    path: %s\n", htpasswd))
	auth := filepath.Join(dir, "auth.json")
	os.WriteFile(auth, []byte(fmt.Sprintf(`{"auths":{"%s":{"auth":"%s"}}}`, reg.addr, base64.StdEncoding.EncodeToString([]byte("alice:s3cret")))), 0o600)
	layout := umociImage(t)
	good := Options{CADir: caDir, AuthFiles: []string{auth}, Retries: -1}
	push := func(repo string, b *Blobs, opts Options) (digest.Digest, error) {
		ref, err := imageref.Parse("docker://" + reg.addr + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return Push(ctx, ref, b, opts, nil)
	}

	b, want := layoutBlobs(t, layout, "")
	got, err := push("p/img:1", b, good)
	if err != nil || got != want {
		t.Fatalf("push: %s %v, want %s", got, err, want)
	}
	img, err := open(t, "docker://"+reg.addr+"/p/img:1", good)
	if err != nil || img.Digest != want {
		t.Fatalf("open the pushed image: %v", err)
	}
	checkUmociImage(t, img)
	if img, err := open(t, "docker://"+reg.addr+"/p/img@"+want.String(), good); err != nil || img.Digest != want {
		t.Errorf("by digest: %v", err)
	}

	var m ocispec.Manifest
	json.Unmarshal(b.Manifest, &m)
	bad, _ := layoutBlobs(t, layout, m.Layers[len(m.Layers)-1].Digest)
	_, err = push("p/bad:1", bad, good)
	checkErr(t, err, ErrDigestMismatch, m.Layers[len(m.Layers)-1].Digest.String())
	_, err = open(t, "docker://"+reg.addr+"/p/bad:1", good)
	checkErr(t, err, ErrNotFound, "404")

	_, err = push("p/anon:1", b, Options{CADir: caDir, Retries: -1})
	checkErr(t, err, ErrRegistry, "access denied")
	_, err = push("p/ca:1", b, Options{AuthFiles: []string{auth}, Retries: -1})
	checkErr(t, err, nil, "certificate")
	_, err = push("p/digest@"+want.String(), b, good)
	checkErr(t, err, nil, "TAG")
}
