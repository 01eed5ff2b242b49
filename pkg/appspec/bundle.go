package appspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiffpod/skiff/pkg/safefile"
	"github.com/skiffpod/skiff/pkg/strictjson"
)

// Write writes the bundle files stage2 reads from dir: spec.json and the
// hosts and hostname files its mounts name.
func Write(dir string, s *specs.Spec) error {
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	h := ""
	if s.Hostname != "" {
		h = " " + s.Hostname
	}
	hosts := "127.0.0.1\tlocalhost" + h + "\n::1\tlocalhost ip6-localhost ip6-loopback" + h + "\n"
	files := map[string]string{SpecFile: string(b) + "\n", HostsFile: hosts}
	if s.Hostname != "" {
		files[HostnameFile] = s.Hostname + "\n"
	}
	for name, data := range files {
		if err := writeRegular(filepath.Join(dir, name), []byte(data)); err != nil {
			return fmt.Errorf("write spec: %w", err)
		}
	}
	return nil
}

// writeRegular writes data to path, a new or regular file, never through
// a symlink or into a FIFO (dir may be in a tree a KVM guest writes).
func writeRegular(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o644)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("%s: not a regular file", path)
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// maxSpecSize bounds spec.json, read back from the app directory.
const maxSpecSize = 4 << 20

// Read reads dir/spec.json.
func Read(dir string) (*specs.Spec, error) {
	b, err := safefile.ReadFileAt(dir, SpecFile, maxSpecSize)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var s specs.Spec
	if err := strictjson.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read spec %s: %w", dir, err)
	}
	if s.Process == nil || len(s.Process.Args) == 0 || s.Root == nil {
		return nil, fmt.Errorf("read spec %s: no process or root", dir)
	}
	return &s, nil
}
