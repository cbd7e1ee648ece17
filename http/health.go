package http

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/crossdock/crossdock"
)

// readyTimeout bounds one readiness check of each component.
const readyTimeout = 2 * time.Second

// handleHealthz answers 200 while the process runs.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 when the broker and the journey store are both
// ready, else a 503 problem naming each that is not.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var failures []string
	if err := s.Broker.Ready(ctx); err != nil {
		s.logger().Warn("broker not ready", "error", err)
		failures = append(failures, "broker: "+crossdock.ErrorMessage(err))
	}
	if s.StoreReady != nil {
		if err := s.StoreReady(ctx); err != nil {
			s.logger().Warn("journey store not ready", "error", err)
			failures = append(failures, "journey store: "+crossdock.ErrorMessage(err))
		}
	}
	if len(failures) > 0 {
		return crossdock.Errorf(crossdock.EUNAVAILABLE, "not ready: %s", strings.Join(failures, "; "))
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
