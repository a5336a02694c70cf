package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// A Service is a long-running part of a node beside its sessions, such as
// the HTTP API or the window purge: it runs for exactly as long as the
// node does (doc.go, "Life cycle and services").
type Service interface {
	// Name says what the service is, in logs and errors.
	Name() string
	// Run works until ctx ends, then returns nil once it has stopped. An
	// error returned before that stops the node, and Run returns it as it
	// is: it should say what failed ("http api on 127.0.0.1:8480: ...").
	Run(ctx context.Context) error
}

// Attach adds services to run with the node. It must be called before
// Run.
func (n *Node) Attach(services ...Service) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		panic("pool: Node.Attach called after Run")
	}
	n.services = append(n.services, services...)
}

// serviceGroup runs a node's services: each in its goroutine under one
// context, the first failure recorded and reported through failed.
type serviceGroup struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	failed chan struct{} // closed at the first service error
	once   sync.Once
}

// startServices starts services under a context of their own, which stop
// ends.
func startServices(services []Service, log *slog.Logger) *serviceGroup {
	ctx, cancel := context.WithCancel(context.Background())
	g := &serviceGroup{cancel: cancel, failed: make(chan struct{})}
	for _, s := range services {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			err := s.Run(ctx)
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("%s stopped before the node did", s.Name())
			}
			if err != nil {
				if ctx.Err() == nil {
					log.Error("service failed; stopping the node", "service", s.Name(), "err", err)
				}
				g.mu.Lock()
				g.errs = append(g.errs, err)
				g.mu.Unlock()
				g.once.Do(func() { close(g.failed) })
			}
		}()
	}
	return g
}

// stop ends the services' context, waits for every one to return, and
// returns their errors.
func (g *serviceGroup) stop() error {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}
