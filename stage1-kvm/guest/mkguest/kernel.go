package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
)

var (
	errNotBzImage  = errors.New("not a bzImage (boot protocol >= 2.08)")
	errCompression = errors.New("unsupported kernel compression")
)

var (
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicGzip = []byte{0x1f, 0x8b}
	magicELF  = []byte{0x7f, 'E', 'L', 'F'}
)

// extractVmlinux returns the ELF kernel inside a bzImage. The x86 boot
// protocol (Documentation/x86/boot.rst) records where the compressed payload
// sits, so no magic scanning is needed; only its format is sniffed.
func extractVmlinux(bz []byte) ([]byte, error) {
	if len(bz) < 0x250 || string(bz[0x202:0x206]) != "HdrS" || binary.LittleEndian.Uint16(bz[0x206:]) < 0x208 {
		return nil, errNotBzImage
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	start := (setupSects+1)*512 + int(binary.LittleEndian.Uint32(bz[0x248:]))
	end := start + int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if start >= end || end > len(bz) {
		return nil, fmt.Errorf("payload %d..%d outside the %d-byte image: %w", start, end, len(bz), errNotBzImage)
	}
	payload := bz[start:end]
	var out []byte
	var err error
	switch {
	case bytes.HasPrefix(payload, magicXZ):
		// The kernel's xz stream uses the x86 BCJ filter, which the pure-Go
		// xz reader lacks; xz-utils is on every Debian system. The payload
		// ends with a 4-byte size, hence --single-stream.
		cmd := exec.Command("xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(payload)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
	case bytes.HasPrefix(payload, magicGzip):
		zr, zerr := gzip.NewReader(bytes.NewReader(payload))
		if zerr != nil {
			return nil, fmt.Errorf("gzip: %w", zerr)
		}
		zr.Multistream(false)
		if out, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	default:
		return nil, fmt.Errorf("payload magic % x: %w", payload[:min(6, len(payload))], errCompression)
	}
	if !bytes.HasPrefix(out, magicELF) {
		return nil, fmt.Errorf("decompressed payload is not ELF: %w", errNotBzImage)
	}
	return out, nil
}
