package testproc

import (
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
)

// Build builds the Go package pkg (an import path) with the go command's
// extra flags (e.g. -race) into dir, and returns the executable's path. Its
// error has the compiler's output.
func Build(dir, pkg string, flags ...string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	args := append(append([]string{"build"}, flags...), "-o", bin, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return bin, nil
}
