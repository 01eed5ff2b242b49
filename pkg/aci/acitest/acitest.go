// Package acitest builds ACI tars from in-memory entry lists, including
// hostile ones no honest tool would write, for tests.
package acitest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

// Entry is one tar entry; Type defaults to a regular file (or a directory
// when Name ends in "/"), Mode to 0644 / 0755.
type Entry struct {
	Name string
	Type byte
	Body string
	Link string
	Mode int64
	Uid  int
	// PAX records for the entry, written as a raw PAX header so that
	// records archive/tar's writer would drop (GNU.sparse.*) get through.
	PAX map[string]string
}

// Manifest returns a minimal valid image manifest for name, plus extra
// JSON members (e.g. `"dependencies":[...]`) when given.
func Manifest(name string, extra ...string) string {
	s := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q`, name)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

// Tar returns the uncompressed tar of entries, in order.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Link, Mode: e.Mode, Uid: e.Uid, ModTime: time.Unix(1e9, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if e.Name[len(e.Name)-1] == '/' {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if len(e.PAX) > 0 {
			h.Format = tar.FormatUSTAR
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			buf.Write(paxHeader(e.PAX))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatalf("tar body %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Image returns a valid ACI named name with the given rootfs entries
// (names relative to rootfs/) and extra manifest members.
func Image(t testing.TB, name string, files map[string]string, extra ...string) []byte {
	t.Helper()
	es := []Entry{{Name: "manifest", Body: Manifest(name, extra...)}, {Name: "rootfs/"}}
	for _, k := range slices.Sorted(maps.Keys(files)) {
		es = append(es, Entry{Name: "rootfs/" + k, Body: files[k]})
	}
	return Tar(t, es...)
}

// paxHeader returns a raw PAX extended header ('x') holding records: a
// ustar entry whose type byte is rewritten, with its checksum.
func paxHeader(records map[string]string) []byte {
	var body string
	for _, k := range slices.Sorted(maps.Keys(records)) {
		rest := " " + k + "=" + records[k] + "\n"
		n := len(rest)
		for len(fmt.Sprint(n))+len(rest) != n {
			n = len(fmt.Sprint(n)) + len(rest)
		}
		body += fmt.Sprint(n) + rest
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "PaxHeaders/x", Typeflag: tar.TypeReg, Size: int64(len(body)), Mode: 0o644, Format: tar.FormatUSTAR})
	tw.Write([]byte(body))
	tw.Flush()
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}
