//go:build !unix

package testproc

// resume does nothing where processes cannot be paused.
func (p *Proc) resume() {}
