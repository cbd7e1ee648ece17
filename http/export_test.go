package http

// Routes returns "METHOD path" for every route the server registers, so the
// external tests can hold the OpenAPI document to them.
func Routes(s *Server) []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}
