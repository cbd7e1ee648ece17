package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// server is an HTTP server on a free port of 127.0.0.1 whose handlers see a
// context that close cancels, so slow answers end at once.
type server struct {
	base   string
	srv    *http.Server
	cancel context.CancelFunc
	served chan error
}

// open starts serving h; name says which simulated system failed to start.
func (s *server) open(name string, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for demo %s: %w", name, err)
	}
	s.base = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	s.srv, s.served = srv, served
	go func() { served <- srv.Serve(ln) }()
	return nil
}

// close stops the server, ending requests in flight, and waits for it; a
// second close does nothing.
func (s *server) close(ctx context.Context, name string) error {
	if s.srv == nil {
		return nil
	}
	s.cancel()
	err := s.srv.Shutdown(ctx)
	s.srv = nil
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("close demo %s: %w", name, err)
	}
	return nil
}

// signingKey decodes a whsec_ secret; it returns EINVALID for anything else.
func signingKey(system, secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, crossdock.Errorf(crossdock.EINVALID, "demo %s: secret must be whsec_ followed by base64", system)
	}
	return key, nil
}

// newRand returns a time-seeded source for a component given none.
func newRand() *rand.Rand { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }

// writeJSON answers with status and body as JSON.
func writeJSON(w http.ResponseWriter, status int, retryAfter string, body any) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body) // the caller may have gone
}
