package http

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes every route of the API; the tests keep it true
// to the routes and to the answers the server gives.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI answers the OpenAPI 3.1 document of this API.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDocument) // the client may be gone; nothing left to tell it
	return nil
}
