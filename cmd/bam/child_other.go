//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing where the kernel cannot signal a child when its
// parent dies: the demo stops its nodes itself on SIGINT, SIGTERM and a
// closed output pipe, but not on SIGKILL.
func dieWithParent(*exec.Cmd) {}
