package http

import (
	"bytes"
	"encoding/json"

	"github.com/crossdock/crossdock"
)

// Routes returns "METHOD path" for every route the server registers, so the
// external tests can hold the OpenAPI document to them.
func Routes(s *Server) []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}

// SubscriptionFromJSON decodes a PUT /v1/subscriptions body as the handler
// does, for the fuzzer.
func SubscriptionFromJSON(body []byte, name string) (crossdock.Subscription, error) {
	var in subscriptionInput
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return crossdock.Subscription{}, err
	}
	return in.subscription(name)
}
