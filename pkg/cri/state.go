package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/perm"
	"github.com/skiffpod/skiff/pkg/safefile"
)

// What the CRI adds to skiff's pods lives in DIR/cri: one record per
// sandbox (sandboxes/<pod uuid>.json) and per container
// (containers/<id>.json, with <id>.cursor, how far its log was copied).
// Records are written whole, to a temporary file renamed over the old.

func (s *Server) criDir() string       { return filepath.Join(s.Dir, "cri") }
func (s *Server) sandboxDir() string   { return filepath.Join(s.criDir(), "sandboxes") }
func (s *Server) containerDir() string { return filepath.Join(s.criDir(), "containers") }

// maxRecordSize bounds a record read back from disk.
const maxRecordSize = 4 << 20

// sandboxRecord is one pod sandbox: a skiff app sandbox, by pod UUID.
type sandboxRecord struct {
	ID        string                       `json:"id"`
	Handler   string                       `json:"handler"` // "ns" or "kvm"
	CreatedAt int64                        `json:"createdAt"`
	Config    *runtimeapi.PodSandboxConfig `json:"-"`
	RawConfig json.RawMessage              `json:"config"`
}

// containerRecord is one container: an app of a sandbox.
type containerRecord struct {
	ID         string                      `json:"id"`
	SandboxID  string                      `json:"sandboxId"`
	App        string                      `json:"app"`        // the app's name in the pod
	ImageID    string                      `json:"imageId"`    // the store's
	ImageRef   string                      `json:"imageRef"`   // sha256:<config digest>
	LogPath    string                      `json:"logPath"`    // absolute; "" for none
	CreatedAt  int64                       `json:"createdAt"`  // unix nanoseconds
	StartedAt  int64                       `json:"startedAt"`  // 0: never started
	FinishedAt int64                       `json:"finishedAt"` // 0: not seen ended
	ExitCode   int32                       `json:"exitCode"`
	Reason     string                      `json:"reason,omitempty"`
	Config     *runtimeapi.ContainerConfig `json:"-"`
	RawConfig  json.RawMessage             `json:"config"`
}

// errNoRecord means no sandbox or container has that ID (or prefix).
var errNoRecord = errors.New("not found")

// errAmbiguous means an ID prefix names more than one object.
var errAmbiguous = errors.New("ambiguous ID prefix")

func writeRecord(dir, id string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, id+".json"), b)
}

// writeAtomic replaces path with data: temp file, fsync, rename.
func writeAtomic(path string, data []byte) error {
	if err := safefile.WriteFile(path, data, 0o600, true); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (r *sandboxRecord) encode() error {
	b, err := protojson.Marshal(r.Config)
	r.RawConfig = b
	return err
}

func (r *containerRecord) encode() error {
	b, err := protojson.Marshal(r.Config)
	r.RawConfig = b
	return err
}

func (s *Server) saveSandbox(r *sandboxRecord) error {
	if err := r.encode(); err != nil {
		return err
	}
	return writeRecord(s.sandboxDir(), r.ID, r)
}

func (s *Server) saveContainer(r *containerRecord) error {
	if err := r.encode(); err != nil {
		return err
	}
	return writeRecord(s.containerDir(), r.ID, r)
}

// readJSON reads record file path into v, whose config is decoded from
// raw into msg.
func readJSON(path string, v any, raw *json.RawMessage, msg proto.Message) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxRecordSize {
		return fmt.Errorf("read %s: not a regular file of at most %d bytes", path, maxRecordSize)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := protojson.Unmarshal(*raw, msg); err != nil {
		return fmt.Errorf("read %s: config: %w", path, err)
	}
	return nil
}

func (s *Server) loadSandbox(id string) (*sandboxRecord, error) {
	r := &sandboxRecord{Config: &runtimeapi.PodSandboxConfig{}}
	if err := readJSON(filepath.Join(s.sandboxDir(), id+".json"), r, &r.RawConfig, r.Config); err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Server) loadContainer(id string) (*containerRecord, error) {
	r := &containerRecord{Config: &runtimeapi.ContainerConfig{}}
	if err := readJSON(filepath.Join(s.containerDir(), id+".json"), r, &r.RawConfig, r.Config); err != nil {
		return nil, err
	}
	return r, nil
}

// ids lists the record IDs in dir.
func ids(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() {
			out = append(out, id)
		}
	}
	return out, nil
}

// resolve turns an ID or unique ID prefix into a full ID of dir's records.
func resolve(dir, id string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("empty ID: %w", errNoRecord)
	}
	if strings.ContainsAny(id, "/.") {
		return "", fmt.Errorf("%q: %w", id, errNoRecord)
	}
	all, err := ids(dir)
	if err != nil {
		return "", err
	}
	found := ""
	for _, x := range all {
		if x == id {
			return x, nil
		}
		if strings.HasPrefix(x, id) {
			if found != "" {
				return "", fmt.Errorf("%q: %w", id, errAmbiguous)
			}
			found = x
		}
	}
	if found == "" {
		return "", fmt.Errorf("%q: %w", id, errNoRecord)
	}
	return found, nil
}

func (s *Server) sandbox(id string) (*sandboxRecord, error) {
	full, err := resolve(s.sandboxDir(), id)
	if err != nil {
		return nil, fmt.Errorf("sandbox %w", err)
	}
	return s.loadSandbox(full)
}

func (s *Server) container(id string) (*containerRecord, error) {
	full, err := resolve(s.containerDir(), id)
	if err != nil {
		return nil, fmt.Errorf("container %w", err)
	}
	return s.loadContainer(full)
}

// removeContainerRecord forgets container id and its log cursor.
func (s *Server) removeContainerRecord(id string) error {
	err := os.Remove(filepath.Join(s.containerDir(), id+".json"))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	os.Remove(filepath.Join(s.containerDir(), id+".cursor"))
	return err
}

var _ = perm.MkdirPrivate
