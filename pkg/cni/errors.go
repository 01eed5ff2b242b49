package cni

import "errors"

var (
	// ErrConfig marks a network configuration that cannot be used.
	ErrConfig = errors.New("bad network config")
	// ErrPort marks a malformed port mapping.
	ErrPort = errors.New("bad port mapping")
	// ErrPortTaken is returned when a host port to publish is already in use.
	ErrPortTaken = errors.New("host port already in use")
	// ErrAttached is returned by Setup for a cache dir that already holds
	// attachments: tear them down first.
	ErrAttached = errors.New("pod already attached to networks")
)
