package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/skiffpod/skiff/pkg/safefile"
)

// uuidFile is the --uuid-file flag of the commands that take pods (rkt's
// flag): the pod's UUID read from a file --uuid-file-save wrote.
type uuidFile string

func (u *uuidFile) register(fs *pflag.FlagSet) {
	fs.StringVar((*string)(u), "uuid-file", "", "read the pod's UUID from this file (as written by --uuid-file-save) instead of an argument")
}

// maxUUIDFile bounds the read: a UUID and a newline, with room for spaces.
const maxUUIDFile = 4096

// pods returns the pods named by the arguments or, with --uuid-file, the
// one in the file; naming pods both ways, or not at all, is a usage error.
func (u uuidFile) pods(args []string) ([]string, error) {
	switch {
	case u == "" && len(args) == 0:
		return nil, usagef("name a pod: UUID or --uuid-file=FILE")
	case u == "":
		return args, nil
	case len(args) > 0:
		return nil, usagef("give a UUID or --uuid-file=%s, not both", string(u))
	}
	b, err := safefile.ReadFile(string(u), maxUUIDFile)
	if err != nil {
		return nil, fmt.Errorf("--uuid-file: %w", err)
	}
	id := string(bytes.TrimSpace(b))
	if id == "" {
		return nil, fmt.Errorf("--uuid-file: %s is empty", string(u))
	}
	return []string{id}, nil
}
